import Formats
import Glibc
import Testing
import TestSupport
import Train

/// The `## ringtrain …` sections of docs/cli.md with their help text.
private func cliSections() throws -> [(command: [String], text: String)] {
    let doc = try FileIO.readText(Fixtures.packageRoot + "/docs/cli.md")
    var out: [(command: [String], text: String)] = []
    let parts = doc.components(separatedBy: "\n## ringtrain").dropFirst()
    for p in parts {
        let lines = p.split(separator: "\n", omittingEmptySubsequences: false)
        let command = lines[0].split(separator: " ").map(String.init)
        guard let open = lines.firstIndex(of: "```text"), let close = lines[(open + 1)...].firstIndex(of: "```") else { continue }
        out.append((command, lines[(open + 1)..<close].joined(separator: "\n")))
    }
    return out
}

/// Subcommand names listed in a help text.
private func subcommands(_ help: String) -> [String] {
    guard let r = help.range(of: "SUBCOMMANDS:\n") else { return [] }
    return help[r.upperBound...].split(separator: "\n").filter { $0.hasPrefix("  ") && !$0.hasPrefix("   ") }
        .compactMap { $0.split(separator: " ").first.map(String.init) }.filter { $0.first?.isLowercase == true }
}

private func help(_ args: [String]) -> String {
    let r = Fixtures.run(["env", "COLUMNS=100", Fixtures.ringtrain] + args + ["--help"])
    return r.output.hasSuffix("\n") ? String(r.output.dropLast()) : r.output
}

/// docs/cli.md is every command's --help as the tool prints it (scripts/docs/cli-reference
/// regenerates it), and documents every command the tool lists.
@Test(.timeLimit(.minutes(5)))
func cliReferenceMatchesTheTool() throws {
    let sections = try cliSections()
    let documented = Set(sections.map { $0.command.joined(separator: " ") })
    let top = help([])
    var expected = [""] + subcommands(top)
    expected += subcommands(help(["bench"])).map { "bench \($0)" }
    for c in expected {
        #expect(documented.contains(c), "docs/cli.md has no section for `ringtrain \(c)`: run scripts/docs/cli-reference")
    }
    for s in sections {
        #expect(help(s.command) == s.text, "docs/cli.md: `ringtrain \(s.command.joined(separator: " "))` differs from its --help: run scripts/docs/cli-reference")
    }
}

/// The committed completion scripts are what the tool generates.
@Test(arguments: ["bash", "zsh", "fish"])
func shellCompletionsMatchTheTool(_ shell: String) throws {
    let r = Fixtures.run([Fixtures.ringtrain, "--generate-completion-script", shell])
    let committed = try FileIO.readText(Fixtures.packageRoot + "/share/completions/ringtrain.\(shell)")
    #expect(r.status == 0 && r.output == committed, "share/completions/ringtrain.\(shell) is stale: run scripts/docs/cli-reference")
}

/// Every key of the job schema (every section and field a job can hold, defaults included)
/// appears in the job-file table of docs/quickstart.md, in its section's row.
@Test func jobFileReferenceCoversTheSchema() throws {
    let doc = try FileIO.readText(Fixtures.packageRoot + "/docs/quickstart.md")
    let rows = doc.split(separator: "\n").filter { $0.hasPrefix("| ") }
    guard case .map(let sections) = JobConfig().configValue else { Issue.record("job is not a map"); return }
    for s in sections {
        if case .map(let fields) = s.value {
            let row = rows.first { $0.hasPrefix("| `\(s.key)` |") }
            #expect(row != nil, "docs/quickstart.md has no row for the `\(s.key)` section")
            for f in fields where !(row?.contains("`\(f.key)`") ?? false) {
                Issue.record("docs/quickstart.md: the `\(s.key)` row does not mention `\(f.key)`")
            }
        } else {
            #expect(rows.contains { $0.hasPrefix("| top |") && $0.contains("`\(s.key)`") } || ["model", "models", "task"].contains(s.key),
                    "docs/quickstart.md: the top row does not mention `\(s.key)`")
        }
    }
}

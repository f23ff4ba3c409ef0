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
@Test(.timeLimit(.minutes(10)))
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

/// A command line of the docs as words (quotes removed), and whether it holds a placeholder
/// outside quotes (JOB.yaml, CKPT, [options], a|b, …): those are synopses, not commands.
private func words(_ line: String) -> (words: [String], placeholder: Bool) {
    var out: [String] = [], cur = "", quote: Character?, placeholder = false, unquoted = ""
    for ch in line {
        if let q = quote {
            if ch == q { quote = nil } else { cur.append(ch) }
            continue
        }
        switch ch {
        case "'", "\"": quote = ch
        case " ", "\t": if !cur.isEmpty { out.append(cur); cur = "" }; unquoted.append(" ")
        default: cur.append(ch); unquoted.append(ch)
        }
    }
    if !cur.isEmpty { out.append(cur) }
    if unquoted.contains(where: { "[]|…<>".contains($0) }) || unquoted.contains("...") { placeholder = true }
    // An all-capitals word (JOB, CKPT, RUN_DIR, HOST, N) is a placeholder.
    for w in unquoted.split(whereSeparator: { !$0.isLetter && $0 != "_" }) where w.count >= 1 && w.allSatisfy({ $0.isUppercase || $0 == "_" }) {
        let i = unquoted.range(of: String(w))!
        let before = i.lowerBound > unquoted.startIndex ? unquoted[unquoted.index(before: i.lowerBound)] : " "
        if !before.isNumber { placeholder = true }
    }
    return (out, placeholder)
}

/// Every `ringtrain …` command the README and docs/*.md show in a shell block (comments cut,
/// continuations joined; synopses with placeholders left out) parses and validates as the tool
/// reads it, so a renamed command or flag cannot linger in the docs. The first session of
/// docs/quickstart.md also runs for real (scripts/new-user, in scripts/test).
@Test(.timeLimit(.minutes(10)))
func everyCommandInTheDocsParses() throws {
    let root = Fixtures.packageRoot
    let files = ["README.md"] + FileIO.list(root + "/docs").filter { $0.hasSuffix(".md") }.map { "docs/" + $0 }
    var checked = 0
    for file in files {
        var inShell = false, pending = "", lineNo = 0
        for raw in try FileIO.readText(root + "/" + file).split(separator: "\n", omittingEmptySubsequences: false) {
            lineNo += 1
            let line = String(raw)
            if line.hasPrefix("```") { inShell = !inShell && (line == "```sh" || line == "```bash"); continue }
            guard inShell else { continue }
            // Cut a comment (a # after a space, outside quotes: good enough for these docs).
            var text = line.range(of: "  #").map { String(line[..<$0.lowerBound]) } ?? line
            if text.hasPrefix("#") { continue }
            if text.hasSuffix("\\") { pending += text.dropLast() + " "; continue }
            text = pending + text
            pending = ""
            guard let r = text.range(of: "ringtrain ") else { continue }
            let head = text[..<r.lowerBound]
            guard head.isEmpty || head.hasSuffix(".build/release/") || head.hasSuffix("swift run -c release ") || head.hasSuffix("&& swift run -c release ") else { continue }
            let (args, placeholder) = words(String(text[r.upperBound...]))
            if placeholder || args.isEmpty { continue }
            let p = Fixtures.run(["env", "RINGTRAIN_PARSE_ONLY=1", Fixtures.ringtrain] + args)
            #expect(p.status == 0, "\(file):\(lineNo): `ringtrain \(args.joined(separator: " "))` does not parse: \(p.output)")
            checked += 1
        }
    }
    #expect(checked >= 20, "only \(checked) commands found in the docs")
}

import ArgumentParser
import Formats
import Train

/// `ringtrain config JOB [--set …]`: the job as a run would see it, every default filled in.
struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Print the fully resolved job (file, flags and --set applied, defaults filled in) as YAML.",
        discussion: "The output is itself a valid job file: ringtrain config JOB --set optimizer.lr=0.05 > tuned.yaml")

    @OptionGroup var options: JobOptions

    func run() throws {
        let job = try wrapErrors { try options.resolve() }
        print(YAML.string(job.configValue), terminator: "")
    }
}

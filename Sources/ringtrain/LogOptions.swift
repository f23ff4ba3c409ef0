import ArgumentParser
import Train

/// --quiet / --verbose of the commands that run a job (swift-log levels: warning, info, debug).
struct LogOptions: ParsableArguments {
    @Flag(name: .shortAndLong, help: "Print only warnings and errors (and the final result); the run's log.txt still gets every line.")
    var quiet = false
    @Flag(name: .shortAndLong, help: "Also print details: every rank's set-up (ring edges, transport), not only rank 0's.")
    var verbose = false

    func validate() throws {
        if quiet && verbose { throw ValidationError("use either --quiet or --verbose, not both") }
    }

    /// Installs the log handler at the chosen level.
    func apply() { RunLog.bootstrap(level: quiet ? .warning : verbose ? .debug : .info) }

    /// The same choice for a child process.
    var flags: [String] { quiet ? ["--quiet"] : verbose ? ["--verbose"] : [] }
}

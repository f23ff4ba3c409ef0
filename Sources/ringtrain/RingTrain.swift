import ArgumentParser
import Glibc
import Comm
import TensorCore

@main
struct RingTrain: ParsableCommand {
    /// RINGTRAIN_PARSE_ONLY=1: parse and validate the command line, then exit without running it
    /// (the docs test checks every command the docs show this way).
    static func main() {
        guard getenv("RINGTRAIN_PARSE_ONLY") != nil else { return main(nil) }
        do {
            _ = try parseAsRoot()
            Glibc.exit(0)
        } catch {
            exit(withError: error)
        }
    }

    static let configuration = CommandConfiguration(
        commandName: "ringtrain",
        abstract: "Data-parallel deep-learning training on CPUs over ZeroMQ.",
        subcommands: [TrainCommand.self, LaunchCommand.self, CoordinatorCommand.self, WorkerCommand.self, KeygenCommand.self,
                      ConfigCommand.self, EvalCommand.self, PredictCommand.self, GenerateCommand.self, InspectCommand.self,
                      PlotCommand.self, ExportModelCommand.self, SummaryCommand.self, BenchCommand.self, VersionCommand.self,
                      CommWorker.self, CommTest.self]
    )
}

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "version", abstract: "Print versions of RingTrain and the libraries it links.")

    func run() throws {
        print("ringtrain 0.1.0")
        print("libzmq \(ZMQ.version)")
        print("OpenBLAS \(BLAS.configuration) (\(BLAS.threads) threads)")
    }
}

import Glibc
import Logging

/// RingTrain's log, through swift-log: every progress line is an event with a level and the
/// emitting rank (and role) in its metadata; the process's handler prints the lines as the
/// tool always has, each flushed. Levels: `--quiet` keeps warnings and errors, the default adds
/// progress (info), `--verbose` adds every rank's set-up and details (debug). Results — the
/// `done:` and `eval:` lines, a command's own output — are printed whatever the level.
public enum RunLog {
    public static let logger = Logger(label: "ringtrain")

    /// Installs the line handler at `level` (once per process; later calls change the level).
    public static func bootstrap(level: Logger.Level) {
        threshold = level
        guard !bootstrapped else { return }
        bootstrapped = true
        LoggingSystem.bootstrap { label in LineLogHandler(label: label) }
    }

    /// The level of events printed (what `--quiet`/`--verbose` chose).
    nonisolated(unsafe) public static var threshold: Logger.Level = .info
    nonisolated(unsafe) static var bootstrapped = false

    public static func info(_ s: String, rank: Int? = nil) { logger.info("\(s)", metadata: rank.map { ["rank": "\($0)"] }) }
    public static func debug(_ s: String, rank: Int? = nil) { logger.debug("\(s)", metadata: rank.map { ["rank": "\($0)"] }) }
    public static func warning(_ s: String, rank: Int? = nil) { logger.warning("\(s)", metadata: rank.map { ["rank": "\($0)"] }) }
}

/// Prints each event's message as one line on stdout (warnings and errors too, so they stay in
/// order with the progress around them), when its level reaches the process's threshold.
public struct LineLogHandler: LogHandler {
    public let label: String
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level {
        get { RunLog.threshold }
        set { RunLog.threshold = newValue }
    }

    public init(label: String) { self.label = label }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        guard event.level >= RunLog.threshold else { return }
        print(event.message.description)
        fflush(stdout)
    }
}

import Config

/// Following one validation metric over epochs, for `checkpoint.best` (keep the best model) and
/// `train.early_stopping` (stop when it has not improved for `patience` epochs):
///
///     checkpoint: {best: val_acc}                      # or {metric: val_acc, mode: max}
///     train: {early_stopping: {metric: val_loss, patience: 5, min_delta: 0.001}}
///
/// `mode` (min | max) defaults to min for losses and errors (names ending in loss, mse, mae,
/// bpb, ppl) and max otherwise (acc, auc, r2, …). Both need a validation split: the test split
/// is for the end of the run and `ringtrain eval` only.
public struct MetricGoal: Equatable, Sendable {
    public enum Mode: String, CaseIterable, Sendable { case min, max }
    public var metric: String
    public var mode: Mode
    /// Early stopping: epochs without improvement before stopping (0 for checkpoint.best).
    public var patience = 0
    /// An improvement must beat the best by more than this.
    public var minDelta = 0.0

    public init(metric: String, mode: Mode? = nil, patience: Int = 0, minDelta: Double = 0) {
        self.metric = metric
        self.mode = mode ?? Self.defaultMode(metric)
        self.patience = patience
        self.minDelta = minDelta
    }

    public static func defaultMode(_ metric: String) -> Mode {
        ["loss", "mse", "mae", "bpb", "ppl"].contains { metric.hasSuffix($0) } ? .min : .max
    }

    /// Reads `key` of `r`: a metric name or `{metric, mode[, patience, min_delta]}`.
    static func read(_ r: ConfigReader, _ key: String, earlyStopping: Bool) throws -> MetricGoal? {
        guard let v = r.value(key), v != .null else { return nil }
        let goal: MetricGoal
        if case .string(let s) = v, !earlyStopping {
            goal = MetricGoal(metric: s)
        } else {
            let e = try ConfigReader(v, source: r.source, path: r.join(key))
            goal = MetricGoal(metric: try e.requiredString("metric"), mode: try e.optionalChoice("mode", Mode.self),
                              patience: earlyStopping ? try e.int("patience", default: 5, min: 1) : 0,
                              minDelta: earlyStopping ? try e.double("min_delta", default: 0, min: 0) : 0)
            try e.finish()
        }
        guard goal.metric.hasPrefix("val_") else {
            throw r.error(key, "follows a validation metric (val_loss, val_acc, …), not \"\(goal.metric)\": the test split is kept for the end of the run")
        }
        return goal
    }

    var configValue: ConfigValue {
        var e = [ConfigEntry(key: "metric", value: .string(metric)), ConfigEntry(key: "mode", value: .string(mode.rawValue))]
        if patience > 0 { e += [ConfigEntry(key: "patience", value: .int(patience)), ConfigEntry(key: "min_delta", value: .double(minDelta))] }
        return .map(e)
    }

    /// Whether `v` improves on `best`.
    func improves(_ v: Double, on best: Double?) -> Bool {
        guard v.isFinite else { return false }
        guard let b = best else { return true }
        return mode == .min ? v < b - minDelta : v > b + minDelta
    }
}

/// Where a followed metric stands: its best value, the epoch of it, epochs since.
public struct MetricTrack: Equatable, Sendable {
    public var best: Double?
    public var bestEpoch = 0
    public var sinceBest = 0

    /// Adds an epoch's value; true when it is a new best.
    mutating func add(_ v: Double, epoch: Int, goal: MetricGoal) -> Bool {
        if goal.improves(v, on: best) {
            best = v
            bestEpoch = epoch
            sinceBest = 0
            return true
        }
        sinceBest += 1
        return false
    }

    var configValue: ConfigValue {
        .object(["best": best.map { .double($0) } ?? .null, "best_epoch": .int(bestEpoch), "since_best": .int(sinceBest)])
    }

    init() {}

    init(_ v: ConfigValue) {
        best = v["best"]?.number
        if case .int(let e)? = v["best_epoch"] { bestEpoch = e }
        if case .int(let s)? = v["since_best"] { sinceBest = s }
    }
}

/// A metric of an evaluation by its logged name (val_loss, val_acc, …).
func metric(_ ev: Evaluation, _ name: String) -> Double? {
    if name == "\(ev.split)_loss" { return ev.loss }
    return ev.metrics.first { "\(ev.split)_\($0.name)" == name }?.value
}

/// Every metric name of an evaluation, for errors.
func metricNames(_ ev: Evaluation) -> [String] { ["\(ev.split)_loss"] + ev.metrics.map { "\(ev.split)_\($0.name)" } }

import Config
import Glibc
import NN
import Optim

/// Transfer learning's controls over which parameters train and how fast, by state_dict name
/// pattern (`*` and `?` as in shell globs, e.g. "0.*", "*.bias", "3.layers.?.weight"):
///
///     train:
///       freeze: ["0.*", {params: "2.*", epochs: 3}]   # never trained / frozen for the first 3 epochs
///     optimizer:
///       groups:                                      # the first group that matches a tensor wins
///         - {params: ["0.*", "2.*"], lr_scale: 0.1}  # fine-tune the body 10× slower than the head
///         - {params: "*.bias", weight_decay: 0}
///
/// A frozen tensor is not updated and its optimizer state does not move (PyTorch's
/// `requires_grad = False`); when every parameter of the first layers is frozen, backward stops
/// above them (feature extraction costs only the head's backward).
public struct Freeze: Equatable, Sendable {
    public var patterns: [String]
    /// Frozen for this many epochs, then trained (0: the whole run).
    public var epochs = 0
    public init(patterns: [String], epochs: Int = 0) { self.patterns = patterns; self.epochs = epochs }

    /// Frozen during `epoch` (0-based)?
    public func applies(epoch: Int) -> Bool { epochs == 0 || epoch < epochs }
}

public struct ParameterGroup: Equatable, Sendable {
    public var patterns: [String]
    public var lrScale = 1.0
    /// The group's weight decay (nil: the optimizer's, with its `decay` rule).
    public var weightDecay: Double?
    public init(patterns: [String], lrScale: Double = 1, weightDecay: Double? = nil) {
        self.patterns = patterns; self.lrScale = lrScale; self.weightDecay = weightDecay
    }
}

/// Shell-style match of a tensor name.
public func nameMatches(_ name: String, _ pattern: String) -> Bool { fnmatch(pattern, name, 0) == 0 }

enum ParameterGroupsConfig {
    /// "pattern" or ["p1", "p2"] at `key` of an entry.
    static func patterns(_ v: ConfigValue?, _ r: ConfigReader, _ key: String) throws -> [String] {
        switch v {
        case .string(let s)?: return [s]
        case .list(let l)? where !l.isEmpty:
            return try l.map { if case .string(let s) = $0 { return s }; throw r.error(key, "expected name patterns (strings), found \($0.summary)") }
        default: throw r.error(key, "required: a name pattern or a list of them, e.g. \"0.*\" or [\"0.*\", \"*.bias\"]")
        }
    }

    static func freeze(_ t: ConfigReader) throws -> [Freeze] {
        guard let l = try t.optionalList("freeze") else { return [] }
        return try l.enumerated().map { i, v in
            if case .string(let s) = v { return Freeze(patterns: [s]) }
            let e = try ConfigReader(v, source: t.source, path: t.join("freeze[\(i)]"))
            let f = Freeze(patterns: try patterns(e.value("params"), e, "params"), epochs: try e.int("epochs", default: 0, min: 0))
            try e.finish()
            return f
        }
    }

    static func groups(_ o: ConfigReader) throws -> [ParameterGroup] {
        guard let l = try o.optionalList("groups") else { return [] }
        return try l.enumerated().map { i, v in
            let e = try ConfigReader(v, source: o.source, path: o.join("groups[\(i)]"))
            let g = ParameterGroup(patterns: try patterns(e.value("params"), e, "params"),
                                   lrScale: try e.double("lr_scale", default: 1, min: 0),
                                   weightDecay: try e.optionalDouble("weight_decay", min: 0))
            try e.finish()
            return g
        }
    }

    static func value(_ f: [Freeze]) -> ConfigValue {
        .list(f.map { .object(["params": .list($0.patterns.map { .string($0) }), "epochs": .int($0.epochs)]) })
    }

    static func value(_ g: [ParameterGroup]) -> ConfigValue {
        .list(g.map { x in
            .map([ConfigEntry(key: "params", value: .list(x.patterns.map { .string($0) })), ConfigEntry(key: "lr_scale", value: .double(x.lrScale))]
                 + (x.weightDecay.map { [ConfigEntry(key: "weight_decay", value: .double($0))] } ?? []))
        })
    }
}

extension Trainer {
    /// Every pattern of `train.freeze` and `optimizer.groups` must name some parameter of the
    /// model; a typo would otherwise silently train everything.
    func checkParameterPatterns() throws {
        let names = replicas.flatMap { r in r.model.parameters.map { r.prefix + $0.name } }
        func check(_ p: String, _ key: String) throws {
            guard !names.contains(where: { nameMatches($0, p) }) else { return }
            let hint = closest(p, among: names).map { " (did you mean \"\($0)\"?)" } ?? ""
            throw TrainError("\(key): the pattern \"\(p)\" matches no parameter\(hint); the model's are \(names.prefix(12).joined(separator: ", "))\(names.count > 12 ? ", …" : "")")
        }
        for f in job.train.freeze { for p in f.patterns { try check(p, "train.freeze") } }
        for g in job.optimizer.groups { for p in g.patterns { try check(p, "optimizer.groups") } }
    }

    /// Sets each optimizer's groups for `epoch` (freezes end after their epochs) and where
    /// backward may stop. Returns the names frozen now.
    @discardableResult
    func applyParameterGroups(epoch: Int) -> [String] {
        let freezes = job.train.freeze.filter { $0.applies(epoch: epoch) }
        var frozenNow: [String] = []
        guard !job.train.freeze.isEmpty || !job.optimizer.groups.isEmpty else { return [] }
        for r in replicas {
            let o = job.optimizer
            let matrices = o.decay == .matrices
            func frozen(_ name: String) -> Bool { freezes.contains { $0.patterns.contains { nameMatches(name, $0) } } }
            r.optimizer.runs = ParameterRuns(Float(o.weightDecay), layout: r.model.values.layout, matricesOnly: matrices) { name, _ in
                let full = r.prefix + name
                if frozen(full) { return (0, nil) }
                guard let g = o.groups.first(where: { $0.patterns.contains { nameMatches(full, $0) } }) else { return (1, nil) }
                return (Float(g.lrScale), g.weightDecay.map(Float.init))
            }
            // Layers whose every parameter is frozen, from the input on, need no backward.
            let layers = r.model.network.layers
            var below = 0, sawFrozen = false
            for (i, layer) in layers.enumerated() {
                let own = layer.namedParameters().map { "\(i).\($0.name)" }
                if own.isEmpty { continue }
                if !own.allSatisfy({ frozen(r.prefix + $0) }) { below = sawFrozen ? i : 0; break }
                sawFrozen = true
                below = i + 1
            }
            // A model whose parameters are not named by layer index (encoder–decoders) keeps
            // its whole backward.
            if !r.model.parameters.allSatisfy({ n in layers.indices.contains { n.name.hasPrefix("\($0).") } }) { below = 0 }
            r.model.network.frozenBelow = min(below, layers.count - 1)
            frozenNow += r.model.parameters.map { r.prefix + $0.name }.filter(frozen)
        }
        return frozenNow
    }
}

import Comm
import Config
import Datasets
import Formats
import Glibc
import NN
import Optim
import TensorCore

/// Where a run stands: `epoch` is the epoch in progress (0-based), `stepInEpoch` the steps
/// of it already taken, `globalStep` the optimizer steps since the start of the run.
public struct TrainState: Equatable, Sendable {
    public var epoch = 0
    public var stepInEpoch = 0
    public var globalStep = 0
    public init(epoch: Int = 0, stepInEpoch: Int = 0, globalStep: Int = 0) {
        self.epoch = epoch
        self.stepInEpoch = stepInEpoch
        self.globalStep = globalStep
    }
}

/// The one checkpoint format of every mode: safetensors with PyTorch `state_dict` names
/// ("1.weight" [out, in], …), optimizer slots as "optimizer.<slot>.<name>", and
/// `__metadata__` holding JSON strings for the model spec, job, progress and RNG states.
public enum Checkpoint {
    public static let format = "ringtrain.checkpoint/1"

    /// Everything a checkpoint restores besides tensors.
    public struct Contents {
        public var job: JobConfig
        public var state: TrainState
        public var rngs: [String: RNG]
        /// Optimizer steps taken, per model name ("model" for a single-model job).
        public var optimizerSteps: [String: Int]
        public var worldSize: Int
        /// What the model needs to read new data as it read the training data (absent in
        /// checkpoints written before the data path knew anything but Fashion-MNIST).
        public var data: DataInfo?
        public var file: SafeTensors.File
        public var path: String
        /// checkpoint.best and early stopping: where their metrics stood.
        public var selection: ConfigValue?
    }

    /// Tensors of a multi-model job carry their model's name as a prefix ("generator.0.weight").
    public static func save(to path: String, job: JobConfig, replicas: [Replica],
                            state: TrainState, rngs: [String: RNG], worldSize: Int, data: DataInfo,
                            selection: ConfigValue? = nil) throws {
        let w = writer(job: job, replicas: replicas, state: state, rngs: rngs, worldSize: worldSize, data: data, selection: selection)
        let dir = FileIO.directory(of: path)
        try FileIO.makeDirectories(dir)
        try w.write(to: path)
    }

    /// A checkpoint's bytes, as `save` writes them (an elastic job's state handed round the
    /// ring), with `extra` metadata of the caller's.
    public static func encode(job: JobConfig, replicas: [Replica], state: TrainState, rngs: [String: RNG], worldSize: Int,
                              data: DataInfo, selection: ConfigValue? = nil, extra: [String: String] = [:]) -> [UInt8] {
        var w = writer(job: job, replicas: replicas, state: state, rngs: rngs, worldSize: worldSize, data: data, selection: selection)
        for (k, v) in extra { w.metadata[k] = v }
        return w.bytes()
    }

    private static func writer(job: JobConfig, replicas: [Replica], state: TrainState, rngs: [String: RNG], worldSize: Int,
                               data: DataInfo, selection: ConfigValue?) -> SafeTensors.Writer {
        var w = SafeTensors.Writer()
        for r in replicas {
            for (name, p) in r.model.parameters {
                w.add(r.prefix + name, shape: p.shape, floats: p.value.data)
            }
            for (name, b) in r.model.buffers {
                if b.isCounter { w.add(r.prefix + name, shape: b.shape, int64s: [Int64(b.value.data[0])]) }
                else { w.add(r.prefix + name, shape: b.shape, floats: b.value.data) }
            }
            for slot in r.optimizer.slots {
                for e in slot.arena.layout.entries {
                    w.add("optimizer.\(slot.name).\(r.prefix)\(e.name)", shape: e.shape, floats: slot.arena.data + e.offset)
                }
            }
        }
        let optimizer = replicas[0].optimizer
        let rngValue = ConfigValue.map(rngs.keys.sorted().map { k in
            ConfigEntry(key: k, value: .list(rngs[k]!.stateWords.map { .string(String($0, radix: 16)) }))
        })
        w.metadata = [
            "format": format,
            "model": JSON.string(replicas[0].model.spec.configValue),
            "job": JSON.string(job.configValue),
            "epoch": String(state.epoch),
            "step_in_epoch": String(state.stepInEpoch),
            "global_step": String(state.globalStep),
            "optimizer": JSON.string(.object([
                "type": .string(job.optimizer.type.rawValue),
                "steps": .int(optimizer.stepCount),
                "slots": .list(optimizer.slots.map { .string($0.name) }),
                "model_steps": .map(replicas.map { ConfigEntry(key: $0.name, value: .int($0.optimizer.stepCount)) }),
            ])),
            "data": JSON.string(data.configValue),
            "rng": JSON.string(rngValue),
            "world_size": String(worldSize),
        ]
        if let s = selection { w.metadata["selection"] = JSON.string(s) }
        return w
    }

    /// Reads and validates a checkpoint's metadata (tensors are checked when restored).
    public static func load(_ path: String) throws -> Contents {
        try parse(try FileIO.read(path), source: path)
    }

    /// Validates a checkpoint image; `source` names it in errors.
    public static func parse(_ bytes: [UInt8], source path: String) throws -> Contents {
        let file = try SafeTensors.parse(bytes, source: path)
        let m = file.metadata
        func bad(_ what: String) -> FileError { FileError(path, "checkpoint metadata: \(what)") }
        guard let f = m["format"] else {
            throw bad("no \"format\" entry; this safetensors file is not a RingTrain checkpoint (use --init-from to load bare weights)")
        }
        guard f == format else { throw bad("format \"\(f)\" is not supported (expected \(format))") }
        func int(_ k: String) throws -> Int {
            guard let s = m[k], let v = Int(s), v >= 0 else { throw bad("\"\(k)\" missing or not a non-negative integer") }
            return v
        }
        func json(_ k: String) throws -> ConfigValue {
            guard let s = m[k] else { throw bad("\"\(k)\" missing") }
            do { return try JSON.parse(s) } catch { throw bad("\"\(k)\": \(error)") }
        }
        let job = try JobConfig(try json("job"), source: "\(path) (metadata job)")
        let spec = try ModelSpec(try ConfigReader(try json("model"), source: "\(path) (metadata model)"))
        guard spec == job.namedModels[0].spec else { throw bad("model spec differs from the job's model") }
        let state = TrainState(epoch: try int("epoch"), stepInEpoch: try int("step_in_epoch"),
                               globalStep: try int("global_step"))
        guard case .map(let opt) = try json("optimizer"),
              case .int(let steps)? = opt.first(where: { $0.key == "steps" })?.value, steps >= 0 else {
            throw bad("\"optimizer\" must hold a non-negative \"steps\"")
        }
        var modelSteps = [job.namedModels[0].name: steps]
        if case .map(let per)? = opt.first(where: { $0.key == "model_steps" })?.value {
            for e in per {
                guard case .int(let n) = e.value, n >= 0 else { throw bad("optimizer.model_steps.\(e.key) is not a non-negative integer") }
                modelSteps[e.key] = n
            }
        }
        let data = try m["data"].map { _ in try DataInfo(try json("data"), source: "\(path) (metadata data)") }
        guard case .map(let rngEntries) = try json("rng") else { throw bad("\"rng\" is not an object") }
        var rngs: [String: RNG] = [:]
        for e in rngEntries {
            guard case .list(let words) = e.value else { throw bad("rng.\(e.key) is not a list") }
            let parsed = words.compactMap { w -> UInt64? in
                if case .string(let s) = w { return UInt64(s, radix: 16) }
                return nil
            }
            guard parsed.count == words.count, let rng = RNG(stateWords: parsed) else {
                throw bad("rng.\(e.key) is not four hexadecimal state words")
            }
            rngs[e.key] = rng
        }
        return Contents(job: job, state: state, rngs: rngs, optimizerSteps: modelSteps,
                        worldSize: try int("world_size"), data: data, file: file, path: path,
                        selection: try m["selection"].map { _ in try json("selection") })
    }

    /// Copies the model's parameters out of `file`, checking names, dtypes and shapes like
    /// `load_state_dict(strict=True)`: every parameter must be present; tensors the model
    /// does not have are errors unless they are optimizer slots.
    /// With a `prefix` (one model of a multi-model checkpoint), only tensors under it are this model's.
    public static func loadParameters(into model: Model, from file: SafeTensors.File, source: String, prefix: String = "") throws {
        var missing: [String] = []
        for (name, p) in model.parameters {
            guard let t = file.tensor(prefix + name) else { missing.append(prefix + name); continue }
            try check(t, shape: p.shape, source: source)
            t.copyFloats(into: p.value.data)
        }
        for (name, b) in model.buffers {
            guard let t = file.tensor(prefix + name) else { missing.append(prefix + name); continue }
            if b.isCounter {
                guard t.dtype == .I64, t.shape == b.shape else {
                    throw FileError(source, "tensor \(t.name) has dtype \(t.dtype.rawValue) and shape \(t.shape), expected I64 \(b.shape)")
                }
                b.value.data[0] = Float(t.int64s()[0])
            } else {
                try check(t, shape: b.shape, source: source)
                t.copyFloats(into: b.value.data)
            }
        }
        if !missing.isEmpty {
            throw FileError(source, "missing tensors for model parameters: \(missing.joined(separator: ", "))")
        }
        let known = Set((model.parameters.map(\.name) + model.buffers.map(\.name)).map { prefix + $0 })
        let extra = file.tensors.map(\.name).filter { !known.contains($0) && !$0.hasPrefix("optimizer.") && $0.hasPrefix(prefix) }
        if !extra.isEmpty {
            throw FileError(source, "tensors the model does not have: \(extra.joined(separator: ", ")) (is this checkpoint for a different model?)")
        }
    }

    /// Transfer learning: copies every tensor whose name and shape match a parameter or buffer
    /// of `model`; returns the model's names left as initialised (a new head) and the file's
    /// tensors nothing took (an old head).
    public static func loadMatching(into model: Model, from file: SafeTensors.File, source: String,
                                    prefix: String = "") throws -> (fresh: [String], unused: [String]) {
        var fresh: [String] = [], taken = Set<String>()
        for (name, v) in model.parameters.map({ ($0.name, $0.parameter.value) }) + model.buffers.filter({ !$0.buffer.isCounter }).map({ ($0.name, $0.buffer.value) }) {
            guard let t = file.tensor(prefix + name), t.shape == v.shape else { fresh.append(name); continue }
            try check(t, shape: v.shape, source: source)
            t.copyFloats(into: v.data)
            taken.insert(prefix + name)
        }
        let unused = file.tensors.map(\.name).filter { !taken.contains($0) && !$0.hasPrefix("optimizer.") && $0.hasPrefix(prefix) }
        return (fresh, unused)
    }

    /// Restores optimizer slots saved by `save`.
    public static func loadOptimizer(_ optimizer: Optimizer, steps: Int, from file: SafeTensors.File, source: String,
                                     prefix: String = "") throws {
        for slot in optimizer.slots {
            for e in slot.arena.layout.entries {
                let name = "optimizer.\(slot.name).\(prefix)\(e.name)"
                guard let t = file.tensor(name) else {
                    // A run saved before its first step has no momentum yet; anything else is an error.
                    if steps == 0 { continue }
                    throw FileError(source, "missing optimizer tensor \(name)")
                }
                try check(t, shape: e.shape, source: source)
                t.copyFloats(into: slot.arena.data + e.offset)
            }
        }
        optimizer.stepCount = steps
    }

    static func check(_ t: SafeTensors.Entry, shape: [Int], source: String) throws {
        guard t.dtype == .F32 else {
            throw FileError(source, "tensor \(t.name) has dtype \(t.dtype.rawValue), expected F32")
        }
        guard t.shape == shape else {
            throw FileError(source, "tensor \(t.name) has shape \(t.shape), the model expects \(shape)")
        }
    }

    /// File name for the checkpoint written after `globalStep` steps.
    public static func fileName(step: Int) -> String {
        let s = String(step)
        return "step-" + String(repeating: "0", count: max(0, 8 - s.count)) + s + ".safetensors"
    }

    /// Deletes `*.tmp-<pid>` files in `dir` whose writer is no longer running (a process
    /// killed while writing a checkpoint leaves one); a live writer's are kept. Returns them.
    @discardableResult
    public static func removeStaleTemporaries(in dir: String) -> [String] {
        var removed: [String] = []
        for f in FileIO.list(dir) {
            guard let dash = f.lastIndex(of: "-"), f[..<dash].hasSuffix(".tmp"), let pid = Int32(f[f.index(after: dash)...]), pid > 0 else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH {
                FileIO.remove("\(dir)/\(f)")
                removed.append("\(dir)/\(f)")
            }
        }
        return removed
    }

    /// Checkpoints in `dir`, oldest first.
    public static func list(in dir: String) -> [String] {
        FileIO.list(dir).filter { $0.hasPrefix("step-") && $0.hasSuffix(".safetensors") }.map { "\(dir)/\($0)" }
    }

    /// Deletes all but the newest `keep` checkpoints in `dir`.
    public static func prune(_ dir: String, keep: Int) {
        let all = list(in: dir)
        for p in all.dropLast(keep) { FileIO.remove(p) }
    }
}

extension Checkpoint {
    /// Loads a checkpoint on every rank while only rank 0 reads the file (workers on other hosts
    /// need no shared filesystem): rank 0 broadcasts the bytes through the ring, and a read
    /// error on rank 0 becomes the same error everywhere.
    public static func loadShared(_ path: String, comm: Communicator) throws -> Contents {
        guard comm.worldSize > 1 else { return try load(path) }
        return try share(comm.rank == 0 ? Result { try FileIO.read(path) } : nil, source: path, comm: comm)
    }

    /// Rank 0's checkpoint bytes (or its error reading them), parsed on every rank.
    public static func share(_ rank0: Result<[UInt8], Error>?, source path: String, comm: Communicator) throws -> Contents {
        var bytes: [UInt8] = []
        var status: [UInt8] = []
        if comm.rank == 0 {
            switch rank0 {
            case .success(let b)?:
                bytes = b
                status = Array("OK \(bytes.count)".utf8)
            case .failure(let error)?: status = Array("ERR \(error)".utf8)
            case nil: status = Array("ERR rank 0 has no state to share".utf8)
            }
        }
        let head = String(decoding: try comm.allGather(status)[0], as: UTF8.self)
        guard head.hasPrefix("OK "), let n = Int(head.dropFirst(3)) else {
            throw FileError(path, "rank 0 could not read the checkpoint: \(head.dropFirst(4))")
        }
        var floats = [Float](repeating: 0, count: (n + 3) / 4)
        if comm.rank == 0 { floats.withUnsafeMutableBytes { $0.copyBytes(from: bytes) } }
        try floats.withUnsafeMutableBufferPointer { try comm.broadcast($0, root: 0) }
        if comm.rank != 0 { bytes = floats.withUnsafeBytes { Array($0.prefix(n)) } }
        return try parse(bytes, source: path)
    }
}

import Config
import Formats
import Train

/// Control-plane messages between the coordinator (ROUTER) and workers (DEALER). Each is one
/// ZeroMQ frame holding a JSON object `{"type": …, "v": 1, …}`, at most `maxBytes` long. Every
/// field is checked on arrival; a message that fails is logged and dropped (or answered with
/// REJECT during rendezvous), never trusted. See docs/protocol.md.
public enum ControlMessage: Equatable, Sendable {
    public static let version = 1
    public static let maxBytes = 1 << 20

    public struct Hello: Equatable, Sendable {
        public var host: String
        public var pid: Int
        /// The worker's ring input, e.g. tcp://10.0.0.5:41733.
        public var endpoint: String
        public var build: String
        /// Hash of the worker's own job file, when it was given one (must match the coordinator's).
        public var jobHash: String?
        /// Rank asked for (from --rank, RANK or SLURM_PROCID).
        public var rank: Int?
        /// CURVE public key (Z85) of the worker's ring input, when security is on.
        public var publicKey: String?
        public var protocolVersion = ControlMessage.version
        public init(host: String, pid: Int, endpoint: String, build: String, jobHash: String? = nil,
                    rank: Int? = nil, publicKey: String? = nil) {
            self.host = host; self.pid = pid; self.endpoint = endpoint; self.build = build
            self.jobHash = jobHash; self.rank = rank; self.publicKey = publicKey
        }
    }

    public struct Welcome: Equatable, Sendable {
        public var rank: Int
        public var world: Int
        public var peers: [String]
        public var hosts: [String]
        /// Ring input public keys by rank (CURVE on), else empty.
        public var peerKeys: [String]
        public var runID: UInt64
        public var job: ConfigValue
        /// Checkpoint to resume from (read by rank 0 and broadcast to the others).
        public var resume: String?
        /// Weights a fresh run starts from (each rank reads them; rank 0's are broadcast), and
        /// whether only the tensors that match are taken (fine-tuning with a new head).
        public var initFrom: String?
        public var initPartial = false
        /// The run directory rank 0 records into (log, metrics, TensorBoard, checkpoints).
        public var runDir: String?
        /// This run's secret: without CURVE, ring connections present it (PLAIN) and a ring
        /// input admits no other.
        public var ringSecret: String?
        /// Elastic jobs: the world's generation, 0 at the start and one more at each regroup
        /// (a lost or a joining worker). From generation 1 on, rank 0 broadcasts its state to
        /// the ring (parameters, optimizer, progress and RNG) instead of anyone reading a file.
        public var generation = 0
        /// The job goes on without a lost worker (`--min-workers`): a ring failure is reported
        /// as recoverable and the worker waits for PAUSE instead of ABORT.
        public var elastic = false
        public init(rank: Int, world: Int, peers: [String], hosts: [String], peerKeys: [String] = [],
                    runID: UInt64, job: ConfigValue, resume: String? = nil, initFrom: String? = nil, initPartial: Bool = false,
                    runDir: String? = nil, ringSecret: String? = nil, generation: Int = 0, elastic: Bool = false) {
            self.rank = rank; self.world = world; self.peers = peers; self.hosts = hosts
            self.peerKeys = peerKeys; self.runID = runID; self.job = job; self.resume = resume
            self.initFrom = initFrom; self.initPartial = initPartial; self.runDir = runDir
            self.ringSecret = ringSecret
            self.generation = generation
            self.elastic = elastic
        }
    }

    case hello(Hello)
    case welcome(Welcome)
    case reject(reason: String)
    case heartbeat(rank: Int, step: Int)
    case ping
    /// An epoch's evaluation (named values, e.g. val_loss, val_acc) and training speed.
    case metrics(rank: Int, epoch: Int, step: Int, values: [Metric], samplesPerSecond: Double)
    case done(rank: Int, step: Int)
    /// `recoverable`: a ring failure (an elastic job can go on without `peer`), not an error
    /// of the job itself (bad data, a diverged loss), which would recur in any world.
    case failed(rank: Int, peer: Int?, message: String, recoverable: Bool = false)
    case abort(rank: Int?, host: String?, message: String)
    /// Elastic jobs, coordinator → workers: stop at once and report (READY); the world is
    /// about to change to `generation`.
    case pause(generation: Int)
    /// Elastic jobs, coordinator → a worker arriving during the run: admitted; load the job's
    /// data and answer READY (generation 0), then wait for the WELCOME of the generation it joins.
    case standby(job: ConfigValue)
    /// Worker → coordinator, answering PAUSE (or STANDBY, with generation 0): the last step this worker completed and the
    /// fresh ring input it listens on for the next generation (no step: it holds no state yet,
    /// a worker that joined and was paused before rank 0's state reached it).
    case ready(rank: Int, generation: Int, step: Int?, endpoint: String)

    public var type: String {
        switch self {
        case .hello: return "HELLO"
        case .welcome: return "WELCOME"
        case .reject: return "REJECT"
        case .heartbeat: return "HEARTBEAT"
        case .ping: return "PING"
        case .metrics: return "METRICS"
        case .done: return "DONE"
        case .failed: return "FAILED"
        case .abort: return "ABORT"
        case .pause: return "PAUSE"
        case .ready: return "READY"
        case .standby: return "STANDBY"
        }
    }

    // MARK: encoding

    public func encode() -> [UInt8] {
        var fields: [ConfigEntry] = [ConfigEntry(key: "type", value: .string(type)),
                                     ConfigEntry(key: "v", value: .int(Self.version))]
        func put(_ k: String, _ v: ConfigValue?) { if let v { fields.append(ConfigEntry(key: k, value: v)) } }
        switch self {
        case .hello(let h):
            fields[1].value = .int(h.protocolVersion)
            put("host", .string(h.host)); put("pid", .int(h.pid)); put("endpoint", .string(h.endpoint))
            put("build", .string(h.build)); put("job_hash", h.jobHash.map { .string($0) })
            put("rank", h.rank.map { .int($0) }); put("public_key", h.publicKey.map { .string($0) })
        case .welcome(let w):
            put("rank", .int(w.rank)); put("world", .int(w.world))
            put("peers", .list(w.peers.map { .string($0) })); put("hosts", .list(w.hosts.map { .string($0) }))
            put("peer_keys", .list(w.peerKeys.map { .string($0) }))
            put("run_id", .string(String(w.runID, radix: 16))); put("job", w.job)
            put("resume", w.resume.map { .string($0) })
            put("init_from", w.initFrom.map { .string($0) }); put("init_partial", w.initPartial ? .bool(true) : nil)
            put("run_dir", w.runDir.map { .string($0) }); put("ring_secret", w.ringSecret.map { .string($0) })
            put("generation", w.generation > 0 ? .int(w.generation) : nil); put("elastic", w.elastic ? .bool(true) : nil)
        case .reject(let reason): put("reason", .string(reason))
        case .heartbeat(let rank, let step): put("rank", .int(rank)); put("step", .int(step))
        case .ping: break
        case .metrics(let rank, let epoch, let step, let values, let rate):
            put("rank", .int(rank)); put("epoch", .int(epoch)); put("step", .int(step))
            put("values", .map(values.filter { $0.value.isFinite }.map { ConfigEntry(key: $0.name, value: .double($0.value)) }))
            put("samples_per_second", .double(rate))
        case .done(let rank, let step): put("rank", .int(rank)); put("step", .int(step))
        case .failed(let rank, let peer, let message, let recoverable):
            put("rank", .int(rank)); put("peer", peer.map { .int($0) }); put("message", .string(message))
            put("recoverable", recoverable ? .bool(true) : nil)
        case .abort(let rank, let host, let message):
            put("rank", rank.map { .int($0) }); put("host", host.map { .string($0) }); put("message", .string(message))
        case .pause(let g): put("generation", .int(g))
        case .standby(let job): put("job", job)
        case .ready(let rank, let g, let step, let endpoint):
            put("rank", .int(rank)); put("generation", .int(g)); put("step", step.map { .int($0) }); put("endpoint", .string(endpoint))
        }
        return Array(JSON.string(.map(fields)).utf8)
    }

    // MARK: decoding

    public struct DecodeError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Parses and validates one message; `from` names the sender in errors.
    public static func decode(_ bytes: [UInt8], from: String) throws -> ControlMessage {
        func bad(_ m: String) -> DecodeError { DecodeError(description: "message from \(from): \(m)") }
        guard bytes.count <= maxBytes else { throw bad("\(bytes.count) bytes, over the \(maxBytes)-byte limit") }
        let value: ConfigValue
        do { value = try JSON.parse(bytes) } catch { throw bad("\(error)") }
        let r: ConfigReader
        do { r = try ConfigReader(value, source: from) } catch { throw bad("not a JSON object") }
        do {
            let type = try r.requiredString("type")
            let v = try r.requiredInt("v")
            // Only HELLO may carry another version: the coordinator answers it with a clear REJECT.
            guard v == version || type == "HELLO" else { throw r.error("v", "protocol version \(v), expected \(version)") }
            let msg: ControlMessage
            switch type {
            case "HELLO":
                var h = Hello(host: try r.requiredString("host"), pid: try r.requiredInt("pid", min: 0),
                              endpoint: try r.requiredString("endpoint"), build: try r.requiredString("build"),
                              jobHash: try r.optionalString("job_hash"), rank: try r.optionalInt("rank", min: 0),
                              publicKey: try r.optionalString("public_key"))
                h.protocolVersion = v
                msg = .hello(h)
            case "WELCOME":
                let world = try r.requiredInt("world", min: 1, max: 4096)
                let rank = try r.requiredInt("rank", min: 0, max: world - 1)
                func strings(_ k: String) throws -> [String] {
                    try (r.optionalList(k) ?? []).enumerated().map { i, x in
                        guard case .string(let s) = x else { throw r.error("\(k)[\(i)]", "expected a string") }
                        return s
                    }
                }
                let peers = try strings("peers"), hosts = try strings("hosts"), keys = try strings("peer_keys")
                guard peers.count == world, hosts.count == world, keys.isEmpty || keys.count == world else {
                    throw r.error("peers", "expected \(world) peers, hosts (and keys)")
                }
                guard let run = UInt64(try r.requiredString("run_id"), radix: 16) else { throw r.error("run_id", "not hexadecimal") }
                guard let job = r.value("job"), case .map = job else { throw r.error("job", "required object is missing") }
                msg = .welcome(Welcome(rank: rank, world: world, peers: peers, hosts: hosts, peerKeys: keys,
                                       runID: run, job: job, resume: try r.optionalString("resume"),
                                       initFrom: try r.optionalString("init_from"), initPartial: try r.bool("init_partial", default: false),
                                       runDir: try r.optionalString("run_dir"), ringSecret: try r.optionalString("ring_secret"),
                                       generation: try r.optionalInt("generation", min: 0) ?? 0,
                                       elastic: try r.bool("elastic", default: false)))
            case "REJECT": msg = .reject(reason: try r.requiredString("reason"))
            case "HEARTBEAT": msg = .heartbeat(rank: try r.requiredInt("rank", min: 0), step: try r.requiredInt("step", min: 0))
            case "PING": msg = .ping
            case "METRICS":
                let v = try r.section("values")
                let values = try v.entries.map { Metric($0.key, try v.requiredDouble($0.key)) }
                try v.finish()
                msg = .metrics(rank: try r.requiredInt("rank", min: 0), epoch: try r.requiredInt("epoch", min: 0),
                               step: try r.requiredInt("step", min: 0), values: values,
                               samplesPerSecond: try r.requiredDouble("samples_per_second", min: 0))
            case "DONE": msg = .done(rank: try r.requiredInt("rank", min: 0), step: try r.requiredInt("step", min: 0))
            case "FAILED":
                msg = .failed(rank: try r.requiredInt("rank", min: 0), peer: try r.optionalInt("peer", min: 0),
                              message: try r.requiredString("message"), recoverable: try r.bool("recoverable", default: false))
            case "ABORT":
                msg = .abort(rank: try r.optionalInt("rank", min: 0), host: try r.optionalString("host"),
                             message: try r.requiredString("message"))
            case "PAUSE": msg = .pause(generation: try r.requiredInt("generation", min: 1))
            case "STANDBY":
                guard let job = r.value("job"), case .map = job else { throw r.error("job", "required object is missing") }
                msg = .standby(job: job)
            case "READY":
                msg = .ready(rank: try r.requiredInt("rank", min: 0), generation: try r.requiredInt("generation", min: 0),
                             step: try r.optionalInt("step", min: 0), endpoint: try r.requiredString("endpoint"))
            default:
                throw r.error("type", "unknown message type \"\(type)\"")
            }
            try r.finish()
            return msg
        } catch let e as ConfigError {
            throw bad("\(e.path.isEmpty ? "" : e.path + ": ")\(e.message)")
        }
    }
}

/// Identifies a build of RingTrain: workers and coordinator must match exactly.
public enum BuildInfo {
    public static let version = "0.1.0"
    public static let id = "ringtrain-\(version)-p\(ControlMessage.version)"
}

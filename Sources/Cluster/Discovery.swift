import Glibc

/// What a scheduler tells a process about its place in a job, read from the environment:
/// torchrun-style `RANK`, `WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT`, or SLURM's
/// `SLURM_PROCID`, `SLURM_NTASKS`, `SLURM_JOB_NODELIST` (the coordinator runs on the first node,
/// port `RINGTRAIN_PORT` or 29500). Explicit flags win over both.
public struct LaunchEnvironment: Equatable, Sendable {
    public var rank: Int?
    public var worldSize: Int?
    public var coordinatorHost: String?
    public var coordinatorPort: Int?
    public static let defaultPort = 29500

    public init(rank: Int? = nil, worldSize: Int? = nil, coordinatorHost: String? = nil, coordinatorPort: Int? = nil) {
        self.rank = rank
        self.worldSize = worldSize
        self.coordinatorHost = coordinatorHost
        self.coordinatorPort = coordinatorPort
    }

    public struct Problem: Error, CustomStringConvertible { public let description: String }

    public static func current() throws -> LaunchEnvironment { try from(environmentDictionary()) }

    public static func from(_ env: [String: String]) throws -> LaunchEnvironment {
        func int(_ k: String, min: Int = 0) throws -> Int? {
            guard let s = env[k] else { return nil }
            guard let v = Int(s), v >= min else { throw Problem(description: "environment variable \(k)=\"\(s)\" is not an integer ≥ \(min)") }
            return v
        }
        var e = LaunchEnvironment()
        if env["RANK"] != nil || env["MASTER_ADDR"] != nil {
            e.rank = try int("RANK")
            e.worldSize = try int("WORLD_SIZE", min: 1)
            e.coordinatorHost = env["MASTER_ADDR"]
            e.coordinatorPort = try int("MASTER_PORT", min: 1) ?? defaultPort
        } else if env["SLURM_PROCID"] != nil {
            e.rank = try int("SLURM_PROCID")
            e.worldSize = try int("SLURM_NTASKS", min: 1)
            if let list = env["SLURM_JOB_NODELIST"] ?? env["SLURM_NODELIST"] {
                guard let first = firstHost(list) else { throw Problem(description: "cannot read SLURM_JOB_NODELIST=\"\(list)\"") }
                e.coordinatorHost = first
            }
            e.coordinatorPort = try int("RINGTRAIN_PORT", min: 1) ?? defaultPort
        }
        if let r = e.rank, let w = e.worldSize, r >= w {
            throw Problem(description: "rank \(r) from the environment is not below the world size \(w)")
        }
        return e
    }

    public var coordinatorEndpoint: String? {
        coordinatorHost.map { "tcp://\($0):\(coordinatorPort ?? Self.defaultPort)" }
    }
}

/// The first host of a SLURM node list: "node[03-05,9],gpu1" → "node03".
public func firstHost(_ nodelist: String) -> String? {
    let first = nodelist.split(separator: ",", maxSplits: 1).first.map(String.init) ?? ""
    guard let open = first.firstIndex(of: "[") else { return first.isEmpty ? nil : first }
    let prefix = first[..<open]
    let inside = first[first.index(after: open)...].prefix { $0 != "]" && $0 != "," }
    let start = inside.split(separator: "-").first.map(String.init) ?? ""
    return prefix.isEmpty || start.isEmpty ? nil : prefix + start
}

/// The local address this host uses to reach `host` (a UDP socket's source after connect; no
/// packet is sent) — a sensible default for a worker's ring input on a LAN.
public func localAddress(toward host: String) -> String? {
    var hints = addrinfo()
    hints.ai_family = AF_INET
    hints.ai_socktype = Int32(SOCK_DGRAM.rawValue)
    var res: UnsafeMutablePointer<addrinfo>?
    guard getaddrinfo(host, "9", &hints, &res) == 0, let ai = res else { return nil }
    defer { freeaddrinfo(res) }
    let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    guard connect(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0 else { return nil }
    var sa = sockaddr_in()
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let rc = withUnsafeMutablePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    guard rc == 0 else { return nil }
    var buf = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
    inet_ntop(AF_INET, &sa.sin_addr, &buf, socklen_t(buf.count))
    return String(cString: buf)
}

func environmentDictionary() -> [String: String] {
    var env: [String: String] = [:]
    var e = environ
    while let p = e.pointee {
        let s = String(cString: p)
        if let eq = s.firstIndex(of: "=") { env[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
        e += 1
    }
    return env
}

import CSupport
import Formats
import Glibc
import TensorCore

/// Scratch directories and small generated data files for tests.
public enum Fixtures {
    /// A fresh empty directory under /tmp.
    public static func tempDirectory(_ tag: String = "test") -> String {
        var template = Array("/tmp/ringtrain-\(tag)-XXXXXX".utf8CString)
        let p = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        return String(cString: p!)
    }

    /// An IDX file image of unsigned bytes.
    public static func idx(dims: [Int], bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0, 0, 0x08, UInt8(dims.count)]
        for d in dims { out += [UInt8(d >> 24 & 0xFF), UInt8(d >> 16 & 0xFF), UInt8(d >> 8 & 0xFF), UInt8(d & 0xFF)] }
        return out + bytes
    }

    /// Writes a small learnable Fashion-MNIST look-alike (class c lights up row band c) as
    /// uncompressed IDX files: `train` and `test` samples of 28×28.
    public static func writeSyntheticFashionMNIST(_ dir: String, train: Int, test: Int, seed: UInt64 = 1) throws {
        var rng = RNG(seed: seed)
        func split(_ name: String, _ n: Int) throws {
            var pixels = [UInt8](repeating: 0, count: n * 784)
            var labels = [UInt8](repeating: 0, count: n)
            for i in 0..<n {
                let c = rng.below(10)
                labels[i] = UInt8(c)
                for p in 0..<784 {
                    let row = p / 28
                    let base: Float = (row / 3 == c) ? 180 : 30
                    pixels[i * 784 + p] = UInt8(max(0, min(255, base + 60 * rng.uniform(-1, 1))))
                }
            }
            try FileIO.writeAtomically("\(dir)/\(name)-images-idx3-ubyte", bytes: idx(dims: [n, 28, 28], bytes: pixels))
            try FileIO.writeAtomically("\(dir)/\(name)-labels-idx1-ubyte", bytes: idx(dims: [n], bytes: labels))
        }
        try split("train", train)
        try split("t10k", test)
    }

    /// Writes Fashion-MNIST-named IDX files of 28×28 images whose class is the orientation of a
    /// grating — 0 horizontal, 1 vertical, 2 diagonal, 3 anti-diagonal, period 8 pixels — at a
    /// uniformly random phase, over noise. Each class holds every image together with its negative
    /// (phase + π), so no linear map of the pixels can score a class consistently (it stays near
    /// chance); a convolution and a nonlinearity can. (The row-band data above is separable by a
    /// linear head: a broken conv backward still passes it.)
    public static func writeGratingOrientations(_ dir: String, train: Int, test: Int, seed: UInt64 = 2) throws {
        var rng = RNG(seed: seed)
        func split(_ name: String, _ n: Int) throws {
            var pixels = [UInt8](repeating: 0, count: n * 784)
            var labels = [UInt8](repeating: 0, count: n)
            for i in 0..<n {
                let c = rng.below(4)
                labels[i] = UInt8(c)
                let (a, b) = [(1.0, 0.0), (0.0, 1.0), (0.7071, 0.7071), (0.7071, -0.7071)][c]
                let phase = Double(rng.uniform(0, 2 * .pi))
                for r in 0..<28 {
                    for col in 0..<28 {
                        let v = 128 + 80 * cos(2 * .pi * (a * Double(r) + b * Double(col)) / 8 + phase) + Double(rng.uniform(-20, 20))
                        pixels[i * 784 + r * 28 + col] = UInt8(max(0, min(255, v)))
                    }
                }
            }
            try FileIO.writeAtomically("\(dir)/\(name)-images-idx3-ubyte", bytes: idx(dims: [n, 28, 28], bytes: pixels))
            try FileIO.writeAtomically("\(dir)/\(name)-labels-idx1-ubyte", bytes: idx(dims: [n], bytes: labels))
        }
        try split("train", train)
        try split("t10k", test)
    }

    /// A Python interpreter that can import `module`, if any: $RINGTRAIN_PYTHON, the
    /// project's .venv, then python3 on PATH.
    public static func python(with module: String) -> String? {
        var candidates: [String] = []
        if let e = getenv("RINGTRAIN_PYTHON") { candidates.append(String(cString: e)) }
        candidates.append(packageRoot + "/.venv/bin/python")
        // The PyTorch anchors' interpreter on machines that have it (torch is too large for .venv).
        candidates.append("/opt/anchor-venv/bin/python")
        candidates.append("python3")
        for c in candidates {
            if run([c, "-c", "import \(module)"]).status == 0 { return c }
        }
        return nil
    }

    /// Run directories of the commands tests start go to a temporary root, not ./runs.
    public static func useTemporaryRunsRoot() {
        _ = runsRoot
    }

    public static let runsRoot: String = {
        let r = tempDirectory("runs")
        setenv("RINGTRAIN_RUNS", r, 0)
        return String(cString: getenv("RINGTRAIN_RUNS"))
    }()

    /// The package root (this file sits at Sources/TestSupport/Fixtures.swift).
    public static let packageRoot: String = {
        var p = #filePath
        for _ in 0..<3 { p = FileIO.directory(of: p) }
        return p
    }()

    /// Runs a command (argv[0] looked up in PATH), returning exit status and combined output.
    public static func run(_ argv: [String]) -> (status: Int32, output: String) {
        useTemporaryRunsRoot()
        var fds: [Int32] = [0, 0]
        // Close-on-exec: a process another test starts meanwhile must not inherit the write end
        // (the read below would then wait for that process to exit).
        guard ringtrain_pipe_cloexec(&fds) == 0 else { return (-1, "pipe failed") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
        posix_spawn_file_actions_addclose(&actions, fds[0])
        var pid: pid_t = 0
        let cargs = argv.map { strdup($0) } + [nil]
        defer { cargs.forEach { free($0) } }
        let rc = posix_spawnp(&pid, argv[0], &actions, nil, cargs, environ)
        posix_spawn_file_actions_destroy(&actions)
        close(fds[1])
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fds[0], &buf, buf.count)
            if n <= 0 { break }
            out += buf[0..<n]
        }
        close(fds[0])
        guard rc == 0 else { return (-1, "cannot start \(argv[0])") }
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        let exit = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return (exit, String(decoding: out, as: UTF8.self))
    }
}

extension Fixtures {
    /// The `ringtrain` executable built next to the test bundle.
    public static var ringtrain: String {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        let dir = n > 0 ? FileIO.directory(of: String(cString: buf)) : packageRoot + "/.build/debug"
        return dir + "/ringtrain"
    }

    /// key=value fields of the output lines that start with `tag`.
    public static func records(_ output: String, _ tag: String) -> [[String: String]] {
        output.split(separator: "\n").filter { $0.hasPrefix(tag + " ") }.map { line in
            var d: [String: String] = [:]
            for w in line.split(separator: " ") {
                if let eq = w.firstIndex(of: "=") { d[String(w[..<eq])] = String(w[w.index(after: eq)...]) }
            }
            return d
        }
    }
}

extension Fixtures {
    /// A TCP port on 127.0.0.1 the kernel says is free now (bound to port 0, then released), for
    /// tests that must name a port before a process binds it.
    public static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        precondition(ok, "cannot bind a TCP socket on 127.0.0.1")
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}

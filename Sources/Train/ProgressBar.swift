import Glibc
import TensorCore

/// The live progress line of a run on a terminal (as tqdm or Keras draw it):
///
///     epoch 3/10 ━━━━━━━━━━━━━━━━╺━━━━━━━━━━━━━  234/468  41.2k samples/s  loss 0.4123  lr 0.04500  ETA 0:05
///
/// redrawn in place at most ten times a second and cut to the terminal's width; every other
/// line (epoch summaries, checkpoints) is printed above it, so the log reads as it would
/// without the bar. Off a terminal there is no bar: the trainer prints its periodic lines.
/// Colour only when `NO_COLOR` is unset and the terminal is not "dumb".
public final class ProgressBar {
    public struct Status: Equatable, Sendable {
        public var epoch: Int
        public var epochs: Int
        public var step: Int
        public var steps: Int
        public var samplesPerSecond: Double
        public var loss: Double
        public var lr: Double
        public var etaSeconds: Double?
        public init(epoch: Int, epochs: Int, step: Int, steps: Int, samplesPerSecond: Double, loss: Double, lr: Double,
                    etaSeconds: Double?) {
            self.epoch = epoch; self.epochs = epochs; self.step = step; self.steps = steps
            self.samplesPerSecond = samplesPerSecond; self.loss = loss; self.lr = lr; self.etaSeconds = etaSeconds
        }
    }

    public let color: Bool
    private let out: Int32
    private let widthOverride: Int?
    private var shown = false
    private var lastDraw = -1.0
    private var last: Status?
    // The epoch in progress: when it started, and the loss sum so far.
    private var epochStart: (time: Double, step: Int, epoch: Int)?
    private var lossSum = 0.0, lossCount = 0

    /// A bar on `fd` (stdout) when it is a terminal; nil otherwise.
    public static func forTerminal(fd: Int32 = 1) -> ProgressBar? {
        guard isatty(fd) != 0 else { return nil }
        let term = getenv("TERM").map { String(cString: $0) } ?? ""
        guard term != "dumb" else { return nil }
        return ProgressBar(fd: fd, color: getenv("NO_COLOR").map { $0.pointee == 0 } ?? true)
    }

    public init(fd: Int32 = 1, color: Bool, width: Int? = nil) {
        out = fd
        self.color = color
        widthOverride = width
    }

    /// Terminal columns (TIOCGWINSZ, else $COLUMNS, else 80).
    public var width: Int {
        if let w = widthOverride { return w }
        var ws = winsize()
        if ioctl(out, UInt(TIOCGWINSZ), &ws) == 0, ws.ws_col > 0 { return Int(ws.ws_col) }
        if let c = getenv("COLUMNS"), let n = Int(String(cString: c)), n > 0 { return n }
        return 80
    }

    /// After each step: redraws when a tenth of a second has passed (and at an epoch's end).
    public func step(epoch: Int, epochs: Int, step: Int, steps: Int, globalBatch: Int, loss: Float, lr: Float) {
        let now = monotonicSeconds()
        if epochStart?.epoch != epoch {
            epochStart = (now, step - 1, epoch)
            lossSum = 0
            lossCount = 0
        }
        if loss.isFinite { lossSum += Double(loss); lossCount += 1 }
        let start = epochStart!
        let done = step - start.step, elapsed = now - start.time
        let rate = done > 0 && elapsed > 0 ? Double(done * globalBatch) / elapsed : 0
        let eta = done > 0 && elapsed > 0 ? Double(steps - step) * elapsed / Double(done) : nil
        last = Status(epoch: epoch, epochs: epochs, step: step, steps: steps, samplesPerSecond: rate,
                      loss: lossCount > 0 ? lossSum / Double(lossCount) : .nan, lr: Double(lr), etaSeconds: eta)
        if now - lastDraw >= 0.1 || step == steps { draw(); lastDraw = now }
    }

    /// Prints a line above the bar (the bar is drawn again below it).
    public func printAbove(_ line: String) {
        var s = shown ? "\r\u{1B}[K" : ""
        s += line + "\n"
        write(s)
        shown = false
        if last != nil && last!.step < last!.steps { draw() }
    }

    /// Clears the bar (at the end of the run).
    public func finish() {
        if shown { write("\r\u{1B}[K") }
        shown = false
        last = nil
    }

    private func draw() {
        guard let s = last else { return }
        write("\r" + Self.render(s, width: width, color: color) + "\u{1B}[K")
        shown = true
    }

    private func write(_ s: String) {
        fflush(stdout)
        var bytes = Array(s.utf8)
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.write(out, $0.baseAddress! + done, $0.count - done) }
            if n <= 0 { if errno == EINTR { continue }; return }
            done += n
        }
    }

    // MARK: rendering (pure, for tests)

    /// The bar line for `s`, at most `width` columns (escape codes do not count).
    public static func render(_ s: Status, width: Int, color: Bool) -> String {
        let head = "epoch \(s.epoch)/\(s.epochs) "
        let count = " \(pad(String(s.step), String(s.steps).count))/\(s.steps)"
        var fields = ["\(compact(s.samplesPerSecond)) samples/s", "loss \(s.loss.isFinite ? fmt(s.loss, 4) : "nan")",
                      "lr \(fmt(s.lr, s.lr >= 0.001 || s.lr == 0 ? 5 : 7))", "ETA \(s.etaSeconds.map(clock) ?? "-")"]
        // Drop fields from the right until the line fits with a bar of at least 10 cells.
        func tail() -> String { fields.isEmpty ? "" : "  " + fields.joined(separator: "  ") }
        while !fields.isEmpty && head.count + 10 + count.count + tail().count > width { fields.removeLast() }
        let cells = max(0, min(40, width - head.count - count.count - tail().count))
        let filled = s.steps > 0 ? min(cells, cells * s.step / s.steps) : 0
        let done = String(repeating: "━", count: filled), todo = max(0, cells - filled)
        let plain = head + done + String(repeating: "─", count: todo) + count + tail()
        // A terminal narrower than the shortest line: cut it.
        if plain.count > width { return String(plain.prefix(width)) }
        guard color else { return plain }
        return head + "\u{1B}[32m" + done + "\u{1B}[90m" + String(repeating: "━", count: todo) + "\u{1B}[0m" + count + tail()
    }

    static func pad(_ s: String, _ n: Int) -> String { String(repeating: " ", count: max(0, n - s.count)) + s }

    /// 41234 → "41.2k".
    static func compact(_ v: Double) -> String {
        if v >= 1e6 { return fmt(v / 1e6, 2) + "M" }
        if v >= 1e4 { return fmt(v / 1e3, 1) + "k" }
        return String(Int(v.rounded()))
    }

    /// 65 → "1:05", 3725 → "1:02:05".
    static func clock(_ t: Double) -> String {
        let s = Int(t.rounded())
        func two(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return s >= 3600 ? "\(s / 3600):\(two(s / 60 % 60)):\(two(s % 60))" : "\(s / 60):\(two(s % 60))"
    }
}

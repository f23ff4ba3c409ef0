/// A line chart as SVG: series over a shared x axis, ticks at 1-2-5 steps, axis labels, a
/// legend, optionally a log y axis. Text is plain SVG so the files open in any browser and
/// embed in the HTML report as they are.
public struct Chart {
    public struct Series {
        public var name: String
        public var points: [(x: Double, y: Double)]
        public var color: String
        /// Thin and translucent (raw per-step values under a smoothed line).
        public var faint = false
        /// Dots only (a few per-epoch values).
        public var markers = false
        public init(name: String, points: [(x: Double, y: Double)], color: String, faint: Bool = false, markers: Bool = false) {
            self.name = name; self.points = points; self.color = color; self.faint = faint; self.markers = markers
        }
    }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var series: [Series] = []
    public var logY = false
    public var width = 720.0
    public var height = 400.0

    public init(title: String, xLabel: String, yLabel: String) {
        self.title = title; self.xLabel = xLabel; self.yLabel = yLabel
    }

    /// Colours that stay apart for several overlaid runs.
    public static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]

    public var isEmpty: Bool { series.allSatisfy { $0.points.isEmpty } }

    public func svg() -> String {
        let left = 78.0, right = 18.0, top = 40.0, bottom = 58.0
        let pw = width - left - right, ph = height - top - bottom
        let all = series.flatMap(\.points).filter { $0.x.isFinite && $0.y.isFinite && (!logY || $0.y > 0) }
        var out = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"12\">\n"
        out += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        out += "<text x=\"\(f(width / 2))\" y=\"22\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">\(escape(title))</text>\n"
        guard !all.isEmpty else {
            out += "<text x=\"\(f(width / 2))\" y=\"\(f(height / 2))\" text-anchor=\"middle\" fill=\"#888\">no data</text>\n</svg>\n"
            return out
        }
        let tx = { (v: Double) in logY ? log10(v) : v }
        var (x0, x1) = (all.map(\.x).min()!, all.map(\.x).max()!)
        var (y0, y1) = (all.map { tx($0.y) }.min()!, all.map { tx($0.y) }.max()!)
        if x1 == x0 { x0 -= 0.5; x1 += 0.5 }
        // A little room at both ends so end markers are not cut by the frame.
        let xpad = (x1 - x0) * 0.015
        x0 -= xpad; x1 += xpad
        if y1 == y0 { y0 -= logY ? 0.5 : max(abs(y0) * 0.05, 0.5); y1 += logY ? 0.5 : max(abs(y1) * 0.05, 0.5) }
        let pad = (y1 - y0) * 0.05
        y0 -= pad; y1 += pad
        func px(_ x: Double) -> Double { left + (x - x0) / (x1 - x0) * pw }
        func py(_ y: Double) -> Double { top + (1 - (tx(y) - y0) / (y1 - y0)) * ph }
        // Grid and ticks.
        out += "<g stroke=\"#e5e5e5\" stroke-width=\"1\">\n"
        let xt = Self.ticks(x0, x1, count: 6), yt = logY ? Self.logTicks(y0, y1) : Self.ticks(y0, y1, count: 6)
        for t in xt { out += "<line x1=\"\(f(px(t)))\" y1=\"\(f(top))\" x2=\"\(f(px(t)))\" y2=\"\(f(top + ph))\"/>\n" }
        for t in yt { let y = logY ? top + (1 - (t - y0) / (y1 - y0)) * ph : py(t); out += "<line x1=\"\(f(left))\" y1=\"\(f(y))\" x2=\"\(f(left + pw))\" y2=\"\(f(y))\"/>\n" }
        out += "</g>\n"
        out += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(pw))\" height=\"\(f(ph))\" fill=\"none\" stroke=\"#333\"/>\n"
        for t in xt { out += "<text x=\"\(f(px(t)))\" y=\"\(f(top + ph + 18))\" text-anchor=\"middle\">\(Self.label(t))</text>\n" }
        for t in yt {
            let y = logY ? top + (1 - (t - y0) / (y1 - y0)) * ph : py(t)
            out += "<text x=\"\(f(left - 8))\" y=\"\(f(y + 4))\" text-anchor=\"end\">\(logY ? Self.label(pow10(t)) : Self.label(t))</text>\n"
        }
        out += "<text x=\"\(f(left + pw / 2))\" y=\"\(f(height - 14))\" text-anchor=\"middle\">\(escape(xLabel))</text>\n"
        out += "<text transform=\"translate(18 \(f(top + ph / 2))) rotate(-90)\" text-anchor=\"middle\">\(escape(yLabel + (logY ? " (log)" : "")))</text>\n"
        // Series, clipped to the plot.
        out += "<clipPath id=\"plot\"><rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(pw))\" height=\"\(f(ph))\"/></clipPath>\n<g clip-path=\"url(#plot)\">\n"
        for s in series {
            let pts = s.points.filter { $0.x.isFinite && $0.y.isFinite && (!logY || $0.y > 0) }
            if s.markers {
                for p in pts { out += "<circle cx=\"\(f(px(p.x)))\" cy=\"\(f(py(p.y)))\" r=\"3.5\" fill=\"\(s.color)\"/>\n" }
                if pts.count > 1 {
                    out += "<polyline fill=\"none\" stroke=\"\(s.color)\" stroke-width=\"1.5\" stroke-dasharray=\"4 3\" points=\"\(pts.map { "\(f(px($0.x))),\(f(py($0.y)))" }.joined(separator: " "))\"/>\n"
                }
            } else if !pts.isEmpty {
                out += "<polyline fill=\"none\" stroke=\"\(s.color)\" stroke-width=\"\(s.faint ? "1" : "2")\"\(s.faint ? " stroke-opacity=\"0.25\"" : "") points=\"\(pts.map { "\(f(px($0.x))),\(f(py($0.y)))" }.joined(separator: " "))\"/>\n"
            }
        }
        out += "</g>\n"
        // Legend (top right, inside the plot), faint series left out.
        let named = series.filter { !$0.faint && !$0.points.isEmpty }
        if !named.isEmpty {
            let w = Double(named.map(\.name.count).max()! * 7 + 40), h = Double(named.count * 18 + 8)
            // The corner whose box covers the fewest data points.
            let corners = [(left + pw - w - 8, top + 8), (left + pw - w - 8, top + ph - h - 8), (left + 8, top + 8), (left + 8, top + ph - h - 8)]
            let drawn = series.flatMap { s in s.points.filter { $0.x.isFinite && $0.y.isFinite && (!logY || $0.y > 0) }.map { (px($0.x), py($0.y)) } }
            let (lx, ly) = corners.min { a, b in
                func covered(_ c: (Double, Double)) -> Int { drawn.filter { $0.0 >= c.0 - 4 && $0.0 <= c.0 + w + 4 && $0.1 >= c.1 - 4 && $0.1 <= c.1 + h + 4 }.count }
                return covered(a) < covered(b)
            }!
            out += "<rect x=\"\(f(lx))\" y=\"\(f(ly))\" width=\"\(f(w))\" height=\"\(f(h))\" fill=\"white\" fill-opacity=\"0.9\" stroke=\"#bbb\"/>\n"
            for (i, s) in named.enumerated() {
                let y = ly + 16 + Double(i) * 18
                out += s.markers
                    ? "<circle cx=\"\(f(lx + 18))\" cy=\"\(f(y - 4))\" r=\"3.5\" fill=\"\(s.color)\"/>\n"
                    : "<line x1=\"\(f(lx + 8))\" y1=\"\(f(y - 4))\" x2=\"\(f(lx + 28))\" y2=\"\(f(y - 4))\" stroke=\"\(s.color)\" stroke-width=\"2\"/>\n"
                out += "<text x=\"\(f(lx + 34))\" y=\"\(f(y))\">\(escape(s.name))</text>\n"
            }
        }
        return out + "</svg>\n"
    }

    /// Round tick values (1, 2 or 5 × 10^k apart) covering [a, b].
    public static func ticks(_ a: Double, _ b: Double, count: Int) -> [Double] {
        let raw = (b - a) / Double(max(count, 1))
        let e = log10(raw).rounded(.down), mag = pow10(e)
        let m = [1.0, 2, 5, 10].first { $0 * mag >= raw } ?? 10
        let step = m * mag
        // Tick k is k·m·10^e, computed as one product or quotient so 3 × 0.2 reads 0.6.
        func tick(_ k: Double) -> Double { e < 0 ? k * m / pow10(-e) : k * m * mag }
        var k = (a / step).rounded(.up), out: [Double] = []
        while tick(k) <= b + step * 1e-9 && out.count < 50 { out.append(tick(k)); k += 1 }
        return out
    }

    /// Decades (as log10 values) inside [a, b]; the ends when the span is under a decade.
    /// 1, 2 and 5 × 10^k inside [a, b] (as log10 values); only the powers of ten when the span
    /// holds more than three decades.
    static func logTicks(_ a: Double, _ b: Double) -> [Double] {
        let lo = Int(a.rounded(.down)), hi = Int(b.rounded(.up))
        let mantissas: [Double] = hi - lo > 3 ? [1] : [1, 2, 5]
        return (lo...hi).flatMap { d in mantissas.map { log10($0) + Double(d) } }.filter { $0 >= a && $0 <= b }
    }

    static func label(_ v: Double) -> String {
        let a = abs(v)
        if a == 0 { return "0" }
        if a >= 1e6 || a < 1e-3 {
            let e = Int(log10(a).rounded(.down)), m = v / pow10(Double(e))
            return trim(m, 2) + "e" + String(e)
        }
        if a >= 1e4 { return trim(v / 1e3, 1) + "k" }
        return trim(v, a >= 100 ? 0 : a >= 1 ? 2 : 4)
    }

    static func trim(_ v: Double, _ digits: Int) -> String {
        var s = f(v, digits)
        if s.contains(".") { while s.hasSuffix("0") { s.removeLast() }; if s.hasSuffix(".") { s.removeLast() } }
        return s
    }

    func f(_ v: Double) -> String { Self.f(v, 1) }

    static func f(_ v: Double, _ digits: Int) -> String {
        var p = 1.0
        for _ in 0..<digits { p *= 10 }
        let r = (abs(v) * p).rounded()
        var frac = String(Int(r.truncatingRemainder(dividingBy: p)))
        while frac.count < digits { frac = "0" + frac }
        return (v < 0 && r > 0 ? "-" : "") + String(Int(r / p)) + (digits > 0 ? "." + frac : "")
    }
}

func escape(_ s: String) -> String {
    var out = ""
    for c in s {
        switch c {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        default: out.append(c)
        }
    }
    return out
}

func log10(_ v: Double) -> Double { Glibc.log10(v) }
func pow10(_ v: Double) -> Double { Glibc.pow(10, v) }

import Glibc

import Config
import Glibc
import Formats

/// What a run directory recorded (metrics.jsonl, job.yaml), read back for plots and the report.
public struct RunRecord {
    public struct Step { public var step: Double; public var epoch: Int; public var loss: Double; public var lr: Double; public var samplesPerSecond: Double? }
    /// An epoch's or the final test's record: its numbers by name, and a confusion matrix.
    public struct Evaluation {
        public var step: Double
        public var epoch: Int
        public var values: [(name: String, value: Double)]
        public var confusion: [[Int]]?
        public var classes: [String]?
        public func value(_ name: String) -> Double? { values.first { $0.name == name }?.value }
    }

    public let path: String
    public var name: String { path.split(separator: "/").last.map(String.init) ?? path }
    public var job: String
    public var steps: [Step] = []
    public var epochs: [Evaluation] = []
    public var test: Evaluation?
    /// Data-parallel runs: each rank's timing per epoch (ranks.jsonl, written by the coordinator).
    public struct RankEpoch { public var rank: Int; public var host: String; public var epoch: Int; public var stepMs: Double
                              public var allreduceMs: Double?; public var hiddenShare: Double? }
    public var ranks: [RankEpoch] = []

    /// Reads `dir`; errors name the file and line.
    public init(directory dir: String) throws {
        var d = dir
        while d.count > 1 && d.hasSuffix("/") { d.removeLast() }
        path = d
        let metrics = "\(d)/metrics.jsonl"
        guard FileIO.isRegularFile(metrics) else {
            throw FileError(d, "no metrics.jsonl: not a run directory (ringtrain train and launch write one per run)")
        }
        job = FileIO.isRegularFile("\(d)/job.yaml") ? try FileIO.readText("\(d)/job.yaml") : ""
        for (i, line) in try FileIO.readText(metrics).split(separator: "\n").enumerated() {
            // A run killed mid-write can leave a cut last line: skip it, keep the rest.
            guard case .map(let entries) = (try? JSON.parse(String(line))) ?? .null else {
                if i == 0 { throw FileError(metrics, "line 1 is not a JSON object") }
                continue
            }
            var type = "", nums: [(String, Double)] = [], confusion: [[Int]]?, classes: [String]?
            for e in entries {
                switch e.value {
                case .string(let s) where e.key == "type": type = s
                case .list(let rows) where e.key == "confusion":
                    confusion = rows.map { r in if case .list(let c) = r { return c.map { if case .int(let v) = $0 { return v }; return 0 } }; return [] }
                case .list(let names) where e.key == "classes":
                    classes = names.map { if case .string(let s) = $0 { return s }; return "?" }
                default: if let v = e.value.number { nums.append((e.key, v)) } else if e.value == .null { nums.append((e.key, .nan)) }
                }
            }
            func num(_ k: String) -> Double? { nums.first { $0.0 == k }?.1 }
            let step = num("step") ?? 0, epoch = Int(num("epoch") ?? 0)
            switch type {
            case "step":
                steps.append(Step(step: step, epoch: epoch, loss: num("loss") ?? .nan, lr: num("lr") ?? .nan, samplesPerSecond: num("samples_per_s")))
            case "epoch", "test":
                let values = nums.filter { !["step", "epoch", "time"].contains($0.0) }.map { (name: $0.0, value: $0.1) }
                let ev = Evaluation(step: step, epoch: epoch, values: values, confusion: confusion, classes: classes)
                if type == "epoch" { epochs.append(ev) } else { test = ev }
            default: continue
            }
        }
        if let text = try? FileIO.readText("\(d)/ranks.jsonl") {
            for line in text.split(separator: "\n") {
                guard let v = try? JSON.parse(String(line)), case .int(let rank)? = v["rank"], case .int(let epoch)? = v["epoch"],
                      let ms = v["step_ms"]?.number else { continue }
                var host = ""
                if case .string(let h)? = v["host"] { host = h }
                ranks.append(RankEpoch(rank: rank, host: host, epoch: epoch, stepMs: ms, allreduceMs: v["allreduce_ms"]?.number,
                                       hiddenShare: v["hidden_share"]?.number))
            }
        }
    }

    /// The evaluation metric names of the epochs (val_acc, test_mse, …), losses first.
    public var metricNames: [String] {
        var seen: [String] = []
        for e in epochs { for v in e.values where !seen.contains(v.name) { seen.append(v.name) } }
        return seen.filter { !["samples_per_s", "allreduce_ms", "hidden_share"].contains($0) }
    }
}

/// `ringtrain plot`: SVG curves of one or several runs (overlaid) and a self-contained HTML
/// report of each (config, curves, final metrics, timings, confusion matrix).
public enum RunReport {
    /// Series of at most `limit` points: the mean of each bucket (per-step values are noisy
    /// and runs have tens of thousands of steps).
    static func downsample(_ p: [(x: Double, y: Double)], limit: Int = 800) -> [(x: Double, y: Double)] {
        let p = p.filter { $0.y.isFinite }
        guard p.count > limit else { return p }
        let k = (p.count + limit - 1) / limit
        return stride(from: 0, to: p.count, by: k).map { i in
            let s = p[i..<min(i + k, p.count)]
            return (s.map(\.x).reduce(0, +) / Double(s.count), s.map(\.y).reduce(0, +) / Double(s.count))
        }
    }

    /// Exponential moving average (TensorBoard's smoothing, debiased at the start).
    static func smooth(_ p: [(x: Double, y: Double)], weight: Double = 0.9) -> [(x: Double, y: Double)] {
        var last = 0.0, n = 0
        return p.filter { $0.y.isFinite }.map { q in
            last = last * weight + (1 - weight) * q.y
            n += 1
            return (q.x, last / (1 - pow(weight, Double(n))))
        }
    }

    /// Every chart for `runs`: file name → chart.
    public static func charts(_ runs: [RunRecord]) -> [(file: String, chart: Chart)] {
        let several = runs.count > 1
        func color(_ i: Int) -> String { Chart.palette[i % Chart.palette.count] }
        func label(_ r: RunRecord, _ what: String) -> String { several ? "\(r.name): \(what)" : what }
        var loss = Chart(title: "Loss", xLabel: "step", yLabel: "loss")
        var lr = Chart(title: "Learning rate", xLabel: "step", yLabel: "lr")
        var speed = Chart(title: "Throughput", xLabel: "step", yLabel: "samples/s")
        for (i, r) in runs.enumerated() {
            let c = color(i), alt = several ? c : Chart.palette[1]
            let raw = r.steps.map { (x: $0.step, y: $0.loss) }
            loss.series.append(.init(name: label(r, "train (per step)"), points: downsample(raw), color: c, faint: true))
            loss.series.append(.init(name: label(r, "train (smoothed)"), points: downsample(smooth(raw)), color: c))
            for name in r.metricNames where name.hasSuffix("_loss") && name != "train_loss" {
                loss.series.append(.init(name: label(r, name.replacingUnderscores), points: r.epochs.compactMap { e in e.value(name).map { (e.step, $0) } },
                                         color: alt, markers: true))
            }
            lr.series.append(.init(name: label(r, "lr"), points: downsample(r.steps.map { (x: $0.step, y: $0.lr) }), color: c))
            let perStep = r.steps.compactMap { s in s.samplesPerSecond.map { (x: s.step, y: $0) } }
            speed.series.append(.init(name: label(r, "per step"), points: downsample(perStep), color: c, faint: true))
            speed.series.append(.init(name: label(r, "epoch mean"), points: r.epochs.compactMap { e in e.value("samples_per_s").map { (e.step, $0) } },
                                      color: c, markers: true))
        }
        // A log axis when losses are positive and span more than 20×.
        let losses: [Double] = runs.flatMap(\.steps).map(\.loss).filter(\.isFinite)
        let lowest: Double = losses.min() ?? 1, highest: Double = losses.max() ?? 1
        loss.logY = lowest > 0 && highest / lowest > 20
        var out: [(String, Chart)] = [("loss.svg", loss), ("lr.svg", lr), ("throughput.svg", speed)]
        // One chart per evaluation metric (they have different scales).
        var names: [String] = []
        for r in runs { for n in r.metricNames where !n.hasSuffix("_loss") && !names.contains(n) { names.append(n) } }
        for n in names {
            var m = Chart(title: n.replacingUnderscores, xLabel: "step", yLabel: n)
            for (i, r) in runs.enumerated() {
                m.series.append(.init(name: label(r, n.replacingUnderscores), points: r.epochs.compactMap { e in e.value(n).map { (e.step, $0) } },
                                      color: color(i), markers: true))
            }
            out.append(("metric-\(n).svg", m))
        }
        return out
    }

    /// Writes the charts and report.html into `dir`; returns the files written.
    @discardableResult
    public static func write(_ runs: [RunRecord], to dir: String) throws -> [String] {
        try FileIO.makeDirectories(dir)
        var files: [String] = []
        let charts = charts(runs)
        for (name, chart) in charts {
            try FileIO.writeAtomically("\(dir)/\(name)", bytes: Array(chart.svg().utf8))
            files.append("\(dir)/\(name)")
        }
        try FileIO.writeAtomically("\(dir)/report.html", bytes: Array(html(runs, charts: charts).utf8))
        files.append("\(dir)/report.html")
        return files
    }

    /// One self-contained page: the charts inline, then each run's numbers.
    public static func html(_ runs: [RunRecord], charts: [(file: String, chart: Chart)]) -> String {
        var h = """
            <!DOCTYPE html>
            <html><head><meta charset="utf-8"><title>RingTrain report: \(escape(runs.map(\.name).joined(separator: ", ")))</title>
            <style>
            body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; margin: 24px; color: #222; max-width: 1500px; }
            h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 28px; border-bottom: 1px solid #ddd; } h3 { font-size: 15px; }
            .charts { display: flex; flex-wrap: wrap; gap: 12px; }
            table { border-collapse: collapse; font-size: 13px; margin: 6px 0 14px; }
            td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: right; } th { background: #f3f3f3; }
            pre { background: #f7f7f7; border: 1px solid #ddd; padding: 8px; font-size: 12px; max-height: 360px; overflow: auto; }
            </style></head><body>
            <h1>RingTrain report</h1>
            <p>\(runs.count == 1 ? "Run" : "Runs"): \(runs.map { "<code>\(escape($0.path))</code>" }.joined(separator: ", "))</p>
            <div class="charts">

            """
        for c in charts where !c.chart.isEmpty { h += c.chart.svg() }
        h += "</div>\n"
        for r in runs {
            h += "<h2>\(escape(r.name))</h2>\n"
            let final = r.test ?? r.epochs.last
            if let f = final {
                h += "<h3>Final metrics (\(r.test != nil ? "test split, after the last epoch" : "last epoch"), step \(Int(f.step)))</h3>\n<table><tr>"
                let shown = f.values.filter { !["samples_per_s", "allreduce_ms", "hidden_share"].contains($0.name) }
                h += shown.map { "<th>\(escape($0.name))</th>" }.joined() + "</tr><tr>" + shown.map { "<td>\(Chart.trim($0.value, 4))</td>" }.joined() + "</tr></table>\n"
            }
            if !r.epochs.isEmpty {
                h += "<h3>Epochs and timings (rank 0)</h3>\n<table><tr><th>epoch</th><th>step</th>"
                let cols = r.epochs[0].values.map(\.name)
                h += cols.map { "<th>\(escape($0))</th>" }.joined() + "</tr>\n"
                for e in r.epochs {
                    h += "<tr><td>\(e.epoch)</td><td>\(Int(e.step))</td>" + cols.map { c in "<td>\(e.value(c).map { Chart.trim($0, c == "samples_per_s" ? 0 : 4) } ?? "")</td>" }.joined() + "</tr>\n"
                }
                h += "</table>\n"
            }
            if !r.ranks.isEmpty {
                h += "<h3>Per-rank timings (mean over epochs)</h3>\n<table><tr><th>rank</th><th>host</th><th>epochs</th><th>ms/step</th><th>all-reduce ms/step</th><th>hidden behind backward</th><th>slowest epoch ms/step</th></tr>\n"
                for rank in Set(r.ranks.map(\.rank)).sorted() {
                    let e = r.ranks.filter { $0.rank == rank }
                    func mean(_ v: [Double]) -> String { v.isEmpty ? "" : Chart.trim(v.reduce(0, +) / Double(v.count), 3) }
                    h += "<tr><td>\(rank)</td><td>\(escape(e[0].host))</td><td>\(e.count)</td><td>\(mean(e.map(\.stepMs)))</td>"
                        + "<td>\(mean(e.compactMap(\.allreduceMs)))</td><td>\(mean(e.compactMap(\.hiddenShare)))</td>"
                        + "<td>\(Chart.trim(e.map(\.stepMs).max()!, 3))</td></tr>\n"
                }
                h += "</table>\n"
            }
            if let c = final?.confusion, !c.isEmpty {
                let names = final?.classes?.count == c.count ? final!.classes! : (0..<c.count).map(String.init)
                let most = max(c.flatMap { $0 }.max() ?? 1, 1)
                h += "<h3>Confusion matrix (rows: true class, columns: predicted)</h3>\n<table><tr><th></th>"
                h += names.map { "<th>\(escape($0))</th>" }.joined() + "<th>recall</th></tr>\n"
                for (i, row) in c.enumerated() {
                    let total = row.reduce(0, +)
                    h += "<tr><th>\(escape(names[i]))</th>"
                    for (j, v) in row.enumerated() {
                        let a = Double(v) / Double(most)
                        let bg = i == j ? "rgba(44,160,44,\(Chart.trim(0.15 + 0.75 * a, 3)))" : "rgba(214,39,40,\(Chart.trim(a * 0.9, 3)))"
                        h += "<td style=\"background:\(bg)\">\(v)</td>"
                    }
                    h += "<td>\(total > 0 ? Chart.trim(Double(row[i]) / Double(total), 3) : "-")</td></tr>\n"
                }
                h += "</table>\n"
            }
            if !r.job.isEmpty { h += "<h3>Job (resolved)</h3>\n<pre>\(escape(r.job))</pre>\n" }
        }
        return h + "</body></html>\n"
    }
}

extension String {
    var replacingUnderscores: String { split(separator: "_", omittingEmptySubsequences: false).joined(separator: " ") }
}

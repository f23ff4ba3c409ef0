import Formats
import Report
import Testing
import TestSupport

@Test func ticksAreRoundNumbersCoveringTheRange() {
    #expect(Chart.ticks(0, 10, count: 5) == [0, 2, 4, 6, 8, 10])
    #expect(Chart.ticks(0.13, 0.92, count: 6) == [0.2, 0.4, 0.6, 0.8])
    #expect(Chart.ticks(-3, 3, count: 6) == [-3, -2, -1, 0, 1, 2, 3])
    #expect(Chart.ticks(1, 4680, count: 6) == [1000, 2000, 3000, 4000])
}

/// A run directory's records read back and drawn: every curve, axis label and legend entry is
/// in the SVG, the report carries the final metrics, the timings and the confusion matrix.
@Test func aRunIsPlottedAndReported() throws {
    let dir = Fixtures.tempDirectory("plot")
    var lines: [String] = []
    for s in 1...40 {
        lines.append("{\"type\":\"step\",\"step\":\(s),\"epoch\":\((s - 1) / 20 + 1),\"loss\":\(2.0 / Double(s)),\"lr\":0.1,\"samples_per_s\":\(1000 + s),\"time\":1.0}")
        if s % 20 == 0 {
            lines.append("{\"type\":\"epoch\",\"step\":\(s),\"epoch\":\(s / 20),\"train_loss\":0.5,\"val_loss\":\(0.4 - Double(s) / 400),\"val_acc\":\(0.7 + Double(s) / 400),\"samples_per_s\":1010.0,\"allreduce_ms\":0.5,\"hidden_share\":0.9,\"confusion\":[[5,1],[2,7]],\"classes\":[\"cat\",\"dog\"],\"time\":2.0}")
        }
    }
    lines.append("{\"type\":\"step\",\"step\":41,\"ep")   // a cut last line (a killed run) is skipped
    try FileIO.writeAtomically("\(dir)/metrics.jsonl", bytes: Array(lines.joined(separator: "\n").utf8))
    try FileIO.writeAtomically("\(dir)/job.yaml", bytes: Array("name: demo\nseed: 0\n".utf8))
    let r = try RunRecord(directory: dir)
    #expect(r.steps.count == 40 && r.epochs.count == 2 && abs(r.epochs[1].value("val_acc")! - 0.8) < 1e-12)
    #expect(r.metricNames == ["train_loss", "val_loss", "val_acc"])
    #expect(r.epochs[1].confusion == [[5, 1], [2, 7]] && r.epochs[1].classes == ["cat", "dog"])

    let files = try RunReport.write([r], to: "\(dir)/report")
    #expect(files.map { $0.split(separator: "/").last! }.sorted() == ["loss.svg", "lr.svg", "metric-val_acc.svg", "report.html", "throughput.svg"])
    let loss = try FileIO.readText("\(dir)/report/loss.svg")
    #expect(loss.hasPrefix("<svg") && loss.contains(">step</text>") && loss.contains(">loss (log)</text>"), "\(loss)")
    #expect(loss.contains(">train (smoothed)</text>") && loss.contains(">val loss</text>"))
    // The per-step polyline has every step, the validation loss one marker per epoch.
    let polylines = loss.components("<polyline")
    #expect(polylines.contains { String($0).components(",").count - 1 == 40 })
    #expect(loss.components("<circle").count - 1 == 2 + 1)   // two markers and the legend's
    let html = try FileIO.readText("\(dir)/report/report.html")
    #expect(html.contains("<th>val_acc</th>") && html.contains("<td>0.8</td>") && html.contains("<th>cat</th>")
            && html.contains(">7</td>") && html.contains("name: demo") && html.contains("<th>allreduce_ms</th>"), "\(html)")
    #expect(html.components("<svg").count - 1 == 4)

    // Not a run directory: said so.
    #expect(throws: FileError.self) { try RunRecord(directory: "\(dir)/report") }
}

private extension String {
    func components(_ sep: String) -> [Substring] {
        var out: [Substring] = [], rest = self[...]
        while let r = rest.range(of: sep) { out.append(rest[..<r.lowerBound]); rest = rest[r.upperBound...] }
        return out + [rest]
    }
}

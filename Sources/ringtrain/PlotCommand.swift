import ArgumentParser
import Report
import Train

/// `ringtrain plot RUN_DIR…`: curves as SVG and an HTML report.
struct PlotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plot",
        abstract: "Plot runs: SVG curves (loss, metrics, lr, throughput; several runs overlaid) and a self-contained HTML report.",
        discussion: "Reads each run directory's metrics.jsonl and job.yaml. One run: files go to RUN_DIR/report/ unless --out is given; several runs need --out.")

    @Argument(help: "Run directories (last: the newest run).") var runs: [String]
    @Option(help: "Directory for loss.svg, lr.svg, throughput.svg, metric-*.svg and report.html.") var out: String?

    func validate() throws {
        guard !runs.isEmpty else { throw ValidationError("give at least one run directory") }
        if runs.count > 1 && out == nil { throw ValidationError("several runs: choose where the overlaid plots go with --out DIR") }
    }

    func run() throws {
        try wrapErrors {
            let records = try runs.map { try RunRecord(directory: $0 == "last" ? try RunDirectory.last().path : $0) }
            let dir = out ?? records[0].path + "/report"
            let files = try RunReport.write(records, to: dir)
            print("plot: wrote \(files.count) files to \(dir) (open \(dir)/report.html)")
        }
    }
}

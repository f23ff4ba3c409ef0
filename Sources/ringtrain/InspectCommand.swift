import ArgumentParser
import Config
import Formats
import Train

/// `ringtrain inspect CKPT`: what a checkpoint holds — progress, the job and its model, the data
/// description, every tensor (parameters, buffers, optimizer slots) with dtype, shape and size.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect", abstract: "Show what a checkpoint holds: progress, model, data, tensors.",
        discussion: "A RingTrain checkpoint is read and checked as `--resume` would; a bare safetensors file shows its tensors and metadata keys.")

    @Argument(help: "A checkpoint or any safetensors file (or a run directory, or last: its newest checkpoint).") var checkpoint: String
    @Flag(help: "Print one JSON object instead of text.") var json = false

    func run() throws {
        do {
            let checkpoint = try checkpointPath(self.checkpoint)
            let file = try SafeTensors.read(path: checkpoint)
            let c = file.metadata["format"] == Checkpoint.format ? try Checkpoint.load(checkpoint) : nil
            let params = file.tensors.filter { !$0.name.hasPrefix("optimizer.") }
            let slots = file.tensors.filter { $0.name.hasPrefix("optimizer.") }
            func size(_ es: [SafeTensors.Entry]) -> Int { es.reduce(0) { $0 + $1.bytes.count } }
            if json {
                var out: [(String, ConfigValue)] = [("path", .string(checkpoint)), ("format", file.metadata["format"].map { .string($0) } ?? .null)]
                if let c {
                    out += [("job", c.job.configValue), ("epoch", .int(c.state.epoch)), ("step_in_epoch", .int(c.state.stepInEpoch)),
                            ("global_step", .int(c.state.globalStep)), ("world_size", .int(c.worldSize)),
                            ("data", c.data?.configValue ?? .null)]
                }
                out.append(("tensors", .list(file.tensors.map { t in
                    .object(["name": .string(t.name), "dtype": .string(t.dtype.rawValue), "shape": .list(t.shape.map { .int($0) }),
                             "bytes": .int(t.bytes.count)])
                })))
                out.append(("metadata_keys", .list(file.metadata.keys.sorted().map { .string($0) })))
                print(JSON.string(.map(out.map { ConfigEntry(key: $0.0, value: $0.1) })))
                return
            }
            print("\(checkpoint): \(c == nil ? "safetensors file (not a RingTrain checkpoint)" : Checkpoint.format)")
            if let c {
                print("job \(c.job.name) (\(c.job.task.kind.rawValue)), step \(c.state.globalStep), epoch \(c.state.epoch + 1) "
                      + "(\(c.state.stepInEpoch) steps into it), written by \(c.worldSize) worker\(c.worldSize == 1 ? "" : "s")")
                for m in c.job.namedModels {
                    print("model\(c.job.namedModels.count > 1 ? " \(m.name)" : ""): input \(m.spec.input), \(m.spec.layers.count) layers: "
                          + m.spec.layers.map(\.summary).joined(separator: ", "))
                }
                if let d = c.data {
                    var facts: [String] = []
                    if let t = d.tokenizer { facts.append("\(t.kind.rawValue) tokenizer, \(t.size) tokens") }
                    if let n = d.classNames { facts.append("classes \(n.prefix(10).joined(separator: ", "))\(n.count > 10 ? " … (\(n.count))" : "")") }
                    if let s = d.inputScaling { facts.append("inputs scaled \(s.mode.rawValue) (\(s.mean.count) means)") }
                    if d.targetScaling != nil { facts.append("targets standardised") }
                    if let i = d.input { facts.append("inputs \(i)") }
                    if let t = d.target { facts.append("targets \(t)") }
                    print("data: " + facts.joined(separator: "; "))
                }
            }
            print("tensors: \(params.count) (\(size(params)) bytes)\(slots.isEmpty ? "" : ", optimizer slots \(slots.count) (\(size(slots)) bytes)")")
            let w = max(12, params.map(\.name.count).max() ?? 0)
            for t in params {
                print("  " + t.name.padding(toLength: w, withPad: " ", startingAt: 0) + "  \(t.dtype.rawValue)  \(t.shape)")
            }
        } catch let e as ValidationError {
            throw e
        } catch {
            throw CLIError("\(error)")
        }
    }
}

import Foundation
import Config
import Formats
import TestSupport
import Testing
import Train

func jobError(_ yaml: String) -> String {
    do { _ = try JobConfig(try YAML.parse(yaml, source: "job.yaml"), source: "job.yaml"); return "no error" }
    catch { return "\(error)" }
}

@Test func jobFileParsesAndRoundTrips() throws {
    let j = try JobConfig(try YAML.parse("""
        name: small
        seed: 3
        model:
          input: [1, 28, 28]
          layers: [flatten, {type: linear, out: 10}]
        train: {epochs: 2, batch_size: 32}
        optimizer: {lr: 0.1, momentum: 0.5, nesterov: true}
        schedule: {type: constant}
        checkpoint: {dir: /tmp/x, every_steps: 5, keep: 1}
        """, source: "job.yaml"), source: "job.yaml")
    #expect(j.name == "small" && j.seed == 3 && j.train.batchSize == 32 && j.optimizer.nesterov)
    #expect(j.model.layers.count == 2 && j.checkpoint.everySteps == 5)
    // Through JSON (as checkpoints store it) and back.
    let again = try JobConfig(try JSON.parse(JSON.string(j.configValue)), source: "meta")
    #expect(again == j)
    #expect(try JobConfig(.null, source: "empty") == JobConfig())
}

@Test func jobFileErrorsNameFieldAndExpectation() {
    #expect(jobError("trian: {epochs: 1}").hasPrefix("job.yaml: trian: unknown key (expected one of:"))
    #expect(jobError("train: {epochs: many}") == "job.yaml: train.epochs: expected an integer, found string \"many\"")
    #expect(jobError("train: {epochs: 0}") == "job.yaml: train.epochs: expected an integer ≥ 1, found 0")
    #expect(jobError("train: {batch_size: 1.5}") == "job.yaml: train.batch_size: expected an integer, found number 1.5")
    #expect(jobError("optimizer: {lr: fast}") == "job.yaml: optimizer.lr: expected a number, found string \"fast\"")
    #expect(jobError("optimizer: {type: adamx}").contains("optimizer.type: expected one of sgd, adagrad, rmsprop, adam, adamw"))
    #expect(jobError("optimizer: {type: adam, betas: [0.9]}").contains("optimizer.betas: expected two numbers"))
    #expect(jobError("train: {loss: mse, label_smoothing: 0.1}").contains("train.label_smoothing: only applies to the cross_entropy loss"))
    #expect(jobError("train: {on_nan: ignore}").contains("train.on_nan: expected one of stop, skip"))
    #expect(jobError("comm: {transport: udp}").contains("comm.transport: expected one of auto, ring, tcp"))
    #expect(jobError("comm: {compression: fp8}").contains("comm.compression: expected one of none, bf16"))
    #expect(jobError("model: resnet_tiny").contains("model: unknown model \"resnet_tiny\""))
    #expect(jobError("optimizer: {nesterov: yes please}").contains("optimizer.nesterov: expected true or false"))
    #expect(jobError("train: 3") == "job.yaml: train: expected a mapping, found integer 3")
    #expect(jobError("model: {input: [1, 28, 28], layers: [flatten, {type: conv9}]}").contains("model.layers[1]: unknown layer type \"conv9\""))
    #expect(jobError("model: {layers: [relu]}").contains("model.input: required"))
    #expect(jobError("- 1\n- 2").contains("expected a mapping"))
}

/// The example jobs shipped in cluster/jobs are valid.
@Test func shippedJobsParse() throws {
    let dir = Fixtures.packageRoot + "/cluster/jobs"
    let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".yaml") }.sorted()
    #expect(files.count >= 6)
    for f in files {
        let job = try JobConfig.load(path: dir + "/" + f)
        #expect(!job.name.isEmpty, "\(f)")
        if f == "mlp-bf16.yaml" { #expect(job.comm.compression == .bf16) }
    }
}

/// `--set path=value` edits the job tree before it is read: nested keys, list indices, new keys,
/// and clear errors for paths that do not fit.
@Test func settingsEditTheJobTree() throws {
    let tree = try YAML.parse("""
        model: {input: [4], layers: [{type: linear, out: 8}, relu, {type: linear, out: 3}]}
        train: {epochs: 2}
        """, source: "job.yaml")
    let edited = try tree.setting("train.epochs", to: 5, source: "--set")
        .setting("model.layers.2.out", to: 4, source: "--set")
        .setting("optimizer.lr", to: 0.25, source: "--set")
    let j = try JobConfig(edited, source: "job.yaml")
    #expect(j.train.epochs == 5 && j.optimizer.lr == 0.25)
    #expect(j.model.layers[2] == ["type": "linear", "out": 4])
    func err(_ path: String) -> String { do { _ = try tree.setting(path, to: 1, source: "--set"); return "no error" } catch { return "\(error)" } }
    #expect(err("model.layers.7.out").contains("model.layers.7: is a list of 3"))
    #expect(err("train.epochs.x").contains("train.epochs: is integer 2, not a mapping"))
    #expect(err("train..epochs").contains("expected a dotted path"))
}

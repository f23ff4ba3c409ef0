import Config
import Formats
import NN
import Optim
import TensorCore
import TestSupport
import Testing
import Train

private func values(_ t: Trainer, _ name: String) -> [Float] { t.model.parameter(named: name)!.value.array }

/// A frozen layer is not updated; the rest is. Freezing the first layers stops backward above
/// them, and that gives the same bits as computing their gradients and not applying them
/// (an lr scale of 0).
@Test func frozenParametersStayAndBackwardStopsAboveThem() throws {
    let dir = Fixtures.tempDirectory("freeze")
    var (job, data) = try smallJob(dir, epochs: 1)
    job.optimizer.momentum = 0.9
    job.train.clipGradNorm = 1   // the norm must not count frozen gradients
    let before = try quiet(job, data)
    let w0 = values(before, "1.weight"), h0 = values(before, "3.weight")

    job.train.freeze = [Freeze(patterns: ["1.*"])]
    let frozen = try quiet(job, data)
    #expect(frozen.model.network.frozenBelow == 3)
    _ = try frozen.run()
    let kept = values(frozen, "1.weight") == w0 && values(frozen, "1.bias") == before.model.parameter(named: "1.bias")!.value.array
    let moved = values(frozen, "3.weight") != h0
    #expect(kept && moved)

    job.train.freeze = []
    job.optimizer.groups = [ParameterGroup(patterns: ["1.weight", "1.bias"], lrScale: 0)]
    let scaled = try quiet(job, data)
    #expect(scaled.model.network.frozenBelow == 0)
    _ = try scaled.run()
    let same = values(scaled, "3.weight") == values(frozen, "3.weight") && values(scaled, "3.bias") == values(frozen, "3.bias")
    #expect(same)
}

/// `{params, epochs}` unfreezes after its epochs; a group's lr scale scales its updates.
@Test func unfreezingAfterEpochsAndPerGroupLearningRates() throws {
    let dir = Fixtures.tempDirectory("unfreeze")
    var (job, data) = try smallJob(dir, epochs: 2)
    job.optimizer.momentum = 0
    job.schedule.type = .constant
    job.train.freeze = [Freeze(patterns: ["1.*"], epochs: 1)]
    var lines: [String] = []
    let t = try Trainer(job: job, data: data, log: { lines.append($0) })
    let w0 = values(t, "1.weight")
    t.stopAtStep = 16
    _ = try t.run()
    let kept = values(t, "1.weight") == w0
    #expect(kept, "step \(t.state)")
    t.stopAtStep = nil
    _ = try t.run()
    let moved = values(t, "1.weight") != w0
    #expect(moved)
    #expect(lines.contains("frozen: 1.weight, 1.bias") && lines.contains("epoch 2: unfrozen 1.weight, 1.bias"), "\(lines)")

    // Plain SGD: a 0.25 lr scale moves a tensor by a quarter of the step at full lr.
    job.train.freeze = []
    job.train.epochs = 1
    let full = try quiet(job, data)
    let start = values(full, "3.bias")
    full.stopAtStep = 1
    _ = try full.run()
    job.optimizer.groups = [ParameterGroup(patterns: ["3.bias"], lrScale: 0.25)]
    let quarter = try quiet(job, data)
    quarter.stopAtStep = 1
    _ = try quarter.run()
    for j in 0..<10 {
        let a = values(full, "3.bias")[j] - start[j], b = values(quarter, "3.bias")[j] - start[j]
        #expect(abs(b - 0.25 * a) <= 1e-6 * max(1, abs(a)), "\(j): \(b) vs \(a)/4")
    }
    let sameBody = values(quarter, "1.weight") == values(full, "1.weight")
    #expect(sameBody)
}

@Test func namePatternsThatMatchNothingAreErrors() throws {
    let dir = Fixtures.tempDirectory("freeze-bad")
    var (job, data) = try smallJob(dir, epochs: 1)
    job.train.freeze = [Freeze(patterns: ["1.weigth"])]
    #expect { try quiet(job, data) } throws: { "\($0)".contains("train.freeze: the pattern \"1.weigth\" matches no parameter (did you mean \"1.weight\"?)") }
    job.train.freeze = []
    job.optimizer.groups = [ParameterGroup(patterns: ["9.*"], lrScale: 2)]
    #expect { try quiet(job, data) } throws: { "\($0)".contains("optimizer.groups: the pattern \"9.*\" matches no parameter") }
}

@Test func freezeAndGroupsReadFromAJobFile() throws {
    let tree = try YAML.parse("""
        model: {base: cnn_bn, head: {type: linear, out: 5}}
        train: {freeze: ["0.*", {params: ["1.*", "4.*"], epochs: 2}]}
        optimizer: {groups: [{params: "*.bias", weight_decay: 0}, {params: ["0.*"], lr_scale: 0.1}]}
        """, source: "t.yaml")
    let job = try JobConfig(tree, source: "t.yaml")
    #expect(job.train.freeze == [Freeze(patterns: ["0.*"]), Freeze(patterns: ["1.*", "4.*"], epochs: 2)])
    #expect(job.optimizer.groups == [ParameterGroup(patterns: ["*.bias"], weightDecay: 0), ParameterGroup(patterns: ["0.*"], lrScale: 0.1)])
    // The head replaced the last layer; every other layer is the zoo model's.
    let zoo = ModelSpec.zoo["cnn_bn"]!
    #expect(job.model.layers.count == zoo.layers.count && Array(job.model.layers.dropLast()) == Array(zoo.layers.dropLast()))
    #expect(job.model.layers.last == .object(["type": .string("linear"), "out": .int(5)]))
    // Written and read back unchanged.
    #expect(try JobConfig(job.configValue, source: "again") == job)
    for (bad, message) in [("train: {freeze: [{epochs: 2}]}", "train.freeze[0].params: required"),
                           ("optimizer: {groups: [{params: \"*\", lr: 2}]}", "optimizer.groups[0]"),
                           ("model: {base: cnn_bn, layers: [relu]}", "give base (a zoo model) or layers, not both"),
                           ("model: {base: nope}", "unknown model \"nope\"")] {
        #expect { try JobConfig(try YAML.parse(bad, source: "b.yaml"), source: "b.yaml") } throws: { "\($0)".contains(message) }
    }
}

import Config
import NN
import TensorCore
import TestSupport
import Testing

@Test func defaultMLPMatchesTorchStateDict() throws {
    let m = try Model(spec: .mlp)
    #expect(m.parameters.map(\.name) == ["1.weight", "1.bias", "3.weight", "3.bias", "5.weight", "5.bias"])
    #expect(m.parameter(named: "1.weight")!.shape == [256, 784])
    #expect(m.parameterCount == 235_146)
    // Arena in reverse state_dict order: the last layer's gradients come first.
    #expect(m.values.layout.entries.map(\.name) == ["5.bias", "5.weight", "3.bias", "3.weight", "1.bias", "1.weight"])
    #expect(m.outputShape == [10])
}

@Test func initializationIsSeededAndScaled() throws {
    let a = try Model(spec: .mlp), b = try Model(spec: .mlp)
    a.initialize(seed: 1); b.initialize(seed: 1)
    #expect(a.values.checksum() == b.values.checksum())
    b.initialize(seed: 2)
    #expect(a.values.checksum() != b.values.checksum())
    let w = a.parameter(named: "1.weight")!.value
    let bound = 1 / Float(784).squareRoot()
    #expect(w.buffer.allSatisfy { abs($0) <= bound })
    #expect(w.buffer.contains { abs($0) > 0.9 * bound })
}

@Test func heAndXavierInit() throws {
    let spec = ModelSpec(input: [100], layers: [
        .object(["type": .string("linear"), "out": .int(200), "init": .string("he")]),
        .object(["type": .string("linear"), "out": .int(50), "init": .string("xavier")]),
    ])
    let m = try Model(spec: spec)
    m.initialize(seed: 3)
    let w0 = m.parameter(named: "0.weight")!.value
    var sq = 0.0
    for v in w0.buffer { sq += Double(v * v) }
    #expect(abs((sq / Double(w0.count)).squareRoot() - (2.0 / 100).squareRoot()) < 0.005)
    #expect(m.parameter(named: "0.bias")!.value.buffer.allSatisfy { $0 == 0 })
    // Xavier uniform: U(±√(6/(in+out))) — inside the bound, reaching close to it, spread as a
    // uniform (std bound/√3) around 0, so all-zero or constant weights fail.
    let bound = (6.0 / 250).squareRoot()
    let w1 = m.parameter(named: "1.weight")!.value.buffer.map(Double.init)
    let mean = w1.reduce(0, +) / Double(w1.count)
    let std = (w1.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(w1.count)).squareRoot()
    #expect(w1.allSatisfy { abs($0) <= bound } && w1.map(abs).max()! > 0.98 * bound)
    #expect(abs(mean) < 0.01 * bound && abs(std - bound / 3.0.squareRoot()) < 0.03 * bound, "mean \(mean), std \(std)")
}

@Test func modelBackwardFillsGradientArena() throws {
    let m = try Model(spec: ModelSpec(input: [1, 2, 2], layers: [.string("flatten"),
        .object(["type": .string("linear"), "out": .int(3)]), .string("relu"),
        .object(["type": .string("linear"), "out": .int(2)])]))
    m.initialize(seed: 0)
    let x = Tensor(shape: [2, 1, 2, 2], values: [1, 2, 3, 4, -1, 0.5, 2, 1])
    let y = m.forward(x, training: true)
    var order: [Int] = []
    m.backward(Tensor(shape: y.shape, values: [1, 0, 0, 1]), onLayerDone: { order.append($0) })
    #expect(order == [3, 2, 1])   // flatten (0) needs no gradient: backward stops at the first Linear
    // Each parameter's gradient is its slice of the arena, and the values are right (central
    // differences of the Double reference).
    for (name, p) in m.parameters {
        let e = try #require(m.grads.layout.entry(named: name))
        #expect(p.grad.data == m.grads.data + e.offset && p.value.data == m.values.data + e.offset, "\(name)")
    }
    let d = GradCheck.inDouble(m.network, input: x)
    #expect(d.worst < 1e-4, "\(d)")
}

/// Layers on trailing axes keep the leading per-sample axes (as torch.nn.Linear on [B, T, C]).
@Test func trailingAxesShapes() throws {
    let m = try Model(spec: ModelSpec(input: [5], layers: [
        .object(["type": "embedding", "vocab": 9, "dim": 6]), .object(["type": "linear", "out": 4]), "layernorm", "gelu",
        .object(["type": "dropout", "p": 0.1]), .object(["type": "reshape", "shape": [20]]),
        .object(["type": "unflatten", "dim": 1, "sizes": [5, 4]]), "softmax",
    ]), source: "t")
    #expect(m.takesIndices && m.spec.takesIndices)
    #expect(m.network.layers.map(\.outputShape) == [[5, 6], [5, 4], [5, 4], [5, 4], [5, 4], [20], [5, 4], [5, 4]])
    #expect((m.network.layers[1] as? Linear)?.flops == 2 * 6 * 4 * 5)
    m.initialize(seed: 1)
    let ids = IntTensor([0, 1, 2, 3, 8, 8, 7, 6, 5, 4], shape: [2, 5])
    let y = m.forward(indices: ids, training: false)
    #expect(y.shape == [2, 5, 4])
    // softmax over the last axis: every row of 4 sums to one.
    for r in 0..<10 { #expect(abs((0..<4).reduce(Float(0)) { $0 + y[r * 4 + $1] } - 1) < 1e-5) }
    #expect(try Model(spec: ModelSpec(input: [1, 28, 28], layers: [.object(["type": "flatten", "start_dim": 2])]), source: "t")
        .outputShape == [1, 784])
}

@Test func specErrorsNameTheLayer() {
    func err(_ layers: [ConfigValue], input: [Int] = [4]) -> String {
        do { _ = try Model(spec: ModelSpec(input: input, layers: layers), source: "job.yaml"); return "" }
        catch { return "\(error)" }
    }
    #expect(err([.string("softmaxx")]).contains("model.layers[0]: unknown layer type \"softmaxx\""))
    #expect(err([.object(["type": .string("linear")])]).contains("model.layers[0].out: required integer is missing"))
    #expect(err([.object(["type": .string("linear"), "out": .int(0)])]).contains("expected an integer ≥ 1"))
    #expect(err([.object(["type": .string("linear"), "out": .int(2), "bais": .bool(true)])]).contains("model.layers[0].bais: unknown key"))
    #expect(err([.object(["type": .string("layernorm"), "normalized_shape": [3]])], input: [2, 4])
        .contains("model.layers[0].normalized_shape: [3] must be the last axes of the input [2, 4]"))
    #expect(err(["relu", .object(["type": .string("embedding"), "vocab": 5, "dim": 2])])
        .contains("model.layers[1]: this layer takes integer ids, so it must be the model's first layer"))
    #expect(err([.object(["type": .string("unflatten"), "dim": 1, "sizes": [3, -1]])]).contains("[3, -1] cannot hold 4 elements"))
    #expect(err([.object(["type": .string("reshape"), "shape": [3]])]).contains("[3] holds 3 elements, the input has 4"))
    #expect(err([.object(["type": .string("flatten"), "start_dim": 3])], input: [2, 2]).contains("axis 3 is outside the per-sample axes 1…2"))
    #expect(err([.int(3)]).contains("expected a layer"))
}

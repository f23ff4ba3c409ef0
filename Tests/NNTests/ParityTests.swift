import Config
import Formats
import NN
import Optim
import TensorCore
import TestSupport
import Testing

/// PyTorch fixtures from scripts/fixtures/make_parity.py (committed under Tests/Fixtures/parity).
let parityDir = Fixtures.packageRoot + "/Tests/Fixtures/parity"

func fixtures(_ prefix: String) -> [String] {
    FileIO.list(parityDir).filter { $0.hasPrefix(prefix) && $0.hasSuffix(".safetensors") }
}

/// Largest |a − b| relative to the reference's largest magnitude (at least 1).
func relativeError(_ a: UnsafePointer<Float>, _ ref: [Float]) -> Double {
    var worst = 0.0, scale = 1.0
    for (i, r) in ref.enumerated() {
        worst = max(worst, Double(abs(a[i] - r)))
        scale = max(scale, Double(abs(r)))
    }
    return worst / scale
}

func tensor(_ e: SafeTensors.Entry) -> Tensor { Tensor(shape: e.shape, values: e.floats()) }

/// A missing or empty fixture directory must fail, not run zero cases.
@Test func fixturesArePresent() {
    #expect(fixtures("layer_").count >= 80, "\(fixtures("layer_").count) layer fixtures in \(parityDir)")
    #expect(fixtures("layer_block_").count == 11)
    #expect(fixtures("loss_").count >= 15)
    #expect(fixtures("zoo_").count == ModelSpec.zoo.count)
    #expect(fixtures("optim_").count >= 12)
}

@Test(arguments: fixtures("layer_"))
func layerMatchesPyTorch(file: String) throws {
    let f = try SafeTensors.read(path: "\(parityDir)/\(file)")
    let spec = try JSON.parse(f.metadata["spec"]!)
    guard case .list(let dims) = try JSON.parse(f.metadata["shape"]!) else { Issue.record("shape"); return }
    let shape = dims.compactMap { $0.number.map(Int.init) }
    let training = f.metadata["train"] == "true"
    let seq = SequenceContext()
    let l = try LayerFactory.build(spec, LayerContext(inputShape: shape, random: RandomSource(RNG(seed: 1)), source: file, path: "layer",
                                                      sequence: seq))
    // Padded keys ([B, T] bools), as a batch of unequal sequences hands them to the model.
    func bools(_ key: String) throws -> [Bool]? {
        guard let text = f.metadata[key], case .list(let rows) = try JSON.parse(text) else { return nil }
        return rows.flatMap { row -> [Bool] in
            guard case .list(let cells) = row else { return [] }
            return cells.map { if case .bool(true) = $0 { true } else { false } }
        }
    }
    seq.keyPadding = try bools("padding")
    // A decoder layer's memory (an encoder output) and its padding.
    seq.memory = f.tensor("memory").map(tensor)
    seq.memoryPadding = try bools("memory_padding")
    for (name, p) in l.namedParameters() {
        let e = try #require(f.tensor("param.\(name)"), "\(file): no param.\(name)")
        try #require(e.shape == p.shape, "\(file): \(name) shape")
        e.copyFloats(into: p.value.data)
        p.grad.zero()
    }
    for (name, b) in l.namedBuffers() where !b.isCounter {
        let e = try #require(f.tensor("buffer_in.\(name)"), "\(file): no buffer_in.\(name)")
        e.copyFloats(into: b.value.data)
    }
    let x = tensor(f.tensor("x")!)
    // Ids go to an embedding as integers, as a model feeds them.
    let y = if let e = l as? IndexInputLayer {
        e.forward(indices: IntTensor(x.array.map { Int32($0) }, shape: x.shape), training: training)
    } else {
        l.forward(x, training: training)
    }
    #expect(y.shape == f.tensor("y")!.shape, "\(file): output shape")
    #expect(relativeError(y.data, f.tensor("y")!.floats()) < 1e-4, "\(file): forward")
    let dy = tensor(f.tensor("dy")!)   // kept alive: reshaping layers return views of it
    let dx = l.backward(dy, needInputGrad: true)
    if let ref = f.tensor("dx") {
        let dx = try #require(dx, "\(file): no input gradient")
        #expect(relativeError(dx.data, ref.floats()) < 1e-4, "\(file): input gradient")
    }
    for (name, p) in l.namedParameters() {
        #expect(relativeError(p.grad.data, f.tensor("grad.\(name)")!.floats()) < 1e-4, "\(file): gradient of \(name)")
    }
    if let ref = f.tensor("dmemory") {
        #expect(seq.memoryGrad.count == ref.count && relativeError(seq.memoryGrad.data, ref.floats()) < 1e-4, "\(file): memory gradient")
    }
    // Running statistics after the forward (updated in training, untouched in evaluation).
    for (name, b) in l.namedBuffers() where !b.isCounter {
        #expect(relativeError(b.value.data, f.tensor("buffer.\(name)")!.floats()) < 1e-4, "\(file): buffer \(name)")
    }
}

@Test(arguments: fixtures("loss_"))
func lossMatchesPyTorch(file: String) throws {
    let f = try SafeTensors.read(path: "\(parityDir)/\(file)")
    let z = tensor(f.tensor("z")!)
    let t = f.tensor("target")!
    let kind = f.metadata["loss"]!
    let labels = IntTensor(t.floats().map { Int32($0) }, shape: t.shape)
    let (loss, target): (Loss, Target) = switch kind {
    case "cross_entropy": (SoftmaxCrossEntropy(labelSmoothing: Float(f.metadata["label_smoothing"].flatMap(Double.init) ?? 0)), .classes(labels))
    case "mse": (MeanSquaredError(), .values(tensor(t)))
    case "mae": (MeanAbsoluteError(), .values(tensor(t)))
    case "huber": (HuberLoss(delta: Float(f.metadata["delta"].flatMap(Double.init) ?? 1)), .values(tensor(t)))
    case "cross_entropy_soft": (SoftmaxCrossEntropy(), .values(tensor(t)))
    case "perceptron": (PerceptronLoss(), .classes(labels))
    case "bce": (SigmoidBinaryCrossEntropy(), .values(tensor(t)))
    case "poisson_nll": (PoissonNLL(logInput: true), .values(tensor(t)))
    case "poisson_nll_rate": (PoissonNLL(logInput: false), .values(tensor(t)))
    default: (HingeLoss(), .classes(labels))
    }
    let g = Tensor.workspace()
    let value = loss.compute(z, target, grad: g)
    let ref = f.tensor("loss")!.floats()[0]
    #expect(abs(value - ref) <= 1e-4 * max(1, abs(ref)), "\(file): loss \(value) vs \(ref)")
    #expect(relativeError(g.data, f.tensor("dz")!.floats()) < 1e-4, "\(file): gradient")
}

@Test(arguments: fixtures("optim_"))
func optimizerTrajectoryMatchesPyTorch(file: String) throws {
    let f = try SafeTensors.read(path: "\(parityDir)/\(file)")
    let p0 = f.tensor("p0")!.floats(), grads = f.tensor("grads")!.floats()
    let traj = f.tensor("trajectory")!.floats(), lrs = f.tensor("lr")!.floats()
    let steps = lrs.count
    let (p, g) = arenas(p0, [Float](repeating: 0, count: 10))
    let name = String(file.dropFirst("optim_".count).dropLast(".safetensors".count))
    let opt: Optimizer = switch name {
    case "sgd": SGD(params: p, grads: g, lr: 0.1)
    case "sgd_momentum": SGD(params: p, grads: g, lr: 0.1, momentum: 0.9, weightDecay: 0.01)
    case "sgd_nesterov": SGD(params: p, grads: g, lr: 0.1, momentum: 0.9, nesterov: true)
    case "adagrad": AdaGrad(params: p, grads: g, lr: 0.1, lrDecay: 0.01, weightDecay: 0.01)
    case "rmsprop": RMSprop(params: p, grads: g, lr: 0.01)
    case "rmsprop_centered_momentum": RMSprop(params: p, grads: g, lr: 0.01, weightDecay: 0.01, momentum: 0.5, centered: true)
    case "adam": Adam(params: p, grads: g, lr: 0.01, weightDecay: 0.01)
    case "adamw": Adam(params: p, grads: g, lr: 0.01, weightDecay: 0.01, decoupled: true)
    default: SGD(params: p, grads: g, lr: 0.1)
    }
    let metrics: [Double] = [1.0, 0.9, 0.95, 0.95, 0.95, 0.8, 0.85, 0.9]
    var plateau = ReduceOnPlateau(factor: 0.5, patience: 1)
    for s in 0..<steps {
        let factor: Double = switch name {
        case "schedule_step": LRSchedule.step(everySteps: 3, gamma: 0.5).factor(step: s)
        case "schedule_cosine": LRSchedule.cosine(totalSteps: 8, minFactor: 0.1).factor(step: s)
        case "schedule_warmup_cosine": LRSchedule.warmupCosine(warmup: 4, totalSteps: 10, minFactor: 0).factor(step: s)
        case "schedule_plateau": plateau.scale
        default: 1
        }
        let base: Double = name.hasPrefix("schedule") ? 0.1 : Double(opt.lr)
        if name.hasPrefix("schedule") {
            opt.lr = Float(base * factor)
            #expect(abs(Double(opt.lr) - Double(lrs[s])) <= 1e-6, "\(name) step \(s): lr \(opt.lr) vs \(lrs[s])")
        }
        for i in 0..<10 { g.data[i] = grads[s * 10 + i] }
        opt.step()
        #expect(relativeError(p.data, Array(traj[(s * 10)..<(s * 10 + 10)])) < 1e-4, "\(name) step \(s)")
        if name == "schedule_plateau" { plateau.step(metrics[s]) }
    }
}


@Test func dropoutWithAFixedMaskMatchesPyTorch() throws {
    let f = try SafeTensors.read(path: "\(parityDir)/dropout_fixed_mask.safetensors")
    let x = tensor(f.tensor("x")!)
    let d = Dropout(shape: [7], p: 0.3, random: RandomSource(RNG(seed: 1)))
    let y = d.forward(x, keep: f.tensor("keep")!.floats())
    #expect(relativeError(y.data, f.tensor("y")!.floats()) < 1e-6)
    let dy = tensor(f.tensor("dy")!)
    let dx = try #require(d.backward(dy, needInputGrad: true))
    #expect(relativeError(dx.data, f.tensor("dx")!.floats()) < 1e-6)
}

/// The whole training step: Conv + BN + ReLU + pool + Linear from PyTorch's init, five SGD
/// momentum steps on the same batches — every loss and the final weights and statistics.
@Test func trainingTrajectoryMatchesPyTorch() throws {
    let f = try SafeTensors.read(path: "\(parityDir)/trajectory_conv_bn_sgd.safetensors")
    guard case .list(let layers) = try JSON.parse(f.metadata["spec"]!) else { Issue.record("spec"); return }
    let m = try Model(spec: ModelSpec(input: [1, 6, 6], layers: layers))
    for (name, p) in m.parameters {
        let e = try #require(f.tensor("init.\(name)"), "no init.\(name)")
        try #require(e.shape == p.shape)
        e.copyFloats(into: p.value.data)
    }
    let sgd = SGD(params: m.values, grads: m.grads, lr: 0.1, momentum: 0.9)
    let xs = f.tensor("x")!.floats(), ys = f.tensor("y")!.floats(), want = f.tensor("losses")!.floats()
    let ce = SoftmaxCrossEntropy(), g = Tensor.workspace()
    for s in 0..<5 {
        let x = Tensor(shape: [8, 1, 6, 6], values: Array(xs[(s * 288)..<((s + 1) * 288)]))
        let labels = IntTensor(ys[(s * 8)..<((s + 1) * 8)].map { Int32($0) })
        m.zeroGrad()
        let loss = ce.compute(m.forward(x, training: true), .classes(labels), grad: g)
        m.backward(g)
        sgd.step()
        #expect(abs(loss - want[s]) <= 1e-4 * max(1, abs(want[s])), "step \(s): loss \(loss) vs \(want[s])")
    }
    for (name, p) in m.parameters {
        #expect(relativeError(p.value.data, f.tensor("final.\(name)")!.floats()) < 1e-4, "final \(name)")
    }
    for (name, b) in m.buffers where !b.isCounter {
        #expect(relativeError(b.value.data, f.tensor("final.\(name)")!.floats()) < 1e-4, "final \(name)")
    }
}

/// Dropout off (p = 0): the fixtures are made with the torch mirror's dropout disabled.
func withoutDropout(_ v: ConfigValue) -> ConfigValue {
    switch v {
    case .list(let l): return .list(l.map(withoutDropout))
    case .map(let entries):
        if entries.contains(where: { $0.key == "type" && $0.value == "dropout" }) { return ["type": "dropout", "p": 0] }
        return .map(entries.map { ConfigEntry(key: $0.key, value: withoutDropout($0.value)) })
    default: return v
    }
}

/// Every zoo model against PyTorch, the torch model built from the fixture script's own block
/// definitions: training-mode forward, input and weight gradients, running statistics.
@Test(arguments: fixtures("zoo_"))
func zooModelMatchesPyTorch(file: String) throws {
    let f = try SafeTensors.read(path: "\(parityDir)/\(file)")
    let spec = try ModelSpec(withoutDropout(try JSON.parse(f.metadata["spec"]!)), source: file)
    let m = try Model(spec: spec, source: file)
    m.initialize(seed: UInt64(f.metadata["seed"].flatMap(Int.init) ?? 0))
    // The fixture's weights are this seed's initialisation (as export-model wrote them).
    for (name, p) in m.parameters {
        let want = try #require(f.tensor("param_sum.\(name)"), "\(file): no \(name)").floats()[0]
        let sum = p.value.buffer.reduce(0, +)
        try #require(abs(sum - want) <= 1e-3 * max(1, abs(want)), "\(file): \(name) initialises to a different sum (\(sum) vs \(want)); regenerate with scripts/fixtures/make-all")
    }
    for (name, b) in m.buffers where !b.isCounter { f.tensor("buffer_in.\(name)")!.copyFloats(into: b.value.data) }
    let x = tensor(f.tensor("x")!)
    let y = m.forward(x, training: true)
    #expect(y.shape == f.tensor("y")!.shape && relativeError(y.data, f.tensor("y")!.floats()) < 1e-4, "\(file): forward")
    let dy = tensor(f.tensor("dy")!)
    let dx = try #require(m.inputGradient(dy))
    #expect(relativeError(dx.data, f.tensor("dx")!.floats()) < 1e-4, "\(file): input gradient")
    for (name, p) in m.parameters {
        #expect(relativeError(p.grad.data, f.tensor("grad.\(name)")!.floats()) < 1e-4, "\(file): gradient of \(name)")
    }
    for (name, b) in m.buffers where !b.isCounter {
        #expect(relativeError(b.value.data, f.tensor("buffer.\(name)")!.floats()) < 1e-4, "\(file): \(name)")
    }
}

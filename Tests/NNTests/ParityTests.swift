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
    #expect(fixtures("layer_").count >= 48, "\(fixtures("layer_").count) layer fixtures in \(parityDir)")
    #expect(fixtures("loss_").count >= 13)
    #expect(fixtures("optim_").count >= 12)
}

@Test(arguments: fixtures("layer_"))
func layerMatchesPyTorch(file: String) throws {
    let f = try SafeTensors.read(path: "\(parityDir)/\(file)")
    let spec = try JSON.parse(f.metadata["spec"]!)
    guard case .list(let dims) = try JSON.parse(f.metadata["shape"]!) else { Issue.record("shape"); return }
    let shape = dims.compactMap { $0.number.map(Int.init) }
    let training = f.metadata["train"] == "true"
    let l = try LayerFactory.build(spec, LayerContext(inputShape: shape, random: RandomSource(RNG(seed: 1)), source: file, path: "layer"))
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

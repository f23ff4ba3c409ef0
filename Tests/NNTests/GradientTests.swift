import Glibc
import NN
import TensorCore
import TestSupport
import Testing

func initialized(_ layer: Layer, seed: UInt64 = 5) -> Layer {
    var rng = RNG(seed: seed)
    for (_, p) in layer.namedParameters() {
        for i in 0..<p.count { p.value[i] = rng.uniform(-0.5, 0.5) }
    }
    return layer
}

@Test(arguments: [true, false])
func linearGradients(bias: Bool) {
    let l = initialized(Linear(6, 4, bias: bias))
    let x = GradCheck.input([3, 6], seed: 1)
    #expect(GradCheck.inDouble(l, input: x).worst < 1e-4)
    let r = GradCheck.layer(l, input: x)
    #expect(r.worst < 1e-2, "\(r)")
}

@Test func linearForwardKnownValues() {
    let l = Linear(2, 2)
    l.weight.value.copy(from: Tensor(shape: [2, 2], values: [1, 2, 3, 4]))
    l.bias!.value.copy(from: Tensor(shape: [2], values: [0.5, -1]))
    let y = l.forward(Tensor(shape: [1, 2], values: [1, 1]), training: true)
    #expect(y.array == [3.5, 6])
}

@Test func activationGradients() {
    for layer in [ReLU([5]), Sigmoid([5]), Tanh([5])] as [Layer] {
        let x = GradCheck.input([4, 5], seed: 2)
        let d = GradCheck.inDouble(layer, input: x)
        #expect(d.worst < 1e-4, "\(type(of: layer)) in Double: \(d)")
        let r = GradCheck.layer(layer, input: x)
        #expect(r.worst < 1e-2, "\(type(of: layer)): \(r)")
    }
}

@Test func activationValues() {
    let x = Tensor(shape: [1, 3], values: [-2, 0.5, 3])
    #expect(ReLU([3]).forward(x, training: false).array == [0, 0.5, 3])
    let s = Sigmoid([3]).forward(x, training: false).array
    #expect(abs(s[0] - 0.11920292) < 1e-6 && abs(s[2] - 0.95257413) < 1e-6)
    let t = Tanh([3]).forward(x, training: false).array
    #expect(abs(t[1] - 0.46211716) < 1e-6)
    // Stable for extreme inputs.
    #expect(sigmoid(-1000) == 0 && sigmoid(1000) == 1)
}

@Test func flattenAndSequentialGradients() {
    let seq = Sequential(inputShape: [2, 3], [Reshape(flattening: [2, 3]), initialized(Linear(6, 5)), Tanh([5]),
                                               initialized(Linear(5, 3), seed: 9)])
    let x = GradCheck.input([4, 2, 3], seed: 3)
    #expect(GradCheck.inDouble(seq, input: x).worst < 1e-4)
    let r = GradCheck.layer(seq, input: x)
    #expect(r.worst < 1e-2, "\(r)")
}

@Test func softmaxCrossEntropyGradientAndValue() {
    let logits = GradCheck.input([4, 5], seed: 4, margin: 0)
    let labels = IntTensor([0, 3, 4, 1])
    #expect(GradCheck.lossInDouble(SoftmaxCrossEntropy(), prediction: logits, target: .classes(labels)).worst < 1e-4)
    let r = GradCheck.loss(SoftmaxCrossEntropy(), prediction: logits, target: .classes(labels))
    #expect(r.worst < 1e-2, "\(r)")
    // Uniform logits: loss = log C, gradient (1/C − y)/B.
    let z = Tensor(shape: [2, 4])
    let g = Tensor.workspace()
    let l = SoftmaxCrossEntropy().compute(z, .classes(IntTensor([1, 2])), grad: g)
    #expect(abs(l - Float(1.3862944)) < 1e-6)
    #expect(abs(g[0] - 0.125) < 1e-7 && abs(g[1] - (0.25 - 1) / 2) < 1e-7)
    // Huge logits stay finite.
    let big = Tensor(shape: [1, 3], values: [1000, -1000, 0])
    #expect(SoftmaxCrossEntropy().compute(big, .classes(IntTensor([0])), grad: nil) == 0)
}

@Test func softTargetsCrossEntropyGradient() {
    let logits = GradCheck.input([3, 4], seed: 5, margin: 0)
    let t = Tensor(shape: [3, 4], values: [0.7, 0.1, 0.1, 0.1, 0, 1, 0, 0, 0.25, 0.25, 0.25, 0.25])
    #expect(GradCheck.lossInDouble(SoftmaxCrossEntropy(), prediction: logits, target: .values(t)).worst < 1e-4)
    let r = GradCheck.loss(SoftmaxCrossEntropy(), prediction: logits, target: .values(t))
    #expect(r.worst < 1e-2, "\(r)")
}

@Test func mseGradientAndValue() {
    let p = GradCheck.input([3, 2], seed: 6, margin: 0)
    let y = GradCheck.input([3, 2], seed: 7, margin: 0)
    #expect(GradCheck.lossInDouble(MeanSquaredError(), prediction: p, target: .values(y)).worst < 1e-4)
    let r = GradCheck.loss(MeanSquaredError(), prediction: p, target: .values(y))
    #expect(r.worst < 1e-2, "\(r)")
    let v = MeanSquaredError().compute(Tensor(shape: [2], values: [1, 3]), .values(Tensor(shape: [2], values: [0, 1])), grad: nil)
    #expect(v == 2.5)
}

@Test func lossFamilyGradients() {
    let z = GradCheck.input([4, 5], seed: 21, margin: 0)
    let labels = IntTensor([0, 3, 4, 1])
    let probs = Tensor(shape: [4, 5], values: (0..<20).map { Float(($0 * 7) % 5) / 4 })   // targets in [0, 1]
    let counts = Tensor(shape: [4, 5], values: (0..<20).map { Float(($0 * 3) % 4) })
    let rates = Tensor(shape: [4, 5], values: (0..<20).map { 0.5 + Float($0 % 7) / 3 })
    let cases: [(String, Loss, Tensor, Target)] = [
        ("cross entropy, smoothing 0.1", SoftmaxCrossEntropy(labelSmoothing: 0.1), z, .classes(labels)),
        ("bce (one-hot of labels)", SigmoidBinaryCrossEntropy(), z, .classes(labels)),
        ("bce (multilabel targets)", SigmoidBinaryCrossEntropy(), z, .values(probs)),
        ("poisson nll, log input", PoissonNLL(logInput: true), z, .values(counts)),
        ("poisson nll, rate input", PoissonNLL(logInput: false), rates, .values(counts)),
        ("hinge", HingeLoss(), z, .classes(labels)),
        ("perceptron", PerceptronLoss(), z, .classes(labels)),
    ]
    // Each task's target shapes: per-token classes [B, T] for logits [B, T, V], values [B, k],
    // one logit per sample for binary.
    let tokens = GradCheck.input([2, 3, 5], seed: 22, margin: 0)
    let y3 = GradCheck.input([4, 3], seed: 23, margin: 0)
    let z3 = GradCheck.input([4, 3], seed: 24, margin: 0.1)
    let binary = GradCheck.input([4, 1], seed: 25, margin: 0)
    let taskCases: [(String, Loss, Tensor, Target)] = [
        ("cross entropy over [B, T, V]", SoftmaxCrossEntropy(), tokens, .classes(IntTensor([1, 4, 0, 2, 2, 3], shape: [2, 3]))),
        ("cross entropy over [B, T, V], smoothing", SoftmaxCrossEntropy(labelSmoothing: 0.2), tokens,
         .classes(IntTensor([1, 4, 0, 2, 2, 3], shape: [2, 3]))),
        ("mse, regression [B, 3]", MeanSquaredError(), z3, .values(y3)),
        ("mae, regression [B, 3]", MeanAbsoluteError(), z3, .values(y3)),
        ("huber δ = 0.3, regression [B, 3]", HuberLoss(delta: 0.3), z3, .values(y3)),
        ("bce, binary [B, 1]", SigmoidBinaryCrossEntropy(), binary, .values(Tensor(shape: [4, 1], values: [1, 0, 0, 1]))),
        ("poisson nll, counts [B, 3]", PoissonNLL(logInput: true), z3, .values(Tensor(shape: [4, 3], values: (0..<12).map { Float($0 % 4) }))),
    ]
    for (name, loss, x, t) in cases + taskCases {
        let d = GradCheck.lossInDouble(loss, prediction: x, target: t)
        #expect(d.worst < 1e-4, "\(name) in Double: \(d)")
        let r = GradCheck.loss(loss, prediction: x, target: t, eps: 1e-3)
        #expect(r.worst < 1e-2, "\(name): \(r)")
    }
}

@Test func lossValuesByHand() {
    // BCE on logits is stable far from 0 and equals −log σ(z) for y = 1.
    let bce = SigmoidBinaryCrossEntropy()
    #expect(abs(bce.compute(Tensor(shape: [1, 1], values: [2]), .values(Tensor(shape: [1, 1], values: [1])), grad: nil) - 0.126928) < 1e-5)
    #expect(bce.compute(Tensor(shape: [1, 1], values: [-200]), .values(Tensor(shape: [1, 1], values: [0])), grad: nil) == 0)
    // Hinge: margins 1 − 2 + 0.5 = −0.5 (none), 1 − 2 + 1.5 = 0.5 → 0.5 / 3 classes.
    #expect(abs(HingeLoss().compute(Tensor(shape: [1, 3], values: [2, 0.5, 1.5]), .classes(IntTensor([0])), grad: nil) - 0.5 / 3) < 1e-6)
    // Perceptron: zero when right, the margin when wrong.
    #expect(PerceptronLoss().compute(Tensor(shape: [1, 3], values: [3, 1, 2]), .classes(IntTensor([0])), grad: nil) == 0)
    #expect(PerceptronLoss().compute(Tensor(shape: [1, 3], values: [3, 1, 2]), .classes(IntTensor([2])), grad: nil) == 1)
    // Label smoothing 0.1 with uniform logits leaves the loss at log C.
    #expect(abs(SoftmaxCrossEntropy(labelSmoothing: 0.1).compute(Tensor(shape: [1, 4]), .classes(IntTensor([1])), grad: nil) - logf(4)) < 1e-6)
}

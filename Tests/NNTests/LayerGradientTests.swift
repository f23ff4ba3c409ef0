import Config
import NN
import TensorCore
import TestSupport
import Testing

/// Builds one layer from a spec entry for a per-sample input shape.
func layer(_ spec: ConfigValue, _ shape: [Int], seed: UInt64 = 5) throws -> Layer {
    let l = try LayerFactory.build(spec, LayerContext(inputShape: shape, random: RandomSource(RNG(seed: 1)), source: "test", path: "layer"))
    return initialized(l, seed: seed)
}

func obj(_ pairs: KeyValuePairs<String, ConfigValue>) -> ConfigValue { .object(pairs) }

/// Inputs whose values are all at least `gap` apart (so max pooling has no near-ties).
func distinctInput(_ shape: [Int], seed: UInt64, gap: Float = 0.05) -> Tensor {
    let t = Tensor(shape: shape)
    var rng = RNG(seed: seed)
    let perm = rng.permutation(t.count)
    for i in 0..<t.count { t[i] = (Float(perm[i]) - Float(t.count) / 2) * gap }
    return t
}

/// Two checks per layer: the Float kernels against central differences of a double-precision
/// reference (tight), and against central differences of the Float kernels themselves.
func check(_ spec: ConfigValue, _ shape: [Int], batch: Int = 2, tol: Double = 1e-2, eps: Float = 1e-2,
           input: Tensor? = nil, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let l = try layer(spec, shape)
    let x = input ?? GradCheck.input([batch] + shape, seed: 11)
    let d = GradCheck.inDouble(l, input: x)
    #expect(d.worst < 1e-4, "\(spec) in Double: \(d)", sourceLocation: sourceLocation)
    let r = GradCheck.layer(l, input: x, eps: eps)
    #expect(r.worst < tol, "\(spec): \(r)", sourceLocation: sourceLocation)
}

@Test(arguments: [
    obj(["type": "conv2d", "out": 4, "kernel": 3, "padding": 1]),
    obj(["type": "conv2d", "out": 3, "kernel": 3, "stride": 2]),
    obj(["type": "conv2d", "out": 2, "kernel": 3, "padding": 2, "dilation": 2]),
    obj(["type": "conv2d", "out": 4, "kernel": 3, "padding": 1, "groups": 2]),
    obj(["type": "conv2d", "out": 4, "kernel": 3, "padding": 1, "groups": 4, "bias": false]),   // depthwise
    obj(["type": "conv2d", "out": 3, "kernel": 1]),                                            // 1×1 fast path
    obj(["type": "conv2d", "out": 2, "kernel": [2, 3], "stride": [1, 2], "padding": [1, 0]]),
] as [ConfigValue])
func convolutionGradients(spec: ConfigValue) throws {
    try check(spec, [4, 6, 5])
}

@Test func poolingGradients() throws {
    try check(obj(["type": "maxpool", "kernel": 2]), [2, 6, 6], input: distinctInput([2, 2, 6, 6], seed: 3))
    try check(obj(["type": "maxpool", "kernel": 3, "stride": 2, "padding": 1]), [2, 7, 7], input: distinctInput([2, 2, 7, 7], seed: 4))
    try check(obj(["type": "avgpool", "kernel": 2]), [2, 6, 6])
    try check(obj(["type": "avgpool", "kernel": 3, "stride": 1, "padding": 1]), [2, 5, 5])
    try check("global_avgpool", [3, 4, 4])
}

@Test func normalizationGradients() throws {
    try check("batchnorm", [3, 4, 4], batch: 4)
    try check("batchnorm", [5], batch: 6)
    try check("layernorm", [3, 4])
    try check(obj(["type": "groupnorm", "groups": 2]), [4, 3, 3])
    try check(obj(["type": "instancenorm", "affine": true]), [3, 4, 4])
}

@Test func activationFamilyGradients() throws {
    for spec: ConfigValue in ["leaky_relu", obj(["type": "leaky_relu", "alpha": 0.2]), "elu", "gelu",
                              obj(["type": "gelu", "approximate": "tanh"]), "silu", obj(["type": "swish", "beta": 1.5]),
                              "softplus", obj(["type": "scaled_sigmoid", "low": -2, "high": 3]), "relu6", "prelu",
                              obj(["type": "prelu", "per_channel": true]), "softmax", "log_softmax"] {
        try check(spec, spec == obj(["type": "prelu", "per_channel": true]) ? [3, 2, 2] : [6], batch: 3)
    }
}

@Test func containerAndBlockGradients() throws {
    try check(obj(["type": "residual", "body": .list([obj(["type": "conv2d", "out": 3, "kernel": 3, "padding": 1]), "tanh"])]), [3, 4, 4])
    try check(obj(["type": "residual", "body": .list([obj(["type": "conv2d", "out": 4, "kernel": 3, "padding": 1, "stride": 2])]),
                   "shortcut": .list([obj(["type": "conv2d", "out": 4, "kernel": 1, "stride": 2])])]), [2, 5, 5])
    try check(obj(["type": "concat", "branches": .list([.list([]), .list([obj(["type": "conv2d", "out": 2, "kernel": 3, "padding": 1])])])]), [2, 4, 4])
    // Blocks put ReLU right after BatchNorm, whose outputs crowd around zero: a smaller step
    // keeps finite differences off the ReLU kink.
    try check(obj(["type": "resnet_basic", "out": 4, "stride": 2]), [2, 6, 6], batch: 3, eps: 1e-3)
    try check(obj(["type": "dense_block", "growth": 2, "layers": 2]), [2, 4, 4], batch: 3, eps: 1e-3)
    try check(obj(["type": "inverted_residual", "out": 3, "expand": 2]), [3, 4, 4], batch: 3, eps: 1e-3)
    try check(obj(["type": "resnext_block", "out": 4, "cardinality": 2, "width": 2]), [4, 4, 4], batch: 3, eps: 1e-3)
}

@Test func batchNormRunningStatisticsFollowPyTorch() throws {
    let bn = BatchNorm(inputShape: [1, 2, 2])
    bn.weight.value.fill(1)
    let x = Tensor(shape: [2, 1, 2, 2], values: [1, 2, 3, 4, 5, 6, 7, 8])
    _ = bn.forward(x, training: true)
    // mean 4.5, biased var 5.25, unbiased 6; momentum 0.1
    #expect(abs(bn.runningMean.value[0] - 0.45) < 1e-6)
    #expect(abs(bn.runningVar.value[0] - (0.9 + 0.6)) < 1e-5)
    #expect(bn.batchesTracked.value[0] == 1)
    let y = bn.forward(x, training: false)
    #expect(abs(y[0] - (1 - 0.45) / (1.5 + 1e-5).squareRoot()) < 1e-5)
}

@Test func dropoutScalesKeptUnitsAndIsIdentityInEval() throws {
    let d = Dropout(shape: [1000], p: 0.3, random: RandomSource(RNG(seed: 3)))
    let x = Tensor(shape: [4, 1000])
    x.fill(1)
    let y = d.forward(x, training: true)
    let kept = y.buffer.filter { $0 != 0 }
    #expect(kept.allSatisfy { abs($0 - 1 / 0.7) < 1e-6 })
    #expect(abs(Double(kept.count) / 4000 - 0.7) < 0.03)
    let g = d.backward(x, needInputGrad: true)!
    #expect((0..<4000).allSatisfy { g[$0] == y[$0] })
    #expect(d.forward(x, training: false) === x)
}

/// Layers on trailing axes: every leading axis of [B, …, C] is another row.
@Test func trailingAxisGradients() throws {
    try check(obj(["type": "linear", "out": 3]), [4, 5])
    try check(obj(["type": "linear", "out": 2, "bias": false]), [2, 3, 4])
    try check("layernorm", [4, 6])
    try check(obj(["type": "layernorm", "normalized_shape": [3, 4]]), [2, 3, 4])
    try check(obj(["type": "layernorm", "affine": false]), [3, 5])
    try check("softmax", [3, 5], batch: 2)
    try check("log_softmax", [2, 3, 4], batch: 2)
    try check("gelu", [3, 4])
    try check(obj(["type": "dropout", "p": 0]), [3, 4])
    try check(obj(["type": "flatten", "start_dim": 2]), [2, 3, 4])
    try check(obj(["type": "unflatten", "dim": 1, "sizes": [2, -1]]), [6])
    // A reshape between two linears: the second sees the new last axis.
    try check(obj(["type": "sequential", "layers": [obj(["type": "linear", "out": 6]), obj(["type": "reshape", "shape": [3, 2, 2]]),
                                                     obj(["type": "linear", "out": 3])]]), [2, 4])
}

@Test func embeddingGradientsTouchOnlyTheRowsUsed() throws {
    let e = try layer(obj(["type": "embedding", "vocab": 7, "dim": 3]), [4])
    let ids = Tensor(shape: [2, 4], values: [1, 5, 1, 0, 6, 5, 5, 2])   // ids 3 and 4 unused
    let d = GradCheck.inDouble(e, input: ids)
    #expect(d.worst < 1e-4, "\(d)")
    let r = GradCheck.layer(e, input: ids)
    #expect(r.worst < 1e-2, "\(r)")
    let emb = try #require(e as? Embedding)
    emb.weight.grad.zero()
    let y = emb.forward(indices: IntTensor([3, 3, 6], shape: [1, 3]), training: true)
    #expect(y.shape == [1, 3, 3] && (0..<3).allSatisfy { y[$0] == emb.weight.value[9 + $0] && y[3 + $0] == y[$0] })
    let dy = Tensor(shape: [1, 3, 3], values: [1, 2, 3, 10, 20, 30, 7, 8, 9])
    _ = emb.backward(dy, needInputGrad: false)
    let g = emb.weight.grad
    #expect((0..<3).allSatisfy { g[9 + $0] == dy[$0] + dy[3 + $0] && g[18 + $0] == dy[6 + $0] })
    #expect((0..<21).filter { g[$0] != 0 }.allSatisfy { $0 / 3 == 3 || $0 / 3 == 6 })
}

@Test func impossibleShapesAreClearErrors() {
    func err(_ spec: ConfigValue, _ shape: [Int]) -> String {
        do { _ = try layer(spec, shape); return "no error" } catch { return "\(error)" }
    }
    #expect(err(obj(["type": "conv2d", "out": 4, "kernel": 7]), [1, 5, 5]).contains("kernel 7×7 (dilation 1×1) is larger than the padded input 5×5"))
    #expect(err(obj(["type": "conv2d", "out": 4, "kernel": 3, "groups": 2]), [3, 5, 5]).contains("must both be divisible by groups (2)"))
    #expect(err(obj(["type": "conv2d", "out": 4, "kernel": 3]), [25]).contains("needs a [channels, height, width] input"))
    #expect(err(obj(["type": "maxpool", "kernel": 4]), [1, 3, 3]).contains("kernel 4 is larger than the input 3×3"))
    #expect(err(obj(["type": "groupnorm", "groups": 3]), [4, 2, 2]).contains("4 channels are not divisible by 3 groups"))
    #expect(err(obj(["type": "conv2d", "out": 4, "kernel": 0]), [1, 5, 5]).contains("layer.kernel: expected an integer ≥ 1"))
    #expect(err(obj(["type": "residual", "body": .list([obj(["type": "conv2d", "out": 3, "kernel": 1])])]), [2, 4, 4])
        .contains("add a projection shortcut"))
    #expect(err("swishh", [3]).contains("unknown layer type \"swishh\""))
}

/// The batch is split across cores and unfolded in blocks of samples (with the weight and bias
/// gradients summed per core): every output, input gradient and parameter gradient must equal
/// running the samples one at a time.
@Test(arguments: [
    obj(["type": "conv2d", "out": 6, "kernel": 3, "padding": 1]),                  // blocks of 6 samples
    obj(["type": "conv2d", "out": 5, "kernel": 1]),                                // pointwise, gathered blocks
    obj(["type": "conv2d", "out": 4, "kernel": 3, "stride": 2, "groups": 2]),
] as [ConfigValue])
func convolutionBlocksMatchOneSampleAtATime(spec: ConfigValue) throws {
    let shape = [8, 12, 12], batch = 13
    let l = try layer(spec, shape)
    let x = GradCheck.input([batch] + shape, seed: 3)
    let y = l.forward(x, training: true).clone()
    let dy = GradCheck.input(y.shape, seed: 4)
    let params = l.namedParameters().map(\.parameter)
    for p in params { p.grad.zero() }
    let dx = l.backward(dy, needInputGrad: true)!.clone()
    let grads = params.map { $0.grad.clone() }
    for p in params { p.grad.zero() }
    let (xs, ys) = (x.count / batch, y.count / batch)
    var worst: Float = 0
    for i in 0..<batch {
        let xi = Tensor(shape: [1] + shape, values: Array(x.buffer[i * xs..<(i + 1) * xs]))
        let yi = l.forward(xi, training: true)
        for j in 0..<ys { worst = max(worst, abs(yi[j] - y[i * ys + j])) }
        let dyi = Tensor(shape: yi.shape, values: Array(dy.buffer[i * ys..<(i + 1) * ys]))
        let dxi = l.backward(dyi, needInputGrad: true)!
        for j in 0..<xs { worst = max(worst, abs(dxi[j] - dx[i * xs + j])) }
    }
    for (p, g) in zip(params, grads) { for j in 0..<g.count { worst = max(worst, abs(p.grad[j] - g[j])) } }
    #expect(worst < 1e-4, "\(spec): max difference \(worst)")
}

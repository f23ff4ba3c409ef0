import TensorCore
import Glibc

/// Base for element-wise activations: subclasses supply the two kernels; buffers, shapes and
/// the layer plumbing live here. Kernels run over raw pointers (no per-element dispatch).
public class ElementwiseActivation: Layer {
    public let outputShape: [Int]
    /// Forward input and output of the last call (kernels may use either).
    var input: Tensor?
    let output = Tensor.workspace()
    let inputGrad = Tensor.workspace()

    init(shape: [Int]) { outputShape = shape }

    /// y[i] = f(x[i]) for i < n
    func forwardKernel(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        fatalError("subclass")
    }
    /// dx[i] = dy[i] · f'(x[i]) for i < n, given x and y = f(x)
    func backwardKernel(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>,
                        _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, _ n: Int) {
        fatalError("subclass")
    }

    /// f(z) in Double, from the formula (for the gradient checks).
    func referenceValue(_ z: Double) -> Double { fatalError("subclass") }

    /// Large tensors are split across cores in 8-aligned pieces.
    static let grain = 1 << 16

    /// One operation per element (seed table: activations 1 per element).
    public var flops: Int { outputShape.reduce(1, *) }

    public func reference(_ x: [Double], batch: Int, training: Bool, _ r: Reference) -> [Double] { x.map(referenceValue) }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        input = x
        output.resize(x.shape)
        let xd = x.data, yd = output.data, n = x.count
        Parallel.forEach((n + 7) / 8, grain: Self.grain / 8) { r in
            let lo = r.lowerBound * 8, hi = min(r.upperBound * 8, n)
            self.forwardKernel(xd + lo, yd + lo, hi - lo)
        }
        return output
    }

    public func backward(_ dy: Tensor, needInputGrad: Bool) -> Tensor? {
        guard needInputGrad else { return nil }
        guard let x = input else { preconditionFailure("activation backward before forward") }
        inputGrad.resize(dy.shape)
        let xd = x.data, yd = output.data, gd = dy.data, dx = inputGrad.data, n = dy.count
        Parallel.forEach((n + 7) / 8, grain: Self.grain / 8) { r in
            let lo = r.lowerBound * 8, hi = min(r.upperBound * 8, n)
            self.backwardKernel(xd + lo, yd + lo, gd + lo, dx + lo, hi - lo)
        }
        return inputGrad
    }
}

/// ReLU: max(0, z); gradient gated by the forward mask (z > 0).
public final class ReLU: ElementwiseActivation {
    public init(_ shape: [Int]) { super.init(shape: shape) }
    override func referenceValue(_ z: Double) -> Double { max(z, 0) }
    override func forwardKernel(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        var i = 0
        let zero = Vec8(repeating: 0)
        while i + 8 <= n { let v = x.load8(i); y.store8(i, v.replacing(with: zero, where: v .< zero)); i += 8 }
        while i < n { y[i] = max(x[i], 0); i += 1 }
    }
    override func backwardKernel(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>,
                                 _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, _ n: Int) {
        // Branch-free: a data-dependent branch per element mispredicts half the time.
        var i = 0
        let zero = Vec8(repeating: 0)
        while i + 8 <= n { dx.store8(i, dy.load8(i).replacing(with: zero, where: x.load8(i) .<= zero)); i += 8 }
        while i < n { dx[i] = x[i] > 0 ? dy[i] : 0; i += 1 }
    }
}

/// Sigmoid: σ(z) = 1/(1+e⁻ᶻ); σ' = a(1−a) from the output.
public final class Sigmoid: ElementwiseActivation {
    public init(_ shape: [Int]) { super.init(shape: shape) }
    override func referenceValue(_ z: Double) -> Double { 1 / (1 + exp(-z)) }
    override func forwardKernel(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        for i in 0..<n { y[i] = sigmoid(x[i]) }
    }
    override func backwardKernel(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>,
                                 _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, _ n: Int) {
        for i in 0..<n { dx[i] = dy[i] * y[i] * (1 - y[i]) }
    }
}

/// Tanh; tanh' = 1 − a² from the output.
public final class Tanh: ElementwiseActivation {
    public init(_ shape: [Int]) { super.init(shape: shape) }
    override func referenceValue(_ z: Double) -> Double { tanh(z) }
    override func forwardKernel(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        for i in 0..<n { y[i] = tanhf(x[i]) }
    }
    override func backwardKernel(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>,
                                 _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, _ n: Int) {
        for i in 0..<n { dx[i] = dy[i] * (1 - y[i] * y[i]) }
    }
}

/// Numerically stable logistic function (no overflow for large |z|).
@inline(__always)
public func sigmoid(_ z: Float) -> Float {
    if z >= 0 { return 1 / (1 + expf(-z)) }
    let e = expf(z)
    return e / (1 + e)
}

/// Leaky ReLU: max(αz, z); gradient α for z < 0.
public final class LeakyReLU: ElementwiseActivation {
    public let alpha: Float
    public init(_ shape: [Int], alpha: Float = 0.01) { self.alpha = alpha; super.init(shape: shape) }
    override func referenceValue(_ z: Double) -> Double { z > 0 ? z : Double(alpha) * z }
    override func forwardKernel(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        for i in 0..<n { y[i] = x[i] > 0 ? x[i] : alpha * x[i] }
    }
    override func backwardKernel(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>,
                                 _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, _ n: Int) {
        for i in 0..<n { dx[i] = x[i] > 0 ? dy[i] : alpha * dy[i] }
    }
}

/// ELU: z for z ≥ 0, α(eᶻ − 1) below; gradient 1 or α·eᶻ (= y + α).
public final class ELU: ElementwiseActivation {
    public let alpha: Float
    public init(_ shape: [Int], alpha: Float = 1) { self.alpha = alpha; super.init(shape: shape) }
    override func referenceValue(_ z: Double) -> Double { z >= 0 ? z : Double(alpha) * (exp(z) - 1) }
    override func forwardKernel(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        for i in 0..<n { y[i] = x[i] >= 0 ? x[i] : alpha * (expf(x[i]) - 1) }
    }
    override func backwardKernel(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>,
                                 _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, _ n: Int) {
        for i in 0..<n { dx[i] = x[i] >= 0 ? dy[i] : dy[i] * (y[i] + alpha) }
    }
}

/// GELU: z·Φ(z) exactly (erf), or PyTorch's tanh approximation 0.5z(1 + tanh(√(2/π)(z + 0.044715z³))).
/// Exact derivative: Φ(z) + z·φ(z).
public final class GELU: ElementwiseActivation {
    public let approximateTanh: Bool
    public init(_ shape: [Int], approximateTanh: Bool = false) { self.approximateTanh = approximateTanh; super.init(shape: shape) }
    static let k: Float = (2 / Float.pi).squareRoot()
    override func referenceValue(_ z: Double) -> Double { approximateTanh ? 0.5 * z * (1 + tanh((2 / Double.pi).squareRoot() * (z + 0.044715 * z * z * z))) : 0.5 * z * (1 + erf(z / 2.0.squareRoot())) }
    override func forwardKernel(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        if approximateTanh {
            for i in 0..<n { let z = x[i]; y[i] = 0.5 * z * (1 + tanhf(GELU.k * (z + 0.044715 * z * z * z))) }
        } else {
            // 0.5·z·(1 + erf(z/√2)) = 0.5·z·erfc(−z/√2): no cancellation for negative z.
            var i = 0
            while i + 8 <= n { let z = x.load8(i); y.store8(i, 0.5 * z * VectorMath.erfc(z * -0.70710678)); i += 8 }
            if i < n {
                let z = VectorMath.loadPartial(x + i, n - i, fill: 0), v = 0.5 * z * VectorMath.erfc(z * -0.70710678)
                for j in 0..<(n - i) { y[i + j] = v[j] }
            }
        }
    }
    override func backwardKernel(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>,
                                 _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, _ n: Int) {
        if approximateTanh {
            for i in 0..<n {
                let z = x[i], u = GELU.k * (z + 0.044715 * z * z * z), t = tanhf(u)
                let du = GELU.k * (1 + 3 * 0.044715 * z * z)
                dx[i] = dy[i] * (0.5 * (1 + t) + 0.5 * z * (1 - t * t) * du)
            }
        } else {
            // Φ(z) + z·φ(z), with Φ(z) = y/z from the forward output (Φ(0) = 1/2): one exp.
            let c = 1 / (2 * Float.pi).squareRoot()
            @inline(__always) func slope(_ z: Vec8, _ y: Vec8) -> Vec8 {
                let phi = (y / z).replacing(with: 0.5, where: z .== 0)
                return phi + z * c * VectorMath.exp(-0.5 * z * z)
            }
            var i = 0
            while i + 8 <= n { dx.store8(i, dy.load8(i) * slope(x.load8(i), y.load8(i))); i += 8 }
            if i < n {
                let v = slope(VectorMath.loadPartial(x + i, n - i, fill: 0), VectorMath.loadPartial(y + i, n - i, fill: 0))
                for j in 0..<(n - i) { dx[i + j] = dy[i + j] * v[j] }
            }
        }
    }
}

/// Swish: z·σ(βz) (β = 1: SiLU); derivative σ(βz) + βz·σ(βz)(1 − σ(βz)).
public final class Swish: ElementwiseActivation {
    public let beta: Float
    public init(_ shape: [Int], beta: Float = 1) { self.beta = beta; super.init(shape: shape) }
    override func referenceValue(_ z: Double) -> Double { z / (1 + exp(-Double(beta) * z)) }
    override func forwardKernel(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        for i in 0..<n { y[i] = x[i] * sigmoid(beta * x[i]) }
    }
    override func backwardKernel(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>,
                                 _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, _ n: Int) {
        for i in 0..<n {
            let s = sigmoid(beta * x[i])
            dx[i] = dy[i] * (s + beta * x[i] * s * (1 - s))
        }
    }
}

/// Softplus: log(1 + e^{βz})/β, linear above `threshold` (as PyTorch); derivative σ(βz).
public final class Softplus: ElementwiseActivation {
    public let beta: Float, threshold: Float
    public init(_ shape: [Int], beta: Float = 1, threshold: Float = 20) {
        self.beta = beta
        self.threshold = threshold
        super.init(shape: shape)
    }
    override func referenceValue(_ z: Double) -> Double { Double(beta) * z > Double(threshold) ? z : log1p(exp(Double(beta) * z)) / Double(beta) }
    override func forwardKernel(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        for i in 0..<n { let bz = beta * x[i]; y[i] = bz > threshold ? x[i] : log1pf(expf(bz)) / beta }
    }
    override func backwardKernel(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>,
                                 _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, _ n: Int) {
        for i in 0..<n { let bz = beta * x[i]; dx[i] = bz > threshold ? dy[i] : dy[i] * sigmoid(bz) }
    }
}

/// Bounded output for regression: lo + (hi − lo)·σ(z).
public final class ScaledSigmoid: ElementwiseActivation {
    public let lo: Float, hi: Float
    public init(_ shape: [Int], lo: Float, hi: Float) { self.lo = lo; self.hi = hi; super.init(shape: shape) }
    override func referenceValue(_ z: Double) -> Double { Double(lo) + Double(hi - lo) / (1 + exp(-z)) }
    override func forwardKernel(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        for i in 0..<n { y[i] = lo + (hi - lo) * sigmoid(x[i]) }
    }
    override func backwardKernel(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>,
                                 _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, _ n: Int) {
        for i in 0..<n { let s = sigmoid(x[i]); dx[i] = dy[i] * (hi - lo) * s * (1 - s) }
    }
}

/// PReLU: max(0, z) + α·min(0, z) with α learned — one α, or one per channel (`torch.nn.PReLU`,
/// parameter "weight", initialised to 0.25).
public final class PReLU: Layer {
    public let outputShape: [Int]
    public let weight: Parameter
    public var parameters: [Parameter] { [weight] }
    private var input: Tensor?
    private let output = Tensor.workspace()
    private let inputGrad = Tensor.workspace()

    public init(_ shape: [Int], perChannel: Bool) {
        outputShape = shape
        weight = Parameter("weight", shape: [perChannel ? shape[0] : 1], initializer: .constant(0.25))
    }

    private var spatial: Int { outputShape.dropFirst().reduce(1, *) }
    @inline(__always) private func channel(_ i: Int) -> Int { weight.count == 1 ? 0 : (i / spatial) % outputShape[0] }

    public var flops: Int { outputShape.reduce(1, *) }

    public func reference(_ x: [Double], batch: Int, training: Bool, _ r: Reference) -> [Double] {
        let a = r.value(weight)
        return x.enumerated().map { i, z in z > 0 ? z : a[channel(i)] * z }
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        input = x
        output.resize(x.shape)
        let a = weight.value.data
        for i in 0..<x.count { let z = x.data[i]; output.data[i] = z > 0 ? z : a[channel(i)] * z }
        return output
    }

    public func backward(_ dy: Tensor, needInputGrad: Bool) -> Tensor? {
        guard let x = input else { preconditionFailure("PReLU.backward before forward") }
        let a = weight.value.data, ga = weight.grad.data
        if needInputGrad { inputGrad.resize(dy.shape) }
        for i in 0..<dy.count {
            let z = x.data[i], c = channel(i)
            if z <= 0 { ga[c] += dy.data[i] * z }
            if needInputGrad { inputGrad.data[i] = z > 0 ? dy.data[i] : a[c] * dy.data[i] }
        }
        return needInputGrad ? inputGrad : nil
    }
}

/// Softmax over the last axis (`torch.nn.Softmax(dim=-1)`): y = e^{z}/Σe^{z};
/// dx = y ⊙ (dy − Σ dy⊙y). With `log: true`, LogSoftmax: y = z − logΣe^{z}; dx = dy − softmax ⊙ Σ dy.
public final class Softmax: Layer {
    public let outputShape: [Int]
    public let log: Bool
    private let output = Tensor.workspace()
    private let inputGrad = Tensor.workspace()

    public init(_ shape: [Int], log: Bool) { outputShape = shape; self.log = log }

    private var c: Int { outputShape.last ?? 1 }
    /// exp, sum and divide: about 3 per element.
    public var flops: Int { 3 * outputShape.reduce(1, *) }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        output.resize(x.shape)
        let c = self.c, xd = x.data, yd = output.data, log = self.log
        Parallel.forEach(x.count / c, grain: max(1, 16384 / c)) { rows in
            for r in rows {
                let z = xd + r * c, y = yd + r * c
                var m = z[0]
                for j in 1..<c where z[j] > m { m = z[j] }
                var s: Float = 0
                for j in 0..<c { s += expf(z[j] - m) }
                let lse = m + logf(s)
                for j in 0..<c { y[j] = log ? z[j] - lse : expf(z[j] - lse) }
            }
        }
        return output
    }

    public func backward(_ dy: Tensor, needInputGrad: Bool) -> Tensor? {
        guard needInputGrad else { return nil }
        inputGrad.resize(dy.shape)
        let c = self.c, gd = dy.data, yd = output.data, dxd = inputGrad.data, log = self.log
        Parallel.forEach(dy.count / c, grain: max(1, 16384 / c)) { rows in
            for r in rows {
                let g = gd + r * c, y = yd + r * c, dx = dxd + r * c
                if log {
                    var s: Float = 0
                    for j in 0..<c { s += g[j] }
                    for j in 0..<c { dx[j] = g[j] - expf(y[j]) * s }
                } else {
                    var s: Float = 0
                    for j in 0..<c { s += g[j] * y[j] }
                    for j in 0..<c { dx[j] = y[j] * (g[j] - s) }
                }
            }
        }
        return inputGrad
    }

    public func reference(_ x: [Double], batch: Int, training: Bool, _ r: Reference) -> [Double] {
        let c = self.c
        var y = x
        for i in 0..<(x.count / c) {
            let row = x[(i * c)..<((i + 1) * c)]
            let m = row.max()!
            let lse = m + Glibc.log(row.reduce(0) { $0 + exp($1 - m) })
            for j in 0..<c { y[i * c + j] = log ? x[i * c + j] - lse : exp(x[i * c + j] - lse) }
        }
        return y
    }
}

/// ReLU6: min(max(0, z), 6) (MobileNetV2); gradient 1 on (0, 6).
public final class ReLU6: ElementwiseActivation {
    public init(_ shape: [Int]) { super.init(shape: shape) }
    override func referenceValue(_ z: Double) -> Double { min(max(z, 0), 6) }
    override func forwardKernel(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        for i in 0..<n { y[i] = min(max(x[i], 0), 6) }
    }
    override func backwardKernel(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>,
                                 _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, _ n: Int) {
        for i in 0..<n { dx[i] = x[i] > 0 && x[i] < 6 ? dy[i] : 0 }
    }
}

/// Every activation of the seed tables by its job-file name; `softmax`/`log_softmax` act on the last axis.
let activationKinds = [
    LayerKind("relu") { _, c in ReLU(c.inputShape) },
    LayerKind("relu6") { _, c in ReLU6(c.inputShape) },
    LayerKind("sigmoid") { _, c in Sigmoid(c.inputShape) },
    LayerKind("tanh") { _, c in Tanh(c.inputShape) },
    LayerKind("leaky_relu") { r, c in LeakyReLU(c.inputShape, alpha: Float(try r.double("alpha", default: 0.01))) },
    LayerKind("prelu") { r, c in PReLU(c.inputShape, perChannel: try r.bool("per_channel", default: false)) },
    LayerKind("elu") { r, c in ELU(c.inputShape, alpha: Float(try r.double("alpha", default: 1))) },
    LayerKind("gelu") { r, c in
        GELU(c.inputShape, approximateTanh: try r.string("approximate", default: "none", oneOf: ["none", "tanh"]) == "tanh")
    },
    LayerKind("silu") { _, c in Swish(c.inputShape, beta: 1) },
    LayerKind("swish") { r, c in Swish(c.inputShape, beta: Float(try r.double("beta", default: 1))) },
    LayerKind("softplus") { r, c in
        Softplus(c.inputShape, beta: Float(try r.double("beta", default: 1, min: 1e-6)),
                 threshold: Float(try r.double("threshold", default: 20)))
    },
    LayerKind("scaled_sigmoid") { r, c in
        let lo = try r.requiredDouble("low"), hi = try r.requiredDouble("high")
        guard hi > lo else { throw r.error("high", "must be greater than low (\(lo))") }
        return ScaledSigmoid(c.inputShape, lo: Float(lo), hi: Float(hi))
    },
    LayerKind("softmax") { _, c in Softmax(c.inputShape, log: false) },
    LayerKind("log_softmax") { _, c in Softmax(c.inputShape, log: true) },
]

/// Element-wise, and softmax over the last axis: each position alone while generating.
extension ElementwiseActivation: PositionWise {}
extension Softmax: PositionWise {}

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

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        input = x
        output.resize(x.shape)
        forwardKernel(x.data, output.data, x.count)
        return output
    }

    public func backward(_ dy: Tensor, needInputGrad: Bool) -> Tensor? {
        guard needInputGrad else { return nil }
        guard let x = input else { preconditionFailure("activation backward before forward") }
        inputGrad.resize(dy.shape)
        backwardKernel(x.data, output.data, dy.data, inputGrad.data, dy.count)
        return inputGrad
    }
}

/// ReLU: max(0, z); gradient gated by the forward mask (z > 0).
public final class ReLU: ElementwiseActivation {
    public init(_ shape: [Int]) { super.init(shape: shape) }
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

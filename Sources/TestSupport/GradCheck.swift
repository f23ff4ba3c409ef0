import NN
import TensorCore

/// Finite-difference gradient checking for layers and losses.
///
/// For a layer f, the scalar L = Σ rᵢ · f(x)ᵢ with fixed random r has dL/dy = r, so one
/// backward call with dy = r gives analytic gradients for the input and every parameter.
/// Each is compared with central differences (L(θ+ε) − L(θ−ε)) / 2ε, L summed in Double.
public enum GradCheck {
    public struct Result: CustomStringConvertible {
        /// Largest |analytic − numeric| divided by the largest |numeric| of that tensor.
        public var worst: Double = 0
        public var report: [String] = []
        public var description: String { report.joined(separator: "\n") }
    }

    /// Random input avoiding |x| < margin (so kinks such as ReLU's sit outside ±ε).
    public static func input(_ shape: [Int], seed: UInt64, margin: Float = 0.05) -> Tensor {
        var rng = RNG(seed: seed)
        let t = Tensor(shape: shape)
        for i in 0..<t.count {
            var v = rng.uniform(-1, 1)
            while abs(v) < margin { v = rng.uniform(-1, 1) }
            t[i] = v
        }
        return t
    }

    static func weightedSum(_ y: Tensor, _ r: Tensor) -> Double {
        var s: Double = 0
        for i in 0..<y.count { s += Double(y[i]) * Double(r[i]) }
        return s
    }

    /// Checks input and parameter gradients of `layer` at input `x`.
    public static func layer(_ layer: Layer, input x: Tensor, training: Bool = true,
                             eps: Float = 1e-2, seed: UInt64 = 7) -> Result {
        var res = Result()
        let y0 = layer.forward(x, training: training)
        let r = input(y0.shape, seed: seed, margin: 0)
        let params = layer.namedParameters()
        for (_, p) in params { p.grad.zero() }
        // Integer ids (an embedding's input) have no gradient: only parameters are checked.
        let ids = layer is IndexInputLayer
        let dx = ids ? nil : layer.backward(r, needInputGrad: true)!.clone()
        if ids { _ = layer.backward(r, needInputGrad: false) }
        let loss = { () -> Double in weightedSum(layer.forward(x, training: training), r) }

        func compare(_ name: String, _ value: Tensor, _ analytic: Tensor) {
            var maxDiff = 0.0, maxNum = 0.0
            for i in 0..<value.count {
                let saved = value[i]
                value[i] = saved + eps
                let lp = loss()
                value[i] = saved - eps
                let lm = loss()
                value[i] = saved
                let num = (lp - lm) / (2 * Double(eps))
                maxDiff = max(maxDiff, abs(num - Double(analytic[i])))
                maxNum = max(maxNum, abs(num))
            }
            let rel = maxDiff / max(maxNum, 1e-3)
            res.worst = max(res.worst, rel)
            res.report.append("\(name): max |Δ| \(maxDiff), relative \(rel)")
        }
        if let dx { compare("input", x, dx) }
        for (name, p) in params { compare(name, p.value, p.grad.clone()) }
        return res
    }

    /// Checks dL/d(prediction) of a loss.
    public static func loss(_ loss: Loss, prediction: Tensor, target: Target, eps: Float = 1e-2) -> Result {
        var res = Result()
        let g = Tensor.workspace()
        _ = loss.compute(prediction, target, grad: g)
        var maxDiff = 0.0, maxNum = 0.0
        for i in 0..<prediction.count {
            let saved = prediction[i]
            prediction[i] = saved + eps
            let lp = Double(loss.compute(prediction, target, grad: nil))
            prediction[i] = saved - eps
            let lm = Double(loss.compute(prediction, target, grad: nil))
            prediction[i] = saved
            let num = (lp - lm) / (2 * Double(eps))
            maxDiff = max(maxDiff, abs(num - Double(g[i])))
            maxNum = max(maxNum, abs(num))
        }
        res.worst = maxDiff / max(maxNum, 1e-3)
        res.report.append("prediction: max |Δ| \(maxDiff), relative \(res.worst)")
        return res
    }
}

extension GradCheck {
    /// Checks a layer's Float kernels against its double-precision reference: the forward
    /// output, and the analytic input and parameter gradients against central differences
    /// of the reference in Double (step 1e-6). `worst` is the largest relative error.
    public static func inDouble(_ layer: Layer, input x: Tensor, training: Bool = true, seed: UInt64 = 7) -> Result {
        var res = Result()
        let ref = ReferenceModel(layer)
        let b = x.rows
        let xd = x.array.map(Double.init)
        let y = layer.forward(x, training: training)
        let yRef = ref.forward(xd, batch: b, training: training)
        func track(_ name: String, _ a: [Double], _ n: [Double]) {
            var maxDiff = 0.0, maxRef = 0.0
            for i in 0..<n.count { maxDiff = max(maxDiff, abs(a[i] - n[i])); maxRef = max(maxRef, abs(n[i])) }
            let rel = maxDiff / max(maxRef, 1e-3)
            res.worst = max(res.worst, rel)
            res.report.append("\(name): max |Δ| \(maxDiff), relative \(rel)")
        }
        track("forward", y.array.map(Double.init), yRef)
        let r = input(y.shape, seed: seed, margin: 0)
        let rd = r.array.map(Double.init)
        let params = layer.namedParameters()
        for (_, p) in params { p.grad.zero() }
        let ids = layer is IndexInputLayer
        let dx = ids ? [] : layer.backward(r, needInputGrad: true)!.array.map(Double.init)
        if ids { _ = layer.backward(r, needInputGrad: false) }
        let grads = params.map { $0.parameter.grad.array.map(Double.init) }
        func loss(_ xs: [Double]) -> Double {
            zip(ref.forward(xs, batch: b, training: training), rd).reduce(0) { $0 + $1.0 * $1.1 }
        }
        let h = 1e-6
        if !ids {
            var numeric = [Double](repeating: 0, count: xd.count)
            var xs = xd
            for i in 0..<xd.count {
                xs[i] = xd[i] + h; let lp = loss(xs)
                xs[i] = xd[i] - h; let lm = loss(xs)
                xs[i] = xd[i]
                numeric[i] = (lp - lm) / (2 * h)
            }
            track("input", dx, numeric)
        }
        for (k, (name, p)) in params.enumerated() {
            let key = ObjectIdentifier(p)
            let base = ref.params[key]!
            var n = [Double](repeating: 0, count: base.count)
            for i in 0..<base.count {
                ref.params[key]![i] = base[i] + h; let lp = loss(xd)
                ref.params[key]![i] = base[i] - h; let lm = loss(xd)
                ref.params[key]![i] = base[i]
                n[i] = (lp - lm) / (2 * h)
            }
            track(name, grads[k], n)
        }
        return res
    }

    /// A loss's Float value and gradient against its double-precision reference.
    public static func lossInDouble(_ loss: Loss, prediction z: Tensor, target: Target) -> Result {
        var res = Result()
        let g = Tensor.workspace()
        let v = Double(loss.compute(z, target, grad: g))
        let zd = z.array.map(Double.init)
        let ref = loss.reference(zd, shape: z.shape, target)
        res.worst = abs(v - ref) / max(abs(ref), 1e-3)
        res.report.append("value: \(v) vs \(ref)")
        let h = 1e-6
        var maxDiff = 0.0, maxRef = 0.0
        var zs = zd
        for i in 0..<zd.count {
            zs[i] = zd[i] + h; let lp = loss.reference(zs, shape: z.shape, target)
            zs[i] = zd[i] - h; let lm = loss.reference(zs, shape: z.shape, target)
            zs[i] = zd[i]
            let n = (lp - lm) / (2 * h)
            maxDiff = max(maxDiff, abs(Double(g[i]) - n))
            maxRef = max(maxRef, abs(n))
        }
        let rel = maxDiff / max(maxRef, 1e-3)
        res.worst = max(res.worst, rel)
        res.report.append("gradient: max |Δ| \(maxDiff), relative \(rel)")
        return res
    }
}

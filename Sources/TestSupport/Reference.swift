import Glibc
import NN
import TensorCore

/// Naive double-precision forward passes of every layer and loss, written from the formulas
/// rather than from the fast kernels. Gradient checks differentiate these by central
/// differences in Double (errors ~1e-9) and compare the Float kernels' analytic gradients with
/// them; forward outputs are compared too.
public final class ReferenceModel {
    let root: Layer
    /// Double copies of the parameters, keyed by the Parameter object (perturbed by checks).
    public var params: [ObjectIdentifier: [Double]] = [:]

    public init(_ layer: Layer) {
        root = layer
        for (_, p) in layer.namedParameters() { params[ObjectIdentifier(p)] = p.value.array.map(Double.init) }
    }

    /// y for x of shape [B] + the layer's input shape.
    public func forward(_ x: [Double], batch: Int, training: Bool) -> [Double] { run(root, x, batch, training) }

    func p(_ q: Parameter) -> [Double] { params[ObjectIdentifier(q)]! }

    func run(_ l: Layer, _ x: [Double], _ b: Int, _ training: Bool) -> [Double] {
        let out = l.outputShape.reduce(1, *)
        switch l {
        case let s as Sequential:
            return s.layers.reduce(x) { run($1, $0, b, training) }
        case let r as Residual:
            let a = run(r.body, x, b, training), c = r.shortcut.map { run($0, x, b, training) } ?? x
            return zip(a, c).map(+)
        case let c as Concat:
            let parts = c.branches.map { run($0, x, b, training) }
            var y: [Double] = []
            for i in 0..<b {
                for (k, br) in c.branches.enumerated() {
                    let n = br.outputShape.reduce(1, *)
                    y += parts[k][(i * n)..<((i + 1) * n)]
                }
            }
            return y
        case let lin as Linear:
            let w = p(lin.weight), bias = lin.bias.map(p)
            var y = [Double](repeating: 0, count: b * lin.outFeatures)
            for i in 0..<b { for o in 0..<lin.outFeatures {
                var s = bias?[o] ?? 0
                for k in 0..<lin.inFeatures { s += w[o * lin.inFeatures + k] * x[i * lin.inFeatures + k] }
                y[i * lin.outFeatures + o] = s
            } }
            return y
        case let cv as Conv2D:
            let (c, h, w) = (cv.inputShape[0], cv.inputShape[1], cv.inputShape[2])
            let (o, ho, wo) = (cv.outputShape[0], cv.outputShape[1], cv.outputShape[2])
            let cg = c / cv.groups, og = o / cv.groups
            let wt = p(cv.weight), bias = cv.bias.map(p)
            var y = [Double](repeating: 0, count: b * out)
            for i in 0..<b { for oc in 0..<o { for oy in 0..<ho { for ox in 0..<wo {
                var s = bias?[oc] ?? 0
                let g = oc / og
                for ic in 0..<cg { for ky in 0..<cv.kernel.h { for kx in 0..<cv.kernel.w {
                    let iy = oy * cv.stride.h - cv.padding.h + ky * cv.dilation.h
                    let ix = ox * cv.stride.w - cv.padding.w + kx * cv.dilation.w
                    guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
                    s += wt[((oc * cg + ic) * cv.kernel.h + ky) * cv.kernel.w + kx] * x[((i * c + g * cg + ic) * h + iy) * w + ix]
                } } }
                y[((i * o + oc) * ho + oy) * wo + ox] = s
            } } } }
            return y
        case let mp as MaxPool2D:
            return pool(x, b, mp.inputShape, mp.outputShape, mp.kernel, mp.stride, mp.padding, max: true)
        case let ap as AvgPool2D:
            return pool(x, b, ap.inputShape, ap.outputShape, ap.kernel, ap.stride, ap.padding, max: false)
        case let g as GlobalAvgPool:
            let hw = g.inputShape[1] * g.inputShape[2]
            return (0..<(b * g.inputShape[0])).map { pl in x[(pl * hw)..<((pl + 1) * hw)].reduce(0, +) / Double(hw) }
        case is Flatten:
            return x
        case let bn as BatchNorm:
            let c = bn.channels, hw = out / c, n = Double(b * hw)
            let g = p(bn.weight), be = p(bn.bias)
            var y = x
            for ch in 0..<c {
                var idx: [Int] = []
                for i in 0..<b { for k in 0..<hw { idx.append((i * c + ch) * hw + k) } }
                let mean: Double, variance: Double
                if training {
                    mean = idx.reduce(0) { $0 + x[$1] } / n
                    variance = idx.reduce(0) { $0 + (x[$1] - mean) * (x[$1] - mean) } / n
                } else {
                    mean = Double(bn.runningMean.value[ch])
                    variance = Double(bn.runningVar.value[ch])
                }
                for j in idx { y[j] = g[ch] * (x[j] - mean) / (variance + Double(bn.eps)).squareRoot() + be[ch] }
            }
            return y
        case let gn as GroupwiseNorm:
            let size = out, m = size / gn.groups
            let perChannel = gn.outputShape.count > 1 ? gn.outputShape.dropFirst().reduce(1, *) : 1
            let wt = gn.weight.map(p), bs = gn.bias.map(p)
            var y = x
            for i in 0..<b { for g in 0..<gn.groups {
                let range = (i * size + g * m)..<(i * size + g * m + m)
                let mean = x[range].reduce(0, +) / Double(m)
                let variance = x[range].reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(m)
                for j in range {
                    let e = j - i * size, a = gn.affinePerElement ? e : e / perChannel
                    let v = (x[j] - mean) / (variance + Double(gn.eps)).squareRoot()
                    y[j] = wt.map { $0[a] * v + bs![a] } ?? v
                }
            } }
            return y
        case let pr as PReLU:
            let a = p(pr.weight), spatial = pr.outputShape.dropFirst().reduce(1, *)
            return x.enumerated().map { i, z in z > 0 ? z : a[a.count == 1 ? 0 : (i / spatial) % pr.outputShape[0]] * z }
        case let sm as Softmax:
            let c = out
            var y = x
            for i in 0..<b {
                let row = x[(i * c)..<((i + 1) * c)]
                let m = row.max()!
                let lse = m + log(row.reduce(0) { $0 + exp($1 - m) })
                for j in 0..<c { y[i * c + j] = sm.log ? x[i * c + j] - lse : exp(x[i * c + j] - lse) }
            }
            return y
        default:
            return x.map { Self.activation(l, $0) }
        }
    }

    static func sig(_ z: Double) -> Double { 1 / (1 + exp(-z)) }

    static func activation(_ l: Layer, _ z: Double) -> Double {
        switch l {
        case is ReLU: return max(z, 0)
        case is ReLU6: return min(max(z, 0), 6)
        case is Sigmoid: return sig(z)
        case is Tanh: return tanh(z)
        case let a as LeakyReLU: return z > 0 ? z : Double(a.alpha) * z
        case let a as ELU: return z >= 0 ? z : Double(a.alpha) * (exp(z) - 1)
        case let a as GELU:
            return a.approximateTanh ? 0.5 * z * (1 + tanh((2 / Double.pi).squareRoot() * (z + 0.044715 * z * z * z)))
                                     : 0.5 * z * (1 + erf(z / 2.0.squareRoot()))
        case let a as Swish: return z * sig(Double(a.beta) * z)
        case let a as Softplus: let bz = Double(a.beta) * z; return bz > Double(a.threshold) ? z : log1p(exp(bz)) / Double(a.beta)
        case let a as ScaledSigmoid: return Double(a.lo) + Double(a.hi - a.lo) * sig(z)
        default: preconditionFailure("no reference for \(type(of: l))")
        }
    }

    func pool(_ x: [Double], _ b: Int, _ inShape: [Int], _ outShape: [Int], _ k: Int, _ s: Int, _ pad: Int, max isMax: Bool) -> [Double] {
        let (c, h, w) = (inShape[0], inShape[1], inShape[2]), (ho, wo) = (outShape[1], outShape[2])
        var y = [Double](repeating: 0, count: b * c * ho * wo)
        for pl in 0..<(b * c) { for oy in 0..<ho { for ox in 0..<wo {
            var v = isMax ? -Double.infinity : 0
            for ky in 0..<k { for kx in 0..<k {
                let iy = oy * s - pad + ky, ix = ox * s - pad + kx
                guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
                let e = x[(pl * h + iy) * w + ix]
                v = isMax ? Swift.max(v, e) : v + e
            } }
            y[(pl * ho + oy) * wo + ox] = isMax ? v : v / Double(k * k)
        } } }
        return y
    }
}

/// Double-precision references of the losses: mean loss for predictions `z` [B, C].
public enum ReferenceLoss {
    public static func value(_ loss: Loss, _ z: [Double], rows: Int, target: Target) -> Double {
        let c = z.count / rows
        func y(_ i: Int, _ j: Int) -> Double {
            switch target {
            case .classes(let l): return Int(l[i]) == j ? 1 : 0
            case .values(let t): return Double(t[i * c + j])
            }
        }
        var total = 0.0
        switch loss {
        case let ce as SoftmaxCrossEntropy:
            let eps = Double(ce.labelSmoothing)
            for i in 0..<rows {
                let row = z[(i * c)..<((i + 1) * c)], m = row.max()!
                let lse = m + log(row.reduce(0) { $0 + exp($1 - m) })
                for j in 0..<c {
                    let t: Double
                    if case .classes = target { t = (1 - eps) * y(i, j) + eps / Double(c) } else { t = y(i, j) }
                    total += t * (lse - z[i * c + j])
                }
            }
            return total / Double(rows)
        case is MeanSquaredError:
            for i in 0..<rows { for j in 0..<c { total += (z[i * c + j] - y(i, j)) * (z[i * c + j] - y(i, j)) } }
            return total / Double(z.count)
        case is SigmoidBinaryCrossEntropy:
            for i in 0..<rows { for j in 0..<c {
                let v = z[i * c + j]
                total += max(v, 0) - v * y(i, j) + log1p(exp(-abs(v)))
            } }
            return total / Double(z.count)
        case let p as PoissonNLL:
            for i in 0..<rows { for j in 0..<c {
                let v = z[i * c + j]
                total += p.logInput ? exp(v) - y(i, j) * v : v - y(i, j) * log(v + 1e-8)
            } }
            return total / Double(z.count)
        case let h as HingeLoss:
            for i in 0..<rows {
                guard case .classes(let l) = target else { break }
                let t = Int(l[i])
                for j in 0..<c where j != t { total += max(0, Double(h.margin) - z[i * c + t] + z[i * c + j]) }
            }
            return total / Double(rows * c)
        case is PerceptronLoss:
            for i in 0..<rows {
                guard case .classes(let l) = target else { break }
                let row = z[(i * c)..<((i + 1) * c)]
                total += max(0, row.max()! - z[i * c + Int(l[i])])
            }
            return total / Double(rows)
        default:
            preconditionFailure("no reference for \(type(of: loss))")
        }
    }
}

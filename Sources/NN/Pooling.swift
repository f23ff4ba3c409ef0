import TensorCore

/// Output size of a pooling window along one axis (as PyTorch, floor mode).
func pooledSize(_ n: Int, _ k: Int, _ s: Int, _ p: Int) -> Int { (n + 2 * p - k) / s + 1 }

public struct PoolShapeError: Error, CustomStringConvertible { public let description: String }

func checkPool(_ name: String, _ shape: [Int], _ k: Int, _ s: Int, _ p: Int) throws -> [Int] {
    guard shape.count == 3 else {
        throw PoolShapeError(description: "\(name) needs a [channels, height, width] input, got \(shape)")
    }
    guard k >= 1, s >= 1, p >= 0, 2 * p <= k else {
        throw PoolShapeError(description: "\(name): kernel \(k), stride \(s), padding \(p) (padding must be at most half the kernel)")
    }
    guard shape[1] + 2 * p >= k, shape[2] + 2 * p >= k else {
        throw PoolShapeError(description: "\(name): kernel \(k) is larger than the input \(shape[1])×\(shape[2])")
    }
    return [shape[0], pooledSize(shape[1], k, s, p), pooledSize(shape[2], k, s, p)]
}

/// Max pooling (NCHW). Forward remembers which input won each window; backward routes the
/// gradient to it (the "switch" of the backprop table).
///
/// x[B, C, H, W] → y[B, C, Ho, Wo], argmax[B, C, Ho, Wo] (flat index into the input plane)
public final class MaxPool2D: Layer {
    public let kernel, stride, padding: Int
    public let inputShape: [Int]
    public let outputShape: [Int]
    private let output = Tensor.workspace()
    private let inputGrad = Tensor.workspace()
    private var argmax: [Int32] = []

    public init(inputShape: [Int], kernel: Int, stride: Int? = nil, padding: Int = 0) throws {
        self.kernel = kernel
        self.stride = stride ?? kernel
        self.padding = padding
        self.inputShape = inputShape
        outputShape = try checkPool("maxpool", inputShape, kernel, stride ?? kernel, padding)
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let b = batchSize(x)
        let (c, h, w) = (inputShape[0], inputShape[1], inputShape[2])
        let (ho, wo) = (outputShape[1], outputShape[2])
        output.resize([b] + outputShape)
        if argmax.count < output.count { argmax = [Int32](repeating: 0, count: output.count) }
        if kernel == 2 && stride == 2 && padding == 0 {
            forward2x2(x.data, b * c, h, w, ho, wo)
            return output
        }
        argmax.withUnsafeMutableBufferPointer { am in
            for plane in 0..<(b * c) {
                let src = x.data + plane * h * w
                let dst = output.data + plane * ho * wo
                let idx = am.baseAddress! + plane * ho * wo
                for oy in 0..<ho {
                    let y0 = oy * stride - padding
                    for ox in 0..<wo {
                        let x0 = ox * stride - padding
                        var best = -Float.infinity, at: Int32 = -1
                        for ky in max(0, -y0)..<min(kernel, h - y0) {
                            let row = src + (y0 + ky) * w
                            for kx in max(0, -x0)..<min(kernel, w - x0) where row[x0 + kx] > best || at < 0 {
                                best = row[x0 + kx]
                                at = Int32((y0 + ky) * w + x0 + kx)
                            }
                        }
                        dst[oy * wo + ox] = best
                        idx[oy * wo + ox] = at
                    }
                }
            }
        }
        return output
    }

    /// The common 2×2, stride 2 case without window bookkeeping.
    private func forward2x2(_ x: UnsafePointer<Float>, _ planes: Int, _ h: Int, _ w: Int, _ ho: Int, _ wo: Int) {
        argmax.withUnsafeMutableBufferPointer { am in
            let idx = am.baseAddress!
            let y = output.data
            Parallel.forEach(planes, grain: max(1, 32768 / max(ho * wo, 1))) { range in
            for p in range {
                let src = x + p * h * w
                let o = p * ho * wo
                for oy in 0..<ho {
                    let r0 = src + 2 * oy * w, r1 = r0 + w
                    let base = Int32(2 * oy * w)
                    for ox in 0..<wo {
                        // Selects, not branches: which input wins is data-dependent and a branch
                        // would mispredict about half the time.
                        let i = 2 * ox
                        let a = r0[i], b = r0[i + 1], c = r1[i], d = r1[i + 1]
                        let top = b > a, m1 = top ? b : a, i1 = Int32(top ? i + 1 : i)
                        let bottom = d > c, m2 = bottom ? d : c, i2 = Int32(bottom ? w + i + 1 : w + i)
                        let lower = m2 > m1
                        y[o + oy * wo + ox] = lower ? m2 : m1
                        idx[o + oy * wo + ox] = base + (lower ? i2 : i1)
                    }
                }
            }
            }
        }
    }

    public func backward(_ dy: Tensor, needInputGrad: Bool) -> Tensor? {
        guard needInputGrad else { return nil }
        let b = batchSize(dy)
        let (c, h, w) = (inputShape[0], inputShape[1], inputShape[2])
        let hwo = outputShape[1] * outputShape[2]
        inputGrad.resize([b] + inputShape)
        inputGrad.zero()
        argmax.withUnsafeBufferPointer { am in
            for plane in 0..<(b * c) {
                let g = dy.data + plane * hwo
                let dst = inputGrad.data + plane * h * w
                let idx = am.baseAddress! + plane * hwo
                for i in 0..<hwo { dst[Int(idx[i])] += g[i] }
            }
        }
        return inputGrad
    }
}

/// Average pooling (NCHW), zero padding counted in the average (PyTorch's default).
public final class AvgPool2D: Layer {
    public let kernel, stride, padding: Int
    public let inputShape: [Int]
    public let outputShape: [Int]
    private let output = Tensor.workspace()
    private let inputGrad = Tensor.workspace()

    public init(inputShape: [Int], kernel: Int, stride: Int? = nil, padding: Int = 0) throws {
        self.kernel = kernel
        self.stride = stride ?? kernel
        self.padding = padding
        self.inputShape = inputShape
        outputShape = try checkPool("avgpool", inputShape, kernel, stride ?? kernel, padding)
    }

    /// y[b, c, oy, ox] = mean of the window (padding counts as zeros).
    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let b = batchSize(x)
        let (c, h, w) = (inputShape[0], inputShape[1], inputShape[2])
        let (ho, wo) = (outputShape[1], outputShape[2])
        output.resize([b] + outputShape)
        let inv = 1 / Float(kernel * kernel)
        for plane in 0..<(b * c) {
            let src = x.data + plane * h * w
            let dst = output.data + plane * ho * wo
            for oy in 0..<ho {
                let y0 = oy * stride - padding
                for ox in 0..<wo {
                    let x0 = ox * stride - padding
                    var sum: Float = 0
                    for iy in max(0, y0)..<min(h, y0 + kernel) {
                        for ix in max(0, x0)..<min(w, x0 + kernel) { sum += src[iy * w + ix] }
                    }
                    dst[oy * wo + ox] = sum * inv
                }
            }
        }
        return output
    }

    public func backward(_ dy: Tensor, needInputGrad: Bool) -> Tensor? {
        guard needInputGrad else { return nil }
        let b = batchSize(dy)
        let (c, h, w) = (inputShape[0], inputShape[1], inputShape[2])
        let (ho, wo) = (outputShape[1], outputShape[2])
        inputGrad.resize([b] + inputShape)
        inputGrad.zero()
        let inv = 1 / Float(kernel * kernel)
        for plane in 0..<(b * c) {
            let g = dy.data + plane * ho * wo
            let dst = inputGrad.data + plane * h * w
            for oy in 0..<ho {
                let y0 = oy * stride - padding
                for ox in 0..<wo {
                    let x0 = ox * stride - padding
                    let v = g[oy * wo + ox] * inv
                    for iy in max(0, y0)..<min(h, y0 + kernel) {
                        for ix in max(0, x0)..<min(w, x0 + kernel) { dst[iy * w + ix] += v }
                    }
                }
            }
        }
        return inputGrad
    }
}

/// Global average pooling: [B, C, H, W] → [B, C] (the mean of each plane).
public final class GlobalAvgPool: Layer {
    public let inputShape: [Int]
    public let outputShape: [Int]
    private let output = Tensor.workspace()
    private let inputGrad = Tensor.workspace()

    public init(inputShape: [Int]) throws {
        guard inputShape.count == 3 else {
            throw PoolShapeError(description: "global_avgpool needs a [channels, height, width] input, got \(inputShape)")
        }
        self.inputShape = inputShape
        outputShape = [inputShape[0]]
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let b = batchSize(x), c = inputShape[0], hw = inputShape[1] * inputShape[2]
        output.resize([b, c])
        let inv = 1 / Float(hw)
        for p in 0..<(b * c) {
            let src = x.data + p * hw
            var s: Float = 0
            for i in 0..<hw { s += src[i] }
            output.data[p] = s * inv
        }
        return output
    }

    public func backward(_ dy: Tensor, needInputGrad: Bool) -> Tensor? {
        guard needInputGrad else { return nil }
        let b = batchSize(dy), c = inputShape[0], hw = inputShape[1] * inputShape[2]
        inputGrad.resize([b] + inputShape)
        let inv = 1 / Float(hw)
        for p in 0..<(b * c) { (inputGrad.data + p * hw).update(repeating: dy.data[p] * inv, count: hw) }
        return inputGrad
    }
}

/// A sequence `[T, E]` to one vector `[E]`: the mean over positions, or the first position's
/// (BERT's [CLS] token) — what a classification head on a sequence encoder reads.
///
///     mean:  y[b, e] = Σ_t x[b, t, e] / T        first: y[b, e] = x[b, 0, e]
public final class SequencePool: Layer {
    public enum Mode: String, CaseIterable, Sendable { case mean, first }
    public let mode: Mode
    public let inputShape: [Int]
    public let outputShape: [Int]
    private let output = Tensor.workspace()
    private let inputGrad = Tensor.workspace()

    public init(inputShape: [Int], mode: Mode) throws {
        guard inputShape.count == 2 else {
            throw PoolShapeError(description: "sequence_pool needs a [steps, width] input, got \(inputShape)")
        }
        self.inputShape = inputShape
        self.mode = mode
        outputShape = [inputShape[1]]
    }

    public var flops: Int { mode == .mean ? inputShape.reduce(1, *) : 0 }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let b = batchSize(x), t = inputShape[0], e = inputShape[1]
        output.resize([b, e])
        for i in 0..<b {
            let src = x.data + i * t * e, dst = output.data + i * e
            dst.update(from: src, count: e)
            guard mode == .mean else { continue }
            for p in 1..<max(t, 1) { for j in 0..<e { dst[j] += src[p * e + j] } }
            let inv = 1 / Float(t)
            for j in 0..<e { dst[j] *= inv }
        }
        return output
    }

    public func backward(_ dy: Tensor, needInputGrad: Bool) -> Tensor? {
        guard needInputGrad else { return nil }
        let b = batchSize(dy), t = inputShape[0], e = inputShape[1]
        inputGrad.resize([b] + inputShape)
        inputGrad.zero()
        let w: Float = mode == .mean ? 1 / Float(t) : 1
        for i in 0..<b {
            for p in 0..<(mode == .mean ? t : 1) {
                let dst = inputGrad.data + (i * t + p) * e, src = dy.data + i * e
                for j in 0..<e { dst[j] = src[j] * w }
            }
        }
        return inputGrad
    }

    public func reference(_ x: [Double], batch b: Int, training: Bool, _ r: Reference) -> [Double] {
        let t = inputShape[0], e = inputShape[1]
        return (0..<(b * e)).map { k in
            let i = k / e, j = k % e
            return mode == .first ? x[i * t * e + j] : (0..<t).reduce(0) { $0 + x[(i * t + $1) * e + j] } / Double(t)
        }
    }
}

// MARK: FLOPs, references, job-file names

extension MaxPool2D {
    /// One comparison per window element (seed table: the window size per output).
    public var flops: Int { kernel * kernel * outputShape.reduce(1, *) }
    public func reference(_ x: [Double], batch: Int, training: Bool, _ r: Reference) -> [Double] {
        poolReference(x, batch, inputShape, outputShape, kernel, stride, padding, max: true)
    }
}

extension AvgPool2D {
    public var flops: Int { kernel * kernel * outputShape.reduce(1, *) }
    public func reference(_ x: [Double], batch: Int, training: Bool, _ r: Reference) -> [Double] {
        poolReference(x, batch, inputShape, outputShape, kernel, stride, padding, max: false)
    }
}

extension GlobalAvgPool {
    /// One add per input element.
    public var flops: Int { inputShape.reduce(1, *) }
    public func reference(_ x: [Double], batch b: Int, training: Bool, _ r: Reference) -> [Double] {
        let hw = inputShape[1] * inputShape[2]
        return (0..<(b * inputShape[0])).map { pl in x[(pl * hw)..<((pl + 1) * hw)].reduce(0, +) / Double(hw) }
    }
}

/// Windows written out; average pooling divides by the full window (count_include_pad, as PyTorch).
func poolReference(_ x: [Double], _ b: Int, _ inShape: [Int], _ outShape: [Int], _ k: Int, _ s: Int, _ pad: Int,
                   max isMax: Bool) -> [Double] {
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

/// `maxpool` / `avgpool` `{kernel: 2, stride: kernel, padding: 0}`, `global_avgpool`.
let poolingKinds = [
    LayerKind("maxpool") { r, c in
        try MaxPool2D(inputShape: c.inputShape, kernel: try r.int("kernel", default: 2, min: 1),
                      stride: try r.optionalInt("stride", min: 1), padding: try r.int("padding", default: 0, min: 0))
    },
    LayerKind("avgpool") { r, c in
        try AvgPool2D(inputShape: c.inputShape, kernel: try r.int("kernel", default: 2, min: 1),
                      stride: try r.optionalInt("stride", min: 1), padding: try r.int("padding", default: 0, min: 0))
    },
    LayerKind("global_avgpool") { _, c in try GlobalAvgPool(inputShape: c.inputShape) },
    /// `{type: sequence_pool, mode: mean|first}` on `[T, E]`.
    LayerKind("sequence_pool") { r, c in try SequencePool(inputShape: c.inputShape, mode: try r.choice("mode", default: SequencePool.Mode.mean)) },
]

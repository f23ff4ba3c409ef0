import Glibc
import TensorCore

/// Image augmentation for NCHW batches, applied by the batch loader on its own thread. Every
/// draw comes from a generator derived from (seed, rank, epoch, step), so a run — resumed or
/// not — sees the same augmented batches, and ranks see different ones.
public struct Augmentation: Equatable, Sendable {
    /// Random crop: shift by up to this many pixels each way, filling with `fill` (as
    /// torchvision's RandomCrop(size, padding=p)).
    public var cropPadding = 0
    /// Horizontal flip with probability ½.
    public var flip = false
    /// Cutout: blank a square of this side at a random centre (0: off).
    public var cutout = 0
    /// MixUp / CutMix with λ ~ Beta(α, α) (0: off; if both are set, each batch picks one).
    public var mixupAlpha = 0.0
    public var cutmixAlpha = 0.0
    /// The value of a black pixel after normalisation.
    public var fill: Float = 0

    public init() {}

    public var isIdentity: Bool { cropPadding == 0 && !flip && cutout == 0 && !mixes }
    public var mixes: Bool { mixupAlpha > 0 || cutmixAlpha > 0 }

    /// Augments `x` [B, C, H, W] in place; with MixUp/CutMix also writes soft targets [B, classes].
    public func apply(_ x: Tensor, labels: IntTensor, classes: Int, soft: Tensor, rng: inout RNG) {
        let b = x.rows
        guard x.shape.count == 4, b > 0 else { return }
        let (c, h, w) = (x.shape[1], x.shape[2], x.shape[3])
        let plane = h * w, sample = c * plane
        var scratch = [Float](repeating: 0, count: plane)
        for i in 0..<b {
            let base = x.data + i * sample
            if cropPadding > 0 {
                let dy = rng.below(2 * cropPadding + 1) - cropPadding, dx = rng.below(2 * cropPadding + 1) - cropPadding
                for ch in 0..<c { shift(base + ch * plane, h, w, dy, dx, &scratch) }
            }
            if flip && rng.below(2) == 1 {
                for ch in 0..<c {
                    let p = base + ch * plane
                    for r in 0..<h {
                        var lo = r * w, hi = lo + w - 1
                        while lo < hi { (p[lo], p[hi]) = (p[hi], p[lo]); lo += 1; hi -= 1 }
                    }
                }
            }
            if cutout > 0 {
                let cy = rng.below(h), cx = rng.below(w)
                let y0 = max(0, cy - cutout / 2), y1 = min(h, cy - cutout / 2 + cutout)
                let x0 = max(0, cx - cutout / 2), x1 = min(w, cx - cutout / 2 + cutout)
                for ch in 0..<c { for r in y0..<y1 { for col in x0..<x1 { base[ch * plane + r * w + col] = fill } } }
            }
        }
        guard mixes else { return }
        // Soft targets start as one-hot labels, then mix with a shuffled partner.
        soft.resize([b, classes])
        soft.zero()
        for i in 0..<b { soft.data[i * classes + Int(labels[i])] = 1 }
        let useCutmix = cutmixAlpha > 0 && (mixupAlpha == 0 || rng.below(2) == 1)
        var lambda = Float(beta(useCutmix ? cutmixAlpha : mixupAlpha, &rng))
        let partner = rng.permutation(b)
        let original = Array(UnsafeBufferPointer(start: x.data, count: x.count))
        if useCutmix {
            // A box covering 1 − λ of the image; λ becomes the share actually kept.
            let cutH = Int(Float(h) * (1 - lambda).squareRoot()), cutW = Int(Float(w) * (1 - lambda).squareRoot())
            let cy = rng.below(h), cx = rng.below(w)
            let y0 = max(0, cy - cutH / 2), y1 = min(h, cy + cutH / 2), x0 = max(0, cx - cutW / 2), x1 = min(w, cx + cutW / 2)
            for i in 0..<b {
                let j = partner[i]
                for ch in 0..<c { for r in y0..<y1 { for col in x0..<x1 {
                    x.data[i * sample + ch * plane + r * w + col] = original[j * sample + ch * plane + r * w + col]
                } } }
            }
            lambda = 1 - Float((y1 - y0) * (x1 - x0)) / Float(plane)
        } else {
            for i in 0..<b {
                let j = partner[i]
                for k in 0..<sample { x.data[i * sample + k] = lambda * original[i * sample + k] + (1 - lambda) * original[j * sample + k] }
            }
        }
        let hard = Array(UnsafeBufferPointer(start: soft.data, count: soft.count))
        for i in 0..<b {
            for k in 0..<classes {
                soft.data[i * classes + k] = lambda * hard[i * classes + k] + (1 - lambda) * hard[partner[i] * classes + k]
            }
        }
    }

    /// Moves a plane by (dy, dx), filling uncovered pixels.
    private func shift(_ p: UnsafeMutablePointer<Float>, _ h: Int, _ w: Int, _ dy: Int, _ dx: Int, _ scratch: inout [Float]) {
        if dy == 0 && dx == 0 { return }
        for i in 0..<(h * w) { scratch[i] = p[i] }
        for r in 0..<h {
            let sr = r - dy
            for col in 0..<w {
                let sc = col - dx
                p[r * w + col] = sr >= 0 && sr < h && sc >= 0 && sc < w ? scratch[sr * w + sc] : fill
            }
        }
    }

    /// One draw of Beta(α, α), the mixing weight of MixUp and CutMix.
    public func sampleBeta(_ alpha: Double, _ rng: inout RNG) -> Double { beta(alpha, &rng) }

    /// Beta(α, α) from two Gamma(α) draws (Marsaglia–Tsang, boosted for α < 1).
    func beta(_ alpha: Double, _ rng: inout RNG) -> Double {
        let a = gamma(alpha, &rng), b = gamma(alpha, &rng)
        return a + b > 0 ? a / (a + b) : 0.5
    }

    func gamma(_ k: Double, _ rng: inout RNG) -> Double {
        if k < 1 { return gamma(k + 1, &rng) * pow(max(rng.uniformDouble(), 1e-300), 1 / k) }
        let d = k - 1.0 / 3, c = 1 / (9 * d).squareRoot()
        while true {
            var x: Double, v: Double
            repeat { x = Double(rng.normal()); v = 1 + c * x } while v <= 0
            v = v * v * v
            let u = rng.uniformDouble()
            if u < 1 - 0.0331 * x * x * x * x || log(max(u, 1e-300)) < 0.5 * x * x + d * (1 - v + log(v)) { return d * v }
        }
    }
}

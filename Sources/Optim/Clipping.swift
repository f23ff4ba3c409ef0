import TensorCore

/// Gradient clipping as `torch.nn.utils.clip_grad_norm_` / `clip_grad_value_`, over a whole arena.
public enum GradientClipping {
    /// Scales the gradients so their global L2 norm is at most `maxNorm`; returns the norm before.
    @discardableResult
    public static func clipNorm(_ grads: Arena, maxNorm: Float) -> Float {
        var sq = 0.0
        let g = grads.data
        for i in 0..<grads.count { sq += Double(g[i]) * Double(g[i]) }
        let norm = Float(sq.squareRoot())
        let scale = maxNorm / (norm + 1e-6)
        if scale < 1 { for i in 0..<grads.count { g[i] *= scale } }
        return norm
    }

    /// Clamps every gradient to [−value, value].
    public static func clipValue(_ grads: Arena, value: Float) {
        let g = grads.data
        for i in 0..<grads.count { g[i] = min(max(g[i], -value), value) }
    }
}

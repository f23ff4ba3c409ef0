import Config
import TensorCore

/// A new per-sample shape for the same contiguous data: `flatten`, `unflatten` and `reshape`
/// in job files. Forward and backward only relabel shapes (views, never copies).
///
/// x[B, inputShape…] → y[B, outputShape…]   (same element count per sample)
public final class Reshape: Layer {
    public let inputShape: [Int]
    public let outputShape: [Int]
    private var outView: Tensor?
    private var gradView: Tensor?

    public init(_ inputShape: [Int], to outputShape: [Int]) {
        precondition(inputShape.reduce(1, *) == outputShape.reduce(1, *), "reshape \(inputShape) → \(outputShape)")
        self.inputShape = inputShape
        self.outputShape = outputShape
    }

    /// `torch.nn.Flatten()`: every per-sample axis into one.
    public convenience init(flattening inputShape: [Int]) { self.init(inputShape, to: [inputShape.reduce(1, *)]) }

    public var flops: Int { 0 }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let shape = [batchSize(x)] + outputShape
        if let v = outView, v.data == x.data, v.shape == shape { return v }
        let v = Tensor(viewing: x.data, shape: shape)
        outView = v
        return v
    }

    public func backward(_ dy: Tensor, needInputGrad: Bool) -> Tensor? {
        guard needInputGrad else { return nil }
        let shape = [batchSize(dy)] + inputShape
        if let v = gradView, v.data == dy.data, v.shape == shape { return v }
        let v = Tensor(viewing: dy.data, shape: shape)
        gradView = v
        return v
    }

    public func reference(_ x: [Double], batch: Int, training: Bool, _ r: Reference) -> [Double] { x }

    /// Axis `a` of a batched tensor (as PyTorch: 0 is the batch, negatives count from the end)
    /// as an index into the per-sample shape of `rank` axes.
    static func sampleAxis(_ a: Int, rank: Int, _ r: ConfigReader, key: String) throws -> Int {
        let full = a < 0 ? a + rank + 1 : a
        guard full >= 1, full <= rank else {
            throw r.error(key, "axis \(a) is outside the per-sample axes 1…\(rank) (0 is the batch)")
        }
        return full - 1
    }

    /// `flatten {start_dim: 1, end_dim: -1}` (as torch.nn.Flatten), `unflatten {dim, sizes}`
    /// (as torch.nn.Unflatten), `reshape {shape: [...]}` (per sample; one entry may be -1).
    static let kinds = [
        LayerKind("flatten") { r, c in
            let rank = c.inputShape.count
            let s = try sampleAxis(try r.int("start_dim", default: 1), rank: rank, r, key: "start_dim")
            let e = try sampleAxis(try r.int("end_dim", default: -1), rank: rank, r, key: "end_dim")
            guard s <= e else { throw r.error("end_dim", "must not come before start_dim") }
            let shape = Array(c.inputShape[..<s]) + [c.inputShape[s...e].reduce(1, *)] + Array(c.inputShape[(e + 1)...])
            return Reshape(c.inputShape, to: shape)
        },
        LayerKind("unflatten") { r, c in
            let d = try sampleAxis(try r.requiredInt("dim"), rank: c.inputShape.count, r, key: "dim")
            guard let sizes = try r.intList("sizes", min: -1), !sizes.isEmpty else {
                throw r.error("sizes", "required: the sizes axis \(d + 1) unfolds into, e.g. [1, 28, 28]")
            }
            let resolved = try resolve(sizes, total: c.inputShape[d], r, key: "sizes")
            return Reshape(c.inputShape, to: Array(c.inputShape[..<d]) + resolved + Array(c.inputShape[(d + 1)...]))
        },
        LayerKind("reshape") { r, c in
            guard let shape = try r.intList("shape", min: -1), !shape.isEmpty else {
                throw r.error("shape", "required: the per-sample shape, e.g. [16, 49]")
            }
            return Reshape(c.inputShape, to: try resolve(shape, total: c.inputShape.reduce(1, *), r, key: "shape"))
        },
    ]

    /// Fills in one -1 and checks the element count.
    static func resolve(_ sizes: [Int], total: Int, _ r: ConfigReader, key: String) throws -> [Int] {
        let free = sizes.indices.filter { sizes[$0] == -1 }
        guard free.count <= 1, !sizes.contains(0) else { throw r.error(key, "sizes must be positive, with at most one -1") }
        let known = sizes.filter { $0 != -1 }.reduce(1, *)
        var out = sizes
        if let f = free.first {
            guard total % known == 0 else { throw r.error(key, "\(sizes) cannot hold \(total) elements") }
            out[f] = total / known
        }
        guard out.reduce(1, *) == total else {
            throw r.error(key, "\(sizes) holds \(out.reduce(1, *)) elements, the input has \(total)")
        }
        return out
    }
}

import TensorCore

/// What one field of a dataset holds per sample.
public struct FieldSpec: Equatable, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// Float features or regression values.
        case values
        /// One class index per sample (`[]` shape) or per position (`[T]` token targets).
        case classes
        /// Integer ids fed to an embedding (token ids, node ids).
        case ids
    }
    public var kind: Kind
    public var shape: [Int]
    /// classes/ids: how many distinct values (valid values are 0..<count).
    public var count: Int?

    public init(_ kind: Kind, shape: [Int], count: Int? = nil) {
        self.kind = kind
        self.shape = shape
        self.count = count
    }

    public var isInteger: Bool { kind != .values }

    public var description: String {
        let s = "[" + shape.map(String.init).joined(separator: ", ") + "]"
        switch kind {
        case .values: return "values \(s)"
        case .classes: return "class indices \(s) (\(count ?? 0) classes)"
        case .ids: return "ids \(s) (vocabulary \(count ?? 0))"
        }
    }
}

/// One batch in the buffers a loader reuses: float or integer inputs, float or integer targets
/// (or none), and MixUp/CutMix soft targets. `rows(_:)` gives micro-batch views.
public final class Batch {
    public let x = Tensor.workspace()
    public let ids = IntTensor()
    public let y = Tensor.workspace()
    public let labels = IntTensor()
    public let soft = Tensor.workspace()
    public internal(set) var count = 0
    public internal(set) var integerInput = false
    public internal(set) var target: FieldSpec.Kind?
    public var hasSoft = false

    public init() {}

    /// Sizes the buffers for `n` samples of `input` and `target`.
    public func prepare(_ n: Int, input: FieldSpec, target: FieldSpec?) {
        count = n
        integerInput = input.isInteger
        if integerInput { ids.resize([n] + input.shape) } else { x.resize([n] + input.shape) }
        self.target = target?.kind
        if let t = target {
            if t.isInteger { labels.resize([n] + t.shape) } else { y.resize([n] + t.shape) }
        }
        hasSoft = false
    }

    private var views: [Batch] = []

    /// Samples [lo, hi) of this batch as views (valid until the batch is refilled).
    public func rows(_ range: Range<Int>, view k: Int) -> Batch {
        while views.count <= k { views.append(Batch()) }
        let v = views[k]
        let n = range.count
        v.count = n
        v.integerInput = integerInput
        v.target = target
        v.hasSoft = hasSoft
        func view(_ t: Tensor, into u: Tensor) -> Tensor {
            let row = t.rows == 0 ? 0 : t.count / t.rows
            return Tensor(viewing: t.data + range.lowerBound * row, shape: [n] + Array(t.shape.dropFirst()))
        }
        func view(_ t: IntTensor, into u: IntTensor) {
            let row = t.rows == 0 ? 0 : t.count / t.rows
            u.rebind(t.data + range.lowerBound * row, shape: [n] + Array(t.shape.dropFirst()))
        }
        if integerInput { view(ids, into: v.ids) } else { v.viewX = view(x, into: v.x) }
        if let t = target {
            if t == .values { v.viewY = view(y, into: v.y) } else { view(labels, into: v.labels) }
        }
        if hasSoft { v.viewSoft = view(soft, into: v.soft) }
        return v
    }

    // Views of float buffers are separate tensors (a Tensor view cannot be re-pointed).
    var viewX: Tensor?, viewY: Tensor?, viewSoft: Tensor?
    /// The float inputs (this batch's buffer, or the view a micro-batch points at).
    public var inputs: Tensor { viewX ?? x }
    /// The float targets.
    public var values: Tensor { viewY ?? y }
    /// MixUp/CutMix targets [B, classes], when `hasSoft`.
    public var softTargets: Tensor { viewSoft ?? soft }
}

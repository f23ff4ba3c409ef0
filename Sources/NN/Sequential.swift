import Config
import TensorCore

/// Layers applied in order; children are named "0", "1", … as in `torch.nn.Sequential`.
public final class Sequential: Layer {
    public let layers: [Layer]
    public let inputShape: [Int]
    /// For blocks built from a named type: the primitive layers it stands for.
    public var expandedSpec: ConfigValue?
    public var outputShape: [Int] { layers.last?.outputShape ?? inputShape }
    public var children: [(name: String, layer: Layer)] {
        layers.enumerated().map { (String($0.offset), $0.element) }
    }

    public init(inputShape: [Int], _ layers: [Layer]) {
        self.inputShape = inputShape
        self.layers = layers
    }

    public var flops: Int { childFlops }

    public func forward(_ x: Tensor, training: Bool) -> Tensor { forward(x, from: 0, training: training) }

    /// Runs layers `start…` on `x` (the model feeds ids to an embedding itself, then the rest).
    public func forward(_ x: Tensor, from start: Int, training: Bool) -> Tensor {
        var h = x
        for l in layers[start...] { h = l.forward(h, training: training) }
        return h
    }

    public func reference(_ x: [Double], batch: Int, training: Bool, _ r: Reference) -> [Double] {
        layers.reduce(x) { r.run($1, $0, batch: batch, training: training) }
    }

    /// Backward through the layers in reverse. `onLayerDone(i)` runs after layer i has
    /// written its parameter gradients, so a caller can start reducing them early.
    public func backward(_ dy: Tensor, needInputGrad: Bool, onLayerDone: ((Int) -> Void)?) -> Tensor? {
        var g: Tensor? = dy
        let stop = needInputGrad ? 0 : frozenBelow
        for i in stride(from: layers.count - 1, through: 0, by: -1) {
            // Frozen layers at the bottom take no backward (their gradients stay zero).
            if i < stop { onLayerDone?(i); continue }
            // The input gradient of layer 0 is only needed when the caller asks for it; and no
            // layer needs one if nothing below it has parameters (saves the largest sgemm).
            let need = needInputGrad || max(firstTrainable, stop) < i
            g = layers[i].backward(g!, needInputGrad: need)
            onLayerDone?(i)
            if g == nil { break }
        }
        return g
    }

    public func backward(_ dy: Tensor, needInputGrad: Bool) -> Tensor? {
        backward(dy, needInputGrad: needInputGrad, onLayerDone: nil)
    }

    /// Layers below this index are frozen (transfer learning): backward stops above them.
    public var frozenBelow = 0

    /// Index of the first layer that has parameters (layers before it need no gradient).
    private lazy var firstTrainable: Int = {
        layers.firstIndex { !$0.namedParameters().isEmpty } ?? layers.count
    }()
}

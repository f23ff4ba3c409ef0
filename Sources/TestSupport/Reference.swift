import NN

/// Double-precision forward passes for the gradient checks. Each layer writes its own
/// reference (`Layer.reference`, beside its kernels, from the formula rather than the kernel);
/// this wraps one layer with the Double copies of its parameters the checks perturb.
public final class ReferenceModel {
    let root: Layer
    public let reference: Reference
    /// Double copies of the parameters, keyed by the Parameter object (perturbed by checks).
    public var params: [ObjectIdentifier: [Double]] {
        get { reference.params }
        set { reference.params = newValue }
    }

    public init(_ layer: Layer) {
        root = layer
        reference = Reference(layer)
    }

    /// y for x of shape [B] + the layer's input shape.
    public func forward(_ x: [Double], batch: Int, training: Bool) -> [Double] {
        reference.run(root, x, batch: batch, training: training)
    }
}

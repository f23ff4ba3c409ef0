import Config
import TensorCore

/// y = body(x) + shortcut(x), the shortcut being the identity or a layer list (e.g. a 1×1
/// projection). State-dict names: `body.…`, `shortcut.…`.
public final class Residual: Layer {
    public let body: Sequential
    public let shortcut: Sequential?
    public var outputShape: [Int] { body.outputShape }
    public var children: [(name: String, layer: Layer)] {
        [("body", body)] + (shortcut.map { [("shortcut", $0 as Layer)] } ?? [])
    }
    private let output = Tensor.workspace()
    private let inputGrad = Tensor.workspace()

    public struct ShapeError: Error, CustomStringConvertible { public let description: String }

    public init(body: Sequential, shortcut: Sequential?) throws {
        let side = shortcut?.outputShape ?? body.inputShape
        guard side == body.outputShape else {
            throw ShapeError(description: "residual: the body gives \(body.outputShape) but the shortcut gives \(side); add a projection shortcut (e.g. a 1×1 conv2d)")
        }
        self.body = body
        self.shortcut = shortcut
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let a = body.forward(x, training: training)
        let b = shortcut?.forward(x, training: training) ?? x
        output.resize(a.shape)
        for i in 0..<a.count { output.data[i] = a.data[i] + b.data[i] }
        return output
    }

    public func backward(_ dy: Tensor, needInputGrad: Bool) -> Tensor? {
        let gb = body.backward(dy, needInputGrad: needInputGrad)
        let gs = shortcut.map { $0.backward(dy, needInputGrad: needInputGrad) } ?? dy
        guard needInputGrad, let g1 = gb, let g2 = gs else { return nil }
        inputGrad.resize(g1.shape)
        for i in 0..<g1.count { inputGrad.data[i] = g1.data[i] + g2.data[i] }
        return inputGrad
    }
}

/// Runs branches on the same input and concatenates their outputs along channels (Inception,
/// DenseNet). Branch outputs must agree on everything but the channel count. Names:
/// `branches.<i>.…`.
public final class Concat: Layer {
    public let branches: [Sequential]
    public let outputShape: [Int]
    public var children: [(name: String, layer: Layer)] {
        branches.enumerated().map { ("branches.\($0.offset)", $0.element) }
    }
    private let output = Tensor.workspace()
    private let inputGrad = Tensor.workspace()
    private let branchGrads: [Tensor]

    public init(branches: [Sequential]) throws {
        guard let first = branches.first else { throw Residual.ShapeError(description: "concat needs at least one branch") }
        let rest = Array(first.outputShape.dropFirst())
        for (i, b) in branches.enumerated() where Array(b.outputShape.dropFirst()) != rest {
            throw Residual.ShapeError(description: "concat: branch \(i) gives \(b.outputShape), branch 0 gives \(first.outputShape); only channels may differ")
        }
        self.branches = branches
        outputShape = [branches.reduce(0) { $0 + $1.outputShape[0] }] + rest
        branchGrads = branches.map { _ in Tensor.workspace() }
    }

    private var spatial: Int { outputShape.dropFirst().reduce(1, *) }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let b = batchSize(x), hw = spatial, total = outputShape[0]
        output.resize([b] + outputShape)
        var offset = 0
        for br in branches {
            let y = br.forward(x, training: training)
            let c = br.outputShape[0]
            for bi in 0..<b {
                (output.data + (bi * total + offset) * hw).update(from: y.data + bi * c * hw, count: c * hw)
            }
            offset += c
        }
        return output
    }

    public func backward(_ dy: Tensor, needInputGrad: Bool) -> Tensor? {
        let b = batchSize(dy), hw = spatial, total = outputShape[0]
        var offset = 0
        var sum: Tensor?
        for (k, br) in branches.enumerated() {
            let c = br.outputShape[0]
            let g = branchGrads[k]
            g.resize([b] + br.outputShape)
            for bi in 0..<b {
                (g.data + bi * c * hw).update(from: dy.data + (bi * total + offset) * hw, count: c * hw)
            }
            offset += c
            if let gx = br.backward(g, needInputGrad: needInputGrad) {
                if sum == nil {
                    inputGrad.resize(gx.shape)
                    inputGrad.copy(from: gx)
                    sum = inputGrad
                } else {
                    for i in 0..<gx.count { inputGrad.data[i] += gx.data[i] }
                }
            }
        }
        return needInputGrad ? sum : nil
    }
}

// MARK: FLOPs, references, job-file names

extension Residual {
    /// The branches plus one add per output element.
    public var flops: Int { childFlops + outputShape.reduce(1, *) }
    public func reference(_ x: [Double], batch: Int, training: Bool, _ r: Reference) -> [Double] {
        let a = r.run(body, x, batch: batch, training: training)
        let c = shortcut.map { r.run($0, x, batch: batch, training: training) } ?? x
        return zip(a, c).map(+)
    }
}

extension Concat {
    public var flops: Int { childFlops }
    public func reference(_ x: [Double], batch b: Int, training: Bool, _ r: Reference) -> [Double] {
        let parts = branches.map { r.run($0, x, batch: b, training: training) }
        var y: [Double] = []
        for i in 0..<b {
            for (k, br) in branches.enumerated() {
                let n = br.outputShape.reduce(1, *)
                y += parts[k][(i * n)..<((i + 1) * n)]
            }
        }
        return y
    }
}

/// `sequential {layers}`, `repeat {times, layer}`, `residual {body, shortcut}`, `concat {branches}`.
let containerKinds = [
    LayerKind("repeat") { r, c in
        let n = try r.requiredInt("times", min: 1)
        guard let layer = r.value("layer") else { throw r.error("layer", "required: the layer to repeat") }
        return try LayerFactory.sequence(Array(repeating: layer, count: n), c.at(r.join("layer"), input: c.inputShape))
    },
    LayerKind("sequential") { r, c in
        guard let l = try r.optionalList("layers") else { throw r.error("layers", "required: a list of layers") }
        return try LayerFactory.sequence(l, c.at(r.join("layers"), input: c.inputShape))
    },
    LayerKind("residual") { r, c in
        guard let body = try r.optionalList("body"), !body.isEmpty else { throw r.error("body", "required: a non-empty list of layers") }
        let b = try LayerFactory.sequence(body, c.at(r.join("body"), input: c.inputShape).withFloatInput)
        let sc = try r.optionalList("shortcut").map {
            try LayerFactory.sequence($0, c.at(r.join("shortcut"), input: c.inputShape).withFloatInput)
        }
        return try Residual(body: b, shortcut: sc)
    },
    LayerKind("concat") { r, c in
        guard let branches = try r.optionalList("branches"), !branches.isEmpty else {
            throw r.error("branches", "required: a list of branches (each a list of layers)")
        }
        return try Concat(branches: try branches.enumerated().map { i, b in
            guard case .list(let l) = b else { throw r.error("branches[\(i)]", "expected a list of layers") }
            return try LayerFactory.sequence(l, c.at(r.join("branches[\(i)]"), input: c.inputShape).withFloatInput)
        })
    },
]

/// A per-layer table of a model: output shape, parameters and forward FLOPs per sample, using
/// the formulas of the seed tables (a multiply-add counts 2):
///
///     Linear d→h          2·d·h
///     Conv C_in→C_out f×f  2·(C_in/groups)·C_out·f²·H_out·W_out
///     BatchNorm/LayerNorm  ~6 per element (and GroupNorm, InstanceNorm)
///     pooling              window size per output element; activations 1 per element
public struct ModelSummary {
    public struct Row {
        public let name: String
        public let type: String
        public let depth: Int
        public let outputShape: [Int]
        public let parameters: Int
        public let flops: Int
        /// Containers also list their children; totals count leaves only.
        public let isLeaf: Bool
    }

    public let rows: [Row]
    public var totalParameters: Int { rows.filter(\.isLeaf).reduce(0) { $0 + $1.parameters } }
    public var totalFlops: Int { rows.filter(\.isLeaf).reduce(0) { $0 + $1.flops } }

    public init(_ model: Model) {
        var rows: [Row] = []
        func visit(_ layer: Layer, name: String, depth: Int, input: [Int]) {
            let kids = layer.children
            let own = layer.parameters.reduce(0) { $0 + $1.count }
            rows.append(Row(name: name, type: String(describing: type(of: layer)), depth: depth,
                            outputShape: layer.outputShape,
                            parameters: kids.isEmpty ? own : layer.namedParameters().reduce(0) { $0 + $1.parameter.count },
                            flops: kids.isEmpty ? ModelSummary.flops(layer, input: input) : 0, isLeaf: kids.isEmpty))
            var shape = input
            for c in kids {
                // Sequential children chain; branches (residual, concat) each see the block's input.
                let childInput = layer is Sequential ? shape : input
                visit(c.layer, name: name.isEmpty ? c.name : "\(name).\(c.name)", depth: depth + 1, input: childInput)
                shape = c.layer.outputShape
            }
        }
        for (i, l) in model.network.layers.enumerated() {
            let input = i == 0 ? model.inputShape : model.network.layers[i - 1].outputShape
            visit(l, name: String(i), depth: 0, input: input)
        }
        self.rows = rows
    }

    static func flops(_ layer: Layer, input: [Int]) -> Int {
        let out = layer.outputShape.reduce(1, *)
        switch layer {
        case let l as Linear: return 2 * l.inFeatures * l.outFeatures
        case let c as Conv2D:
            return 2 * (c.inChannels / c.groups) * c.outChannels * c.kernel.h * c.kernel.w * c.outputShape[1] * c.outputShape[2]
        case is BatchNorm, is GroupwiseNorm: return 6 * out
        case let p as MaxPool2D: return p.kernel * p.kernel * out
        case let p as AvgPool2D: return p.kernel * p.kernel * out
        case is GlobalAvgPool: return input.reduce(1, *)
        case is Flatten: return 0
        default: return out
        }
    }

    /// The table as text, with totals at the bottom.
    public var text: String {
        func pad(_ s: String, _ n: Int, right: Bool = false) -> String {
            s.count >= n ? s : right ? String(repeating: " ", count: n - s.count) + s : s + String(repeating: " ", count: n - s.count)
        }
        var lines = [pad("layer", 34) + pad("output", 16) + pad("params", 12, right: true) + pad("FLOPs", 14, right: true)]
        for r in rows {
            let label = String(repeating: "  ", count: r.depth) + r.name + " " + r.type
            let shape = "[" + r.outputShape.map(String.init).joined(separator: ", ") + "]"
            lines.append(pad(label, 34) + pad(shape, 16) + pad(group(r.parameters), 12, right: true)
                         + pad(r.isLeaf ? group(r.flops) : "", 14, right: true))
        }
        lines.append(String(repeating: "-", count: 76))
        lines.append(pad("total (per sample)", 50) + pad(group(totalParameters), 12, right: true) + pad(group(totalFlops), 14, right: true))
        return lines.joined(separator: "\n")
    }
}

/// 1234567 → "1,234,567".
func group(_ n: Int) -> String {
    let s = String(n)
    var out = ""
    for (i, ch) in s.enumerated() {
        if i > 0 && (s.count - i) % 3 == 0 { out.append(",") }
        out.append(ch)
    }
    return out
}

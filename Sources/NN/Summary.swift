/// A per-layer table of a model: output shape, parameters and forward FLOPs per sample. Each
/// layer states its own FLOPs (`Layer.flops`, the seed table's formulas, a multiply-add
/// counting 2), so a layer type cannot appear here without a figure of its own.
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
                            flops: kids.isEmpty ? layer.flops : 0, isLeaf: kids.isEmpty))
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

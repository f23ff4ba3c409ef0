import TensorCore

/// One-entry parameter and gradient arenas holding `p` and `g`.
public func arenas(_ p: [Float], _ g: [Float]) -> (Arena, Arena) {
    let layout = ArenaLayout([("w", [p.count])])
    let a = Arena(layout), b = Arena(layout)
    for i in 0..<p.count { a.data[i] = p[i]; b.data[i] = g[i] }
    return (a, b)
}

public func close(_ a: Arena, _ expected: [Float], tol: Float = 1e-6) -> Bool {
    expected.indices.allSatisfy { abs(a.data[$0] - expected[$0]) <= tol }
}

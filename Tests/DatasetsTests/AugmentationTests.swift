import Datasets
import TensorCore
import Testing

/// b single-channel h×w images; sample i's pixel p is 1000·(i+1) + p, so every value says
/// which sample and which pixel it came from (none is 0 or the fill).
func image(_ b: Int, _ h: Int, _ w: Int) -> Tensor {
    Tensor(shape: [b, 1, h, w], values: (0..<(b * h * w)).map { Float(1000 * ($0 / (h * w) + 1) + $0 % (h * w)) })
}

func plane(_ x: Tensor, _ i: Int) -> [Float] {
    let n = x.count / x.shape[0]
    return Array(x.buffer[(i * n)..<(i * n + n)])
}

/// The original plane shifted by (dy, dx), uncovered pixels filled.
func shifted(_ p: [Float], _ h: Int, _ w: Int, _ dy: Int, _ dx: Int, fill: Float) -> [Float] {
    (0..<(h * w)).map { k in
        let r = k / w - dy, c = k % w - dx
        return r >= 0 && r < h && c >= 0 && c < w ? p[r * w + c] : fill
    }
}

@Test func cropMovesEachImageByOneShiftWithinThePadding() {
    var a = Augmentation()
    a.cropPadding = 2
    a.fill = -9
    var rng = RNG(seed: 3)
    let original = image(32, 6, 5), x = original.clone()
    a.apply(x, labels: IntTensor([Int32](repeating: 0, count: 32)), classes: 10, soft: Tensor.workspace(), rng: &rng)
    var shifts = Set<[Int]>()
    for i in 0..<32 {
        let found = (-2...2).flatMap { dy in (-2...2).map { [dy, $0] } }
            .filter { shifted(plane(original, i), 6, 5, $0[0], $0[1], fill: -9) == plane(x, i) }
        #expect(found.count == 1, "image \(i) is not the original shifted by one offset within ±2")
        shifts.formUnion(found)
    }
    // The offsets vary over the batch, and most images actually moved.
    #expect(shifts.count >= 8)
    #expect((0..<32).filter { plane(x, $0) != plane(original, $0) }.count >= 24)
}

@Test func flipMirrorsWholeImagesAboutHalfTheTime() {
    var f = Augmentation()
    f.flip = true
    var rng = RNG(seed: 4)
    let original = image(64, 3, 4), y = original.clone()
    f.apply(y, labels: IntTensor([Int32](repeating: 0, count: 64)), classes: 10, soft: Tensor.workspace(), rng: &rng)
    var flipped = 0
    for i in 0..<64 {
        let o = plane(original, i), p = plane(y, i)
        let mirror: [Float] = (0..<12).map { (k: Int) -> Float in o[(k / 4) * 4 + 3 - k % 4] }
        #expect(p == o || p == mirror, "image \(i) is neither itself nor its mirror")
        if p == mirror { flipped += 1 }
    }
    #expect(flipped > 16 && flipped < 48, "\(flipped) of 64 flipped")
}

@Test func cutoutBlanksOneSquareOfTheGivenSide() throws {
    var a = Augmentation()
    a.cutout = 3
    a.fill = 0
    var rng = RNG(seed: 5)
    let original = image(40, 8, 8), x = original.clone()
    a.apply(x, labels: IntTensor([Int32](repeating: 0, count: 40)), classes: 10, soft: Tensor.workspace(), rng: &rng)
    var full = 0
    for i in 0..<40 {
        let o = plane(original, i), p = plane(x, i)
        let blank = (0..<64).filter { p[$0] == 0 }
        try #require(!blank.isEmpty, "image \(i) has no blanked pixel")
        // The blanked pixels form one rectangle of at most 3×3 (clipped at the border); the rest is untouched.
        let rows = Set(blank.map { $0 / 8 }), cols = Set(blank.map { $0 % 8 })
        #expect(blank.count == rows.count * cols.count && rows.count <= 3 && cols.count <= 3)
        #expect(rows.max()! - rows.min()! == rows.count - 1 && cols.max()! - cols.min()! == cols.count - 1)
        #expect((0..<64).allSatisfy { p[$0] == 0 || p[$0] == o[$0] })
        if blank.count == 9 { full += 1 }
    }
    #expect(full >= 15, "\(full) of 40 squares were whole 3×3 squares")
}

@Test func mixupMixesImagesAndLabelsWithOneLambda() {
    var a = Augmentation()
    a.mixupAlpha = 0.4
    var rng = RNG(seed: 6)
    let original = image(6, 4, 4), x = original.clone()
    let soft = Tensor.workspace()
    a.apply(x, labels: IntTensor([0, 1, 2, 3, 4, 5]), classes: 10, soft: soft, rng: &rng)
    #expect(soft.shape == [6, 10])
    var lambdas: [Float] = []
    for i in 0..<6 {
        let row = Array(soft.buffer[(i * 10)..<(i * 10 + 10)])
        #expect(abs(row.reduce(0, +) - 1) < 1e-5)
        let lambda = row[i]
        let partner = (0..<6).first { $0 != i && row[$0] > 0 } ?? i
        // The image is the same mixture of its own and its partner's pixels.
        let mix = zip(plane(original, i), plane(original, partner)).map { lambda * $0 + (1 - lambda) * $1 }
        #expect(zip(mix, plane(x, i)).allSatisfy { abs($0 - $1) < 1e-2 }, "image \(i)")
        if partner != i { lambdas.append(lambda) }
    }
    #expect(!lambdas.isEmpty && lambdas.allSatisfy { abs($0 - lambdas[0]) < 1e-6 } && lambdas[0] > 0 && lambdas[0] < 1)
}

@Test func cutmixPastesABoxAndWeighsLabelsByArea() {
    var a = Augmentation()
    a.cutmixAlpha = 1
    var seen = false
    for seed: UInt64 in 0..<20 {
        var rng = RNG(seed: seed)
        let original = image(4, 8, 8), x = original.clone()
        let soft = Tensor.workspace()
        a.apply(x, labels: IntTensor([0, 1, 2, 3]), classes: 4, soft: soft, rng: &rng)
        for i in 0..<4 {
            let p = plane(x, i)
            let pasted = (0..<64).filter { p[$0] != plane(original, i)[$0] }
            let lambda = soft[i * 4 + i]
            guard !pasted.isEmpty else { #expect(lambda == 1); continue }
            seen = true
            // Pasted pixels come from one partner, at the same positions, and λ is the share kept.
            let partner = Int(p[pasted[0]] / 1000) - 1
            #expect(pasted.allSatisfy { p[$0] == plane(original, partner)[$0] })
            #expect(abs(lambda - (1 - Float(pasted.count) / 64)) < 1e-5, "λ \(lambda), pasted \(pasted.count)")
            #expect(abs(soft[i * 4 + partner] - (1 - lambda)) < 1e-5)
        }
    }
    #expect(seen)
}

@Test func betaSamplesHaveBetaMoments() {
    let a = Augmentation()
    for alpha in [0.4, 2.0] {
        var rng = RNG(seed: 7)
        let draws = (0..<20000).map { _ in a.sampleBeta(alpha, &rng) }
        let mean = draws.reduce(0, +) / Double(draws.count)
        let variance = draws.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(draws.count)
        let expected = 1 / (4 * (2 * alpha + 1))      // Beta(α, α): mean ½, variance 1/(4(2α + 1))
        #expect(abs(mean - 0.5) < 0.01 && abs(variance - expected) < 0.08 * expected, "α \(alpha): mean \(mean), variance \(variance) vs \(expected)")
        #expect(draws.allSatisfy { $0 >= 0 && $0 <= 1 })
    }
}

@Test func augmentedBatchesAreReproducibleAndSeedDependent() throws {
    var a = Augmentation()
    a.cropPadding = 2
    a.flip = true
    a.mixupAlpha = 0.2
    func run(_ seed: UInt64) -> [Float] {
        var rng = RNG(seed: seed)
        let x = image(4, 5, 5)
        a.apply(x, labels: IntTensor([1, 2, 3, 4]), classes: 10, soft: Tensor.workspace(), rng: &rng)
        return x.array
    }
    #expect(run(11) == run(11))
    #expect(run(11) != run(12))
    #expect(run(11) != image(4, 5, 5).array)
}

import Datasets
import TensorCore
import Testing

func image(_ b: Int, _ h: Int, _ w: Int) -> Tensor {
    Tensor(shape: [b, 1, h, w], values: (0..<(b * h * w)).map { Float($0 % (h * w)) + 1 })
}

@Test func cropShiftsWithFillAndFlipMirrors() {
    var a = Augmentation()
    a.cropPadding = 1
    a.fill = -9
    var rng = RNG(seed: 3)
    let x = image(8, 4, 4)
    a.apply(x, labels: IntTensor([Int32](repeating: 0, count: 8)), classes: 10, soft: Tensor.workspace(), rng: &rng)
    for i in 0..<8 {
        let p = Array(x.buffer[(i * 16)..<(i * 16 + 16)])
        // Every pixel is either the fill or an original value, shifted by at most one.
        #expect(p.allSatisfy { $0 == -9 || (1...16).contains($0) })
        let kept = p.filter { $0 != -9 }
        #expect(kept.count >= 9)
    }
    var f = Augmentation()
    f.flip = true
    var rng2 = RNG(seed: 4)
    let y = image(16, 2, 3)
    f.apply(y, labels: IntTensor([Int32](repeating: 0, count: 16)), classes: 10, soft: Tensor.workspace(), rng: &rng2)
    let rows = (0..<16).map { Array(y.buffer[($0 * 6)..<($0 * 6 + 3)]) }
    #expect(rows.contains([1, 2, 3]) && rows.contains([3, 2, 1]))
}

@Test func cutoutBlanksASquare() {
    var a = Augmentation()
    a.cutout = 2
    a.fill = 0
    var rng = RNG(seed: 5)
    let x = image(4, 6, 6)
    a.apply(x, labels: IntTensor([0, 0, 0, 0]), classes: 10, soft: Tensor.workspace(), rng: &rng)
    for i in 0..<4 {
        let zeros = x.buffer[(i * 36)..<(i * 36 + 36)].filter { $0 == 0 }.count
        #expect(zeros >= 1 && zeros <= 4)
    }
}

@Test func mixupAndCutmixMixTargetsLikeTheirImages() {
    for (mixup, cutmix) in [(0.4, 0.0), (0.0, 1.0)] {
        var a = Augmentation()
        a.mixupAlpha = mixup
        a.cutmixAlpha = cutmix
        var rng = RNG(seed: 6)
        let x = image(6, 4, 4)
        let soft = Tensor.workspace()
        let labels = IntTensor([0, 1, 2, 3, 4, 5])
        a.apply(x, labels: labels, classes: 10, soft: soft, rng: &rng)
        #expect(soft.shape == [6, 10])
        for i in 0..<6 {
            let row = Array(soft.buffer[(i * 10)..<(i * 10 + 10)])
            #expect(abs(row.reduce(0, +) - 1) < 1e-5)
            #expect(row[i] > 0 && row[i] <= 1)
        }
    }
    // Beta(α, α) is symmetric around ½.
    let a = Augmentation()
    var rng = RNG(seed: 7)
    let draws = (0..<4000).map { _ in a.sampleBeta(0.4, &rng) }
    #expect(abs(draws.reduce(0, +) / 4000 - 0.5) < 0.02)
    #expect(draws.allSatisfy { $0 >= 0 && $0 <= 1 })
}

@Test func augmentedBatchesAreReproducible() throws {
    var a = Augmentation()
    a.cropPadding = 2
    a.flip = true
    a.mixupAlpha = 0.2
    func run() -> [Float] {
        var rng = RNG(seed: 11)
        let x = image(4, 5, 5)
        a.apply(x, labels: IntTensor([1, 2, 3, 4]), classes: 10, soft: Tensor.workspace(), rng: &rng)
        return x.array
    }
    #expect(run() == run())
}

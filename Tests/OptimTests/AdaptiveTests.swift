import Glibc
import Optim
import TestSupport
import TensorCore
import Testing

/// One Adam step from zero state: m = (1−β₁)g, v = (1−β₂)g², bias-corrected m̂ = g, v̂ = g², so
/// θ moves by lr·g/(|g| + ε) = lr·sign(g) (to within ε).
@Test func adamFirstStepMovesByLR() {
    let (p, g) = arenas([1, -2, 3], [0.5, -0.25, 0])
    let adam = Adam(params: p, grads: g, lr: 0.1)
    adam.step()
    #expect(close(p, [0.9, -1.9, 3], tol: 1e-6))
    #expect(close(adam.slots[0].arena, [0.05, -0.025, 0]))
    #expect(close(adam.slots[1].arena, [0.00025, 0.0000625, 0], tol: 1e-8))
}

@Test func adamWDecaysWeightsOutsideTheGradient() {
    let (p, g) = arenas([1], [0])
    let adamw = Adam(params: p, grads: g, lr: 0.1, weightDecay: 0.5, decoupled: true)
    adamw.step()
    #expect(close(p, [0.95]))        // θ·(1 − lr·λ), zero gradient
    let (q, h) = arenas([1], [0])
    let adam = Adam(params: q, grads: h, lr: 0.1, weightDecay: 0.5)
    adam.step()
    #expect(close(q, [0.9], tol: 1e-5))    // λθ enters the gradient: one lr-sized step
}

@Test func rmspropAndAdagradByHand() {
    let (p, g) = arenas([1], [2])
    let rms = RMSprop(params: p, grads: g, lr: 0.01, alpha: 0.9)
    rms.step()
    // v = 0.1·4 = 0.4; θ −= 0.01·2/(√0.4 + 1e-8)
    #expect(close(p, [Float(1 - 0.02 / 0.4.squareRoot())], tol: 1e-6))
    let (q, h) = arenas([1], [2])
    let centered = RMSprop(params: q, grads: h, lr: 0.01, alpha: 0.9, momentum: 0.5, centered: true)
    centered.step()
    // v = 0.4, ḡ = 0.2, avg = √(0.4 − 0.04); b = 2/avg; θ −= 0.01·b
    #expect(close(q, [Float(1 - 0.01 * 2 / 0.36.squareRoot())], tol: 1e-6))
    let (a, ag) = arenas([1], [2])
    let ada = AdaGrad(params: a, grads: ag, lr: 0.1)
    ada.step()
    ada.step()
    // sums 4 then 8: θ = 1 − 0.1·2/2 − 0.1·2/√8
    #expect(close(a, [Float(1 - 0.1 - 0.2 / 8.0.squareRoot())], tol: 1e-6))
}

@Test func clippingAndPlateau() {
    let (_, g) = arenas([0, 0], [3, 4])
    #expect(GradientClipping.clipNorm(g, maxNorm: 1) == 5)
    #expect(close(g, [0.6, 0.8], tol: 1e-5))
    GradientClipping.clipValue(g, value: 0.7)
    #expect(close(g, [0.6, 0.7]))
    var p = ReduceOnPlateau(factor: 0.5, patience: 1)
    #expect(p.step(1.0) == 1 && p.step(0.9) == 1)     // improving
    #expect(p.step(0.95) == 1)                        // one bad epoch: within patience
    #expect(p.step(0.95) == 0.5)                      // two: reduce
    #expect(LRSchedule.warmupCosine(warmup: 4, totalSteps: 14, minFactor: 0).factor(step: 1) == 0.5)
    #expect(abs(LRSchedule.warmupCosine(warmup: 4, totalSteps: 14, minFactor: 0).factor(step: 9) - 0.5) < 1e-12)
}

/// `decay: matrices` is torch's two parameter groups: weight decay on the [2, 3] weight, none
/// on the bias and the norm gain. Each tensor must follow the trajectory of a one-tensor
/// optimizer with its group's rate, for every optimizer.
@Test func weightDecayOnMatricesOnlyMatchesTwoGroups() {
    let layout = ArenaLayout([("w", [2, 3]), ("b", [3]), ("gain", [17]), ("embedding", [4, 5])])
    func fill(_ a: Arena, _ k: Float) { for e in layout.entries { for i in 0..<e.count { a.data[e.offset + i] = k * sin(Float(e.offset + i) + 1) } } }
    typealias Make = (Arena, Arena, Float, Bool) -> any Optim.Optimizer
    let makers: [(String, Make)] = [
        ("sgd", { SGD(params: $0, grads: $1, lr: 0.1, momentum: 0.9, weightDecay: $2, decayMatricesOnly: $3) }),
        ("adagrad", { AdaGrad(params: $0, grads: $1, lr: 0.1, weightDecay: $2, decayMatricesOnly: $3) }),
        ("rmsprop", { RMSprop(params: $0, grads: $1, lr: 0.01, weightDecay: $2, decayMatricesOnly: $3) }),
        ("adam", { Adam(params: $0, grads: $1, lr: 0.01, weightDecay: $2, decayMatricesOnly: $3) }),
        ("adamw", { Adam(params: $0, grads: $1, lr: 0.01, weightDecay: $2, decoupled: true, decayMatricesOnly: $3) }),
    ]
    for (name, make) in makers {
        let p = Arena(layout), g = Arena(layout)
        fill(p, 1); fill(g, 0.3)
        let opt = make(p, g, 0.5, true)
        for _ in 0..<3 { opt.step() }
        for e in layout.entries {
            let (q, h) = arenas((0..<e.count).map { p0 in sin(Float(e.offset + p0) + 1) }, (0..<e.count).map { 0.3 * sin(Float(e.offset + $0) + 1) })
            let single = make(q, h, e.shape.count >= 2 ? 0.5 : 0, false)
            for _ in 0..<3 { single.step() }
            let worst = (0..<e.count).map { abs(p.data[e.offset + $0] - q.data[$0]) }.max()!
            #expect(worst < 1e-6, "\(name): \(e.name) off by \(worst)")
        }
    }
}

import Optim
import TestSupport
import TensorCore
import Testing

@Test func sgdMomentumWeightDecayByHand() {
    let (p, g) = arenas([1, -2], [0.5, 0.25])
    let opt = SGD(params: p, grads: g, lr: 0.1, momentum: 0.9, weightDecay: 0.01)
    opt.step()
    // d = g + 0.01·p = [0.51, 0.23]; first step b = d; p −= 0.1·b
    #expect(close(p, [0.949, -2.023]))
    #expect(close(opt.slots[0].arena, [0.51, 0.23]))
    opt.step()
    // d = [0.50949, 0.22977]; b = 0.9·b + d = [0.96849, 0.43677]
    #expect(close(p, [0.852151, -2.066677]))
    #expect(opt.stepCount == 2)
}

@Test func sgdNesterovByHand() {
    let (p, g) = arenas([1, -2], [0.5, 0.25])
    let opt = SGD(params: p, grads: g, lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 0.01)
    opt.step()
    // update = d + 0.9·b = [0.969, 0.437]
    #expect(close(p, [0.9031, -2.0437]))
}

@Test func sgdPlainAndDampening() {
    let (p, g) = arenas([1], [2])
    SGD(params: p, grads: g, lr: 0.5).step()
    #expect(p.data[0] == 0)
    let (q, h) = arenas([0], [1])
    let opt = SGD(params: q, grads: h, lr: 1, momentum: 0.5, dampening: 0.5)
    opt.step()          // b = 1 (no dampening on the first step)
    opt.step()          // b = 0.5·1 + 0.5·1 = 1
    #expect(q.data[0] == -2)
    #expect(p.data[1] == 0)   // padding stays zero
}

@Test func schedules() {
    #expect(LRSchedule.constant.factor(step: 1000) == 1)
    let c = LRSchedule.cosine(totalSteps: 100, minFactor: 0.1)
    #expect(c.factor(step: 0) == 1)
    #expect(abs(c.factor(step: 50) - 0.55) < 1e-12)
    #expect(abs(c.factor(step: 100) - 0.1) < 1e-12)
    #expect(abs(c.factor(step: 200) - 0.1) < 1e-12)
    let s = LRSchedule.step(everySteps: 10, gamma: 0.5)
    #expect(s.factor(step: 9) == 1 && s.factor(step: 10) == 0.5 && s.factor(step: 25) == 0.25)
}

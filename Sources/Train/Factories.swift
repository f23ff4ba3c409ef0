import NN
import Optim
import TensorCore

extension JobConfig {
    /// The loss named by `train.loss`.
    func makeLoss() -> Loss {
        switch train.loss {
        case .crossEntropy: return SoftmaxCrossEntropy(labelSmoothing: Float(train.labelSmoothing))
        case .mse: return MeanSquaredError()
        case .mae: return MeanAbsoluteError()
        case .huber: return HuberLoss(delta: Float(train.huberDelta))
        case .bce: return SigmoidBinaryCrossEntropy()
        case .poissonNLL: return PoissonNLL(logInput: task.rate == .exp)
        case .hinge: return HingeLoss()
        case .perceptron: return PerceptronLoss()
        }
    }

    /// The optimizer named by `optimizer.type`, over a model's arenas.
    func makeOptimizer(params: Arena, grads: Arena) -> any Optim.Optimizer {
        let o = optimizer, lr = Float(o.lr), wd = Float(o.weightDecay), eps = Float(o.eps), matrices = o.decay == .matrices
        switch o.type {
        case .sgd:
            return SGD(params: params, grads: grads, lr: lr, momentum: Float(o.momentum), dampening: Float(o.dampening),
                       nesterov: o.nesterov, weightDecay: wd, decayMatricesOnly: matrices)
        case .adagrad: return AdaGrad(params: params, grads: grads, lr: lr, lrDecay: Float(o.lrDecay), weightDecay: wd, eps: eps,
                                      decayMatricesOnly: matrices)
        case .rmsprop:
            return RMSprop(params: params, grads: grads, lr: lr, alpha: Float(o.alpha), eps: eps, weightDecay: wd,
                           momentum: Float(o.momentum), centered: o.centered, decayMatricesOnly: matrices)
        case .adam, .adamw:
            return Adam(params: params, grads: grads, lr: lr, beta1: Float(o.betas[0]), beta2: Float(o.betas[1]), eps: eps,
                        weightDecay: wd, decoupled: o.type == .adamw, decayMatricesOnly: matrices)
        }
    }
}

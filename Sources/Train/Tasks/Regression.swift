import Datasets
import Glibc
import NN
import TensorCore

/// Real-valued targets `[k]` (several for multi-output regression), the model's outputs used as
/// they are, MSE (or MAE, Huber). Metrics in the targets' own units even when training
/// standardised them (`data.normalize_targets`): MSE, MAE and R² (the mean over outputs of
/// 1 − SSE/SST, sklearn's uniform average).
///
/// sums per output j: [Σe², Σ|e|, Σy, Σy²] (e = prediction − target, in data units)
public final class RegressionTask: SupervisedTask {
    let scaling: Scaling?
    private var outputs = 0

    init(loss: Loss, scaling: Scaling?) {
        self.scaling = scaling
        super.init(name: "regression", loss: loss)
    }

    public override var targetEncoding: TargetEncoding { .values }
    override var appliesOutputFunction: Bool { false }

    public override func check(_ runner: StepRunner, data: JobData) throws {
        guard let t = data.train.target, t.kind == .values else {
            throw TrainError("the regression task needs real-valued targets; \(data.train.name) has \(data.train.target.map(\.description) ?? "no targets")")
        }
        outputs = t.shape.reduce(1, *)
        try super.check(runner, data: data)
    }

    /// Output j of a sample in data units (undoing target standardisation).
    @inline(__always) func unscale(_ v: Float, _ j: Int) -> Double { scaling?.unscale(v, j) ?? Double(v) }

    public override func makeMetrics() -> MetricSums { MetricSums(count: 4 * outputs) }

    override func accumulate(_ out: Tensor, _ b: Batch, _ m: MetricSums) {
        let k = outputs, y = b.values
        for i in 0..<b.count {
            for j in 0..<k {
                let p = unscale(out.data[i * k + j], j), t = unscale(y.data[i * k + j], j), e = p - t
                m[4 * j] += e * e
                m[4 * j + 1] += abs(e)
                m[4 * j + 2] += t
                m[4 * j + 3] += t * t
            }
        }
    }

    public override func finish(_ m: MetricSums) -> [Metric] {
        let n = max(m.count, 1)
        var sse = 0.0, sae = 0.0, r2 = 0.0
        for j in 0..<outputs {
            sse += m[4 * j]
            sae += m[4 * j + 1]
            let sst = m[4 * j + 3] - m[4 * j + 2] * m[4 * j + 2] / n
            r2 += sst > 0 ? 1 - m[4 * j] / sst : 0
        }
        let k = Double(max(outputs, 1))
        return [Metric("mse", sse / (n * k)), Metric("mae", sae / (n * k)), Metric("r2", r2 / k)]
    }
}

/// Targets in [low, high]: the task maps the model's outputs through low + (high − low)·σ(z)
/// (the seed's bounded output) before MSE (or MAE, Huber). Metrics: MSE, MAE.
///
/// forward p = lo + (hi − lo)·σ(z);  dL/dz = dL/dp · (hi − lo)·σ(z)(1 − σ(z))
/// sums: [Σe², Σ|e|, elements]
public final class BoundedRegressionTask: SupervisedTask {
    let low: Float, high: Float
    private let bounded = Tensor.workspace()
    private let boundedGrad = Tensor.workspace()

    init(loss: Loss, low: Float, high: Float) {
        self.low = low
        self.high = high
        super.init(name: "bounded_regression", loss: loss)
    }

    public override var targetEncoding: TargetEncoding { .values }
    override var outputFunctionName: String { "low + (high − low)·sigmoid" }

    public override func check(_ runner: StepRunner, data: JobData) throws {
        guard let t = data.train.target, t.kind == .values else {
            throw TrainError("the bounded_regression task needs real-valued targets; \(data.train.name) has \(data.train.target.map(\.description) ?? "no targets")")
        }
        for d in data.splits {
            guard let c = d.targetColumn else { continue }
            for i in 0..<(c.rows * c.sampleSize) {
                let v = c.rawValue(i) * Double(c.rawScale)
                if v < Double(low) || v > Double(high) {
                    throw TrainError("\(d.name): target \(v) at element \(i) is outside the task's range [\(low), \(high)] (task.low, task.high)")
                }
            }
        }
        try super.check(runner, data: data)
    }

    /// p = lo + (hi − lo)·σ(z)
    func bound(_ z: Tensor) -> Tensor {
        bounded.resize(z.shape)
        for i in 0..<z.count { bounded.data[i] = low + (high - low) * sigmoid(z.data[i]) }
        return bounded
    }

    public override func lossValue(_ out: Tensor, _ b: Batch, grad: Tensor?) -> Float {
        let p = bound(out)
        let l = loss.compute(p, .values(b.values), grad: grad == nil ? nil : boundedGrad)
        if let g = grad {
            g.resize(out.shape)
            for i in 0..<out.count {
                let s = sigmoid(out.data[i])
                g.data[i] = boundedGrad.data[i] * (high - low) * s * (1 - s)
            }
        }
        return l
    }

    public override func makeMetrics() -> MetricSums { MetricSums(count: 3) }

    override func accumulate(_ out: Tensor, _ b: Batch, _ m: MetricSums) {
        let p = bound(out), y = b.values
        for i in 0..<p.count {
            let e = Double(p.data[i] - y.data[i])
            m[0] += e * e
            m[1] += abs(e)
        }
        m[2] += Double(p.count)
    }

    public override func finish(_ m: MetricSums) -> [Metric] {
        let n = max(m[2], 1)
        return [Metric("mse", m[0] / n), Metric("mae", m[1] / n)]
    }
}

/// Counts: a rate μ = e^z (the loss takes log-rates, fused) or softplus(z), Poisson NLL.
/// Metrics: mean Poisson deviance 2·[y·log(y/μ) − (y − μ)] and MAE of μ.
///
/// softplus: dL/dz = dL/dμ · σ(z)
/// sums: [Σ deviance, Σ|μ − y|, elements]
public final class CountingTask: SupervisedTask {
    let rate: JobConfig.TaskOptions.RateOutput
    private let mu = Tensor.workspace()
    private let muGrad = Tensor.workspace()

    init(rate: JobConfig.TaskOptions.RateOutput) {
        self.rate = rate
        super.init(name: "counting", loss: PoissonNLL(logInput: rate == .exp))
    }

    public override var targetEncoding: TargetEncoding { .values }
    override var outputFunctionName: String { rate == .exp ? "exp, fused into the loss" : "softplus" }

    public override func check(_ runner: StepRunner, data: JobData) throws {
        guard let t = data.train.target, t.kind == .values else {
            throw TrainError("the counting task needs count targets; \(data.train.name) has \(data.train.target.map(\.description) ?? "no targets")")
        }
        for d in data.splits {
            guard let c = d.targetColumn else { continue }
            for i in 0..<(c.rows * c.sampleSize) where c.rawValue(i) < 0 {
                throw TrainError("\(d.name): count \(c.rawValue(i)) at element \(i) is negative")
            }
        }
        try super.check(runner, data: data)
    }

    /// The rate μ for raw outputs z.
    func rates(_ z: Tensor) -> Tensor {
        mu.resize(z.shape)
        for i in 0..<z.count {
            let v = z.data[i]
            mu.data[i] = rate == .exp ? expf(v) : (v > 20 ? v : log1pf(expf(v)))
        }
        return mu
    }

    public override func lossValue(_ out: Tensor, _ b: Batch, grad: Tensor?) -> Float {
        if rate == .exp { return loss.compute(out, .values(b.values), grad: grad) }
        let l = loss.compute(rates(out), .values(b.values), grad: grad == nil ? nil : muGrad)
        if let g = grad {
            g.resize(out.shape)
            for i in 0..<out.count { g.data[i] = muGrad.data[i] * sigmoid(out.data[i]) }
        }
        return l
    }

    public override func makeMetrics() -> MetricSums { MetricSums(count: 3) }

    override func accumulate(_ out: Tensor, _ b: Batch, _ m: MetricSums) {
        let r = rates(out), y = b.values
        for i in 0..<r.count {
            let u = Double(max(r.data[i], 1e-12)), t = Double(y.data[i])
            m[0] += 2 * ((t > 0 ? t * log(t / u) : 0) - (t - u))
            m[1] += abs(u - t)
            m[2] += 1
        }
    }

    public override func finish(_ m: MetricSums) -> [Metric] {
        let n = max(m[2], 1)
        return [Metric("deviance", m[0] / n), Metric("mae", m[1] / n)]
    }
}

/// The input is the target (autoencoders): the model's output must have the input's shape;
/// MSE, MAE, Huber, or BCE for inputs in [0, 1] (then `data.normalize: none`).
public final class ReconstructionTask: SupervisedTask {
    init(loss: Loss) { super.init(name: "reconstruction", loss: loss) }

    public override var targetEncoding: TargetEncoding { .none }
    override var appliesOutputFunction: Bool { loss is SigmoidBinaryCrossEntropy }
    override func expectedOutput(_ data: JobData) -> [Int]? { data.train.input.shape }

    public override func check(_ runner: StepRunner, data: JobData) throws {
        guard !data.train.input.isInteger else {
            throw TrainError("the reconstruction task compares outputs with float inputs; \(data.train.name) holds ids")
        }
        if loss is SigmoidBinaryCrossEntropy, data.info.inputScaling != nil {
            throw TrainError("reconstruction with bce needs inputs in [0, 1]; set data.normalize: none (or use mse)")
        }
        try super.check(runner, data: data)
    }

    override func target(_ out: Tensor, _ b: Batch) -> Target { .values(b.inputs) }
}

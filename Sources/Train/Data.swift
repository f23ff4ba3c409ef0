import Datasets
import Formats

/// The splits a job trains and evaluates on, and what checkpoints keep about them.
public struct JobData {
    public var train: DataSource
    public var validation: DataSource?
    public var test: DataSource?
    public var info: DataInfo

    public init(train: DataSource, validation: DataSource? = nil, test: DataSource? = nil, info: DataInfo = DataInfo()) {
        self.train = train
        self.validation = validation
        self.test = test
        self.info = info
        self.info.input = train.input
        self.info.target = train.target
    }

    /// Loads the job's data for its task (or `targets`, for a task of the caller's); `known`
    /// (a checkpoint's) fixes normalisation, vocabularies and class names instead of taking
    /// them from this data.
    public static func load(_ job: JobConfig, targets: TargetEncoding? = nil, known: DataInfo? = nil) throws -> JobData {
        let spec = job.namedModels[0].spec
        let req = DataLoading.Request(input: spec.takesIndices ? .ids : .values, target: targets ?? job.task.kind.targetEncoding,
                                      seed: UInt64(job.seed), context: job.dataContext, known: known)
        let d = try DataLoading.load(job.data, req)
        return JobData(train: d.train, validation: d.validation, test: d.test, info: d.info)
    }

    public var splits: [DataSource] { [train, validation, test].compactMap { $0 } }

    /// The split each epoch is evaluated on: validation, else test (nil: none).
    public var epochSplit: (name: String, data: DataSource)? {
        if let v = validation { return ("val", v) }
        if let t = test { return ("test", t) }
        return nil
    }
}

extension JobConfig {
    /// Tokens per text sample: the model's input length, less the positions a task fills
    /// itself (masked_lm's [CLS] and [SEP]s).
    var dataContext: Int? {
        guard let t = namedModels[0].spec.input.first else { return nil }
        return task.kind == .maskedLM ? t - MaskedLanguageModelTask.specials(nsp: task.nsp) : t
    }
}

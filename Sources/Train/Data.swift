import Datasets
import Formats

/// The train and test splits a job trains and evaluates on.
public struct JobData {
    public let train: Dataset
    public let test: Dataset
    public let mean: Float
    public let std: Float

    /// Loads the job's dataset; normalisation uses the training split's statistics for both.
    public static func load(_ d: JobConfig.Data) throws -> JobData {
        let train = try FashionMNIST.load(d.path, split: .train)
        let test = try FashionMNIST.load(d.path, split: .test)
        var mean: Float = 0, std: Float = 1
        if d.normalize {
            (mean, std) = train.featureStatistics()
            train.normalize(mean: mean, std: std)
            test.normalize(mean: mean, std: std)
        }
        return JobData(train: train, test: test, mean: mean, std: std)
    }
}

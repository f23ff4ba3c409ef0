import Datasets
import Glibc
import NN
import TensorCore

/// Text from a trained language model: the prompt's tokens run through the model one position
/// at a time (attention's key/value caches and recurrent states fill as they go, so each new
/// token costs one position, not a whole window), then tokens are drawn from the next-token
/// distribution — the most likely at temperature 0, else softmax(logits / T) over the `topK`
/// most likely (0: all). At the trained context length the window slides: the cache is
/// rebuilt from the last half of the text, so positions stay inside what the model was trained
/// on (learned positions have no row past it).
public final class TextGenerator {
    public struct Options: Sendable {
        public var tokens = 200
        public var temperature = 1.0
        public var topK = 0
        public var seed: UInt64 = 0
        public init() {}
    }

    public let model: Model
    public let tokenizer: Tokenizer
    /// Positions the model was trained on.
    public let context: Int

    public init(checkpoint c: Checkpoint.Contents) throws {
        guard c.job.models.isEmpty else { throw TrainError("\(c.path) holds several models (\(c.job.models.map(\.name))); generate needs one language model") }
        guard c.job.task.kind == .languageModel, let t = c.data?.tokenizer else {
            throw TrainError("\(c.path) is not a language model trained on text (task \(c.job.task.kind.rawValue)); generate needs task: language_model")
        }
        let m = try Model(spec: c.job.model, source: c.path)
        try Checkpoint.loadParameters(into: m, from: c.file, source: c.path)
        if let why = m.decodeProblem { throw TrainError("\(c.path): cannot generate: \(why)") }
        if let e = m.inputEmbedding, e.vocabulary < t.size {
            throw TrainError("\(c.path): the embedding has \(e.vocabulary) rows but the tokenizer \(t.size) tokens")
        }
        model = m
        tokenizer = t
        context = max(c.job.model.input.first ?? 1, 2)
    }

    /// The prompt's ids (every character must be in the vocabulary).
    public func encode(_ prompt: String) throws -> [Int32] {
        let (ids, unknown) = tokenizer.encode(Array(prompt.utf8))
        if let u = unknown {
            throw TrainError("the prompt's character U+\(String(u.scalar.value, radix: 16, uppercase: true)) at byte \(u.offset) is not in the model's vocabulary")
        }
        guard !ids.isEmpty else { throw TrainError("the prompt is empty: give at least one token (--prompt)") }
        return ids
    }

    /// `o.tokens` new token ids after the prompt; `onToken` sees each as it is drawn.
    public func generate(prompt: [Int32], _ o: Options, onToken: ((Int32) -> Void)? = nil) -> [Int32] {
        var rng = RNG(seed: o.seed, stream: "generate")
        let input = IntTensor(shape: [1])
        var position = 0
        func feed(_ id: Int32) -> Tensor {
            input.data[0] = id
            defer { position += 1 }
            return model.decodeStep(tokens: input, position: position)
        }
        var text = Array(prompt.suffix(context))
        var logits = Tensor(shape: [0])
        for id in text { logits = feed(id) }
        var out: [Int32] = []
        for _ in 0..<o.tokens {
            let next = Self.sample(logits.data, count: min(logits.count, tokenizer.size), o, &rng)
            out.append(next)
            onToken?(next)
            text.append(next)
            if position == context {
                // Slide: start the caches again from the last half of the window.
                position = 0
                for id in text.suffix(context / 2) { logits = feed(id) }
            } else {
                logits = feed(next)
            }
        }
        return out
    }

    /// One draw from logits: argmax at temperature 0; else softmax(z/T) over the k largest.
    static func sample(_ z: UnsafePointer<Float>, count n: Int, _ o: Options, _ rng: inout RNG) -> Int32 {
        var order = Array(0..<n)
        if o.temperature <= 0 { return Int32(order.max { z[$0] < z[$1] }!) }
        if o.topK > 0 && o.topK < n {
            order.sort { z[$0] > z[$1] }
            order = Array(order.prefix(o.topK))
        }
        let mx = order.map { Double(z[$0]) }.max()!
        let w = order.map { exp((Double(z[$0]) - mx) / o.temperature) }
        var u = rng.uniformDouble() * w.reduce(0, +)
        for (k, i) in order.enumerated() {
            u -= w[k]
            if u <= 0 { return Int32(i) }
        }
        return Int32(order.last!)
    }
}

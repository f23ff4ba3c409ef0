import ArgumentParser
import Glibc
import TensorCore
import Train

/// `ringtrain generate CKPT --prompt … --tokens N`: text from a language-model checkpoint.
struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate text from a language-model checkpoint (key/value cache, temperature, top-k).",
        discussion: "Prints the prompt and the generated text to standard output as it is drawn, and the speed to standard error.")

    @Argument(help: "A checkpoint of a job with task: language_model (or its run directory, or last).") var checkpoint: String
    @Option(help: "Text to continue (every character must be in the model's vocabulary).") var prompt = "\n"
    @Option(help: "Tokens to generate.") var tokens = 200
    @Option(help: "Softmax temperature; 0 picks the most likely token every time.") var temperature = 0.8
    @Option(name: .customLong("top-k"), help: "Draw from the k most likely tokens only (0: all).") var topK = 0
    @Option(help: "Random seed of the draws.") var seed: UInt64 = 0
    @Option(help: "Threads (default: OPENBLAS_NUM_THREADS or all cores).") var threads: Int?

    func validate() throws {
        if tokens < 1 { throw ValidationError("--tokens must be at least 1, got \(tokens)") }
        if !(temperature >= 0 && temperature.isFinite) { throw ValidationError("--temperature must be a number ≥ 0, got \(temperature)") }
        if topK < 0 { throw ValidationError("--top-k must be ≥ 0, got \(topK)") }
    }

    func run() throws {
        do {
            let checkpoint = try checkpointPath(self.checkpoint)
            if let t = threads { BLAS.threads = t }
            let gen = try TextGenerator(checkpoint: try Checkpoint.load(checkpoint))
            let ids = try gen.encode(prompt)
            var o = TextGenerator.Options()
            o.tokens = tokens
            o.temperature = temperature
            o.topK = topK
            o.seed = seed
            write(gen.tokenizer.bytes(ids))
            let t0 = monotonicSeconds()
            _ = gen.generate(prompt: ids, o) { write(gen.tokenizer.bytes([$0])) }
            let dt = monotonicSeconds() - t0
            write(Array("\n".utf8))
            fputs("\(tokens) tokens in \(fmt(dt, 2)) s (\(Int(Double(tokens) / max(dt, 1e-9))) tokens/s)\n", stderr)
        } catch let e as ValidationError {
            throw e
        } catch {
            throw CLIError("\(error)")
        }
    }

    private func write(_ bytes: [UInt8]) {
        bytes.withUnsafeBufferPointer { _ = fwrite($0.baseAddress, 1, $0.count, stdout) }
        fflush(stdout)
    }
}

import Config
import Datasets
import Formats
import Glibc
import NN
import TensorCore
import TestSupport
import Testing
@testable import Train

/// Ten letters in runs of 48 that step by 1, 3 or 7 (drawn per run): a masked letter follows
/// from its neighbours, and a block's second half from its first (a random block's rarely does).
private func corpus(_ dir: String) throws -> String {
    var rng = RNG(seed: 21)
    let letters = Array("abcdefghij")
    var text = "", c = 0
    for _ in 0..<200 {
        let step = [1, 3, 7][rng.below(3)]
        for _ in 0..<48 { text.append(letters[c]); c = (c + step) % 10 }
    }
    let path = "\(dir)/corpus.txt"
    try FileIO.writeAtomically(path, bytes: Array(text.utf8))
    return path
}

private func bertJob(_ dir: String, nsp: Bool, masking: String, epochs: Int = 3) throws -> JobConfig {
    let t = nsp ? 19 : 18   // 16 text tokens and the specials
    return try taskJob("bert", task: ["type": "masked_lm", "nsp": .bool(nsp), "masking": .string(masking)], input: [t],
                       layers: [["type": "embedding", "vocab": 13, "dim": 32], ["type": "learned_positions"],
                                ["type": "repeat", "times": 2, "layer": ["type": "transformer_encoder_layer", "heads": 2, "ffn": 64,
                                                                         "dropout": 0, "norm_first": true]],
                                "layernorm", ["type": "linear", "out": .int(nsp ? 12 : 10)]],
                       data: ["train": .string(try corpus(dir)), "validation_fraction": 0.1,
                              "text": ["tokenizer": "char", "cache_dir": .string(dir)]], epochs: epochs, batch: 16, lr: 0.005)
}

@Test func maskingFollowsBERT() throws {
    let dir = Fixtures.tempDirectory("mlm-masks")
    let job = try bertJob(dir, nsp: true, masking: "static")
    let data = try JobData.load(job)
    let trainer = try Trainer(job: job, data: data, log: { _ in })
    let task = try #require(trainer.task as? MaskedLanguageModelTask)
    let b = Batch()
    data.train.gather(Array(0..<data.train.count)[...], into: b)
    task.prepare(b, salt: 0, partners: data.train)
    let n = b.count, t = 19, k = 2   // round(0.15 · 16) = 2 per sequence
    #expect(task.chosen == k)
    var masked = 0, random = 0, kept = 0, notNext = 0
    for i in 0..<n {
        let row = task.input.ids.data + i * t, block = b.ids.data + i * 16
        #expect(row[0] == 11 && row[9] == 12 && row[18] == 12, "[CLS] A [SEP] B [SEP]")
        let positions = Set(task.positions[(i * k)..<((i + 1) * k)])
        #expect(positions.count == k && positions.allSatisfy { $0 != 0 && $0 != 9 && $0 != 18 })
        for c in 0..<k {
            let p = task.positions[i * k + c], original = task.maskedLabels.data[i * k + c]
            let source = p < 9 ? block[p - 1] : (task.nspLabels.data[i] == 0 ? block[p - 2] : original)
            #expect(original == source)
            if row[p] == 10 { masked += 1 } else if row[p] == original { kept += 1 } else { random += 1 }
        }
        // Unchosen text positions are the data's tokens (A always; B when IsNext).
        for p in 1..<9 where !positions.contains(p) { #expect(row[p] == block[p - 1]) }
        if task.nspLabels.data[i] == 1 { notNext += 1 }
    }
    let total = Double(n * k)
    #expect(abs(Double(masked) / total - 0.8) < 0.06 && abs(Double(random + kept) / total - 0.2) < 0.06, "\(masked) \(random) \(kept)")
    #expect(abs(Double(notNext) / Double(n) - 0.5) < 0.12, "\(notNext) of \(n)")
    // Static masks repeat; dynamic ones (another salt) move.
    let first = task.positions
    task.prepare(b, salt: 0, partners: data.train)
    #expect(task.positions == first)
    task.prepare(b, salt: 12345, partners: data.train)
    #expect(task.positions != first)
}

@Test(.timeLimit(.minutes(10)))
func maskedLanguageModelAndNextSentenceLearn() throws {
    let dir = Fixtures.tempDirectory("mlm-train")
    let job = try bertJob(dir, nsp: true, masking: "static", epochs: 5)
    let (ev, _) = try trained(job)
    // Ten letters: guessing costs ln 10 nats per masked token and gets half of the pairs. (Static
    // masks of a corpus this repetitive can be memorised; the dynamic run below cannot.)
    #expect((ev["mlm_loss"] ?? 9) < 0.75 * log(10) && (ev["nsp_acc"] ?? 0) > 0.9, "\(ev.line)")
    try checkDataParallel(job)
    let roberta = try bertJob(dir, nsp: false, masking: "dynamic", epochs: 8)
    let (ev2, _) = try trained(roberta)
    #expect((ev2["mlm_loss"] ?? 9) < 0.75 * log(10) && ev2["nsp_acc"] == nil, "\(ev2.line)")
    try checkDataParallel(roberta)
}

@Test func maskedLanguageModelMistakesAreClearErrors() throws {
    let dir = Fixtures.tempDirectory("mlm-errors")
    func err(_ layers: [ConfigValue], input: Int = 19) throws -> String {
        let job = try taskJob("bert", task: ["type": "masked_lm"], input: [input], layers: layers,
                              data: ["train": .string(try corpus(dir)), "text": ["tokenizer": "char", "cache_dir": .string(dir)]], batch: 4)
        do { _ = try trained(job); return "no error" } catch { return "\(error)" }
    }
    let enc: ConfigValue = ["type": "transformer_encoder_layer", "heads": 2, "ffn": 8, "dropout": 0]
    #expect(try err([["type": "embedding", "vocab": 10, "dim": 4], enc, ["type": "linear", "out": 12]])
        .contains("the masked_lm task needs the text's 10 tokens and 3 specials ([MASK], [CLS], [SEP]): vocab 13"))
    #expect(try err([["type": "embedding", "vocab": 13, "dim": 4], enc, ["type": "linear", "out": 10]])
        .contains("the masked_lm task needs outputs [19, 12] (the 10 token logits and 2 next-sentence logits)"))
    #expect(try err([["type": "embedding", "vocab": 13, "dim": 4], enc, ["type": "linear", "out": 12]], input: 20)
        .contains("the model input minus 3 specials must be even, got 17"))
}

/// Fine-tuning: an encoder's weights into a classifier with a new head (names and shapes that
/// match are taken, the head stays initialised and is reported), on text labelled by file.
@Test func fineTuningTakesTheEncoderAndLeavesTheNewHead() throws {
    let dir = Fixtures.tempDirectory("mlm-finetune")
    let pre = try bertJob(dir, nsp: true, masking: "static", epochs: 1)
    let p = try Trainer(job: pre, data: try JobData.load(pre), log: { _ in })
    _ = try p.run()
    try p.saveCheckpoint(dir)
    let ckpt = try #require(Checkpoint.list(in: dir).last)
    try FileIO.makeDirectories("\(dir)/files")
    try FileIO.writeAtomically("\(dir)/files/rising", bytes: Array(String(repeating: "abcdefghij", count: 40).utf8))
    try FileIO.writeAtomically("\(dir)/files/falling", bytes: Array(String(repeating: "jhfdb", count: 80).utf8))
    let fine = try taskJob("cls", task: "classification", input: [19],
                           layers: [["type": "embedding", "vocab": 13, "dim": 32], ["type": "learned_positions"],
                                    ["type": "repeat", "times": 2, "layer": ["type": "transformer_encoder_layer", "heads": 2, "ffn": 64,
                                                                             "dropout": 0, "norm_first": true]],
                                    "layernorm", ["type": "sequence_pool", "mode": "mean"], ["type": "linear", "out": 2]],
                           data: ["train": .string("\(dir)/files"), "test_fraction": 0.25,
                                  "text": ["tokenizer": "char", "cache_dir": .string(dir), "labels": "file"]], epochs: 6, batch: 4, lr: 0.003)
    let data = try JobData.load(fine)
    #expect(data.info.classNames == ["falling", "rising"])
    #expect(data.train.count + data.test!.count == 2 * (400 / 19))
    let t = try Trainer(job: fine, data: data, log: { _ in })
    let r = try t.initialize(fromWeights: ckpt, partial: true)
    #expect(r.fresh == ["5.weight", "5.bias"])
    #expect(r.unused.sorted() == ["4.bias", "4.weight"])
    let s = try t.run()
    #expect((s.lastEvaluation?.accuracy ?? 0) > 0.95, "\(s.lastEvaluation?.line ?? "")")
    let strict = try Trainer(job: fine, data: data, log: { _ in })
    #expect(throws: (any Error).self) { try strict.initialize(fromWeights: ckpt) }
}

import Config
import Datasets
import Formats
import TestSupport
import Testing

@Test func textBlocksAreTheCorpusShiftedByOne() throws {
    let dir = Fixtures.tempDirectory("text")
    try FileIO.writeAtomically("\(dir)/a", bytes: Array("hello world, ".utf8))
    try FileIO.writeAtomically("\(dir)/b", bytes: Array("héllo again!".utf8))
    try FileIO.writeAtomically("\(dir)/b.dat", bytes: [0xFF, 0xFE])          // excluded by pattern
    let cache = Fixtures.tempDirectory("cache")
    let d = try load(["train": .string(dir), "text": ["exclude": ["*.dat"], "cache_dir": .string(cache)]], context: 4)
    let corpus = Array("hello world, héllo again!".utf8)
    #expect(d.info.tokenizer == .bytes)
    #expect(d.train.count == (corpus.count - 1) / 4)
    #expect(d.train.input == FieldSpec(.ids, shape: [4], count: 256) && d.train.target == FieldSpec(.classes, shape: [4], count: 256))
    let b = Batch()
    d.train.gather([0, 2], into: b)
    #expect(b.ids.array == (corpus[0..<4] + corpus[8..<12]).map { Int32($0) })
    #expect(b.labels.array == (corpus[1..<5] + corpus[9..<13]).map { Int32($0) })
    // Tokenized once: the cache file is there, and a second load maps it.
    let cached = FileIO.list(cache).filter { $0.hasPrefix("tokens-") && $0.hasSuffix(".npy") }
    #expect(cached.count == 1)
    _ = try load(["train": .string(dir), "text": ["exclude": ["*.dat"], "cache_dir": .string(cache)]], context: 4)
    #expect(FileIO.list(cache).count == 1)

    // Characters: the vocabulary is the corpus's sorted characters (é is one token).
    let c = try load(["train": .string(dir), "text": ["tokenizer": "char", "exclude": ["*.dat"], "cache_dir": .string(cache)]], context: 4)
    let t = try #require(c.info.tokenizer)
    let chars = Array(Set("hello world, héllo again!".unicodeScalars)).sorted { $0.value < $1.value }.map { String($0) }
    #expect(t.kind == .char && t.symbols == chars)
    #expect(t.byteLengths[t.symbols.firstIndex(of: "é")!] == 2)
    c.train.gather([3], into: b)
    let text = Array("hello world, héllo again!".unicodeScalars).map { String($0) }
    #expect(t.decode(b.ids.array) == text[12..<16].joined() && t.decode(b.labels.array) == text[13..<17].joined())
}

/// Held-out text is the stream's last blocks (validation, then test) unless `holdout: blocks`.
@Test func textHoldoutIsTheTailOfTheStream() throws {
    let dir = Fixtures.tempDirectory("text-tail")
    let corpus = (0..<201).map { UInt8(32 + $0 % 90) }
    try FileIO.writeAtomically("\(dir)/a", bytes: corpus)
    let cache = Fixtures.tempDirectory("cache-tail")
    let d = try load(["train": .string(dir), "validation_fraction": 0.1, "test_fraction": 0.2, "text": ["cache_dir": .string(cache)]],
                     context: 4)
    #expect(d.train.count == 35 && d.validation?.count == 5 && d.test?.count == 10)
    let b = Batch()
    d.validation!.gather([0, 4], into: b)
    #expect(b.ids.array == (corpus[140..<144] + corpus[156..<160]).map { Int32($0) })
    d.test!.gather([9], into: b)
    #expect(b.labels.array == corpus[197..<201].map { Int32($0) })
    d.train.gather([34], into: b)
    #expect(b.ids.array == corpus[136..<140].map { Int32($0) })
    let r = try load(["train": .string(dir), "validation_fraction": 0.1, "test_fraction": 0.2,
                      "text": ["cache_dir": .string(cache), "holdout": "blocks"]], context: 4)
    r.validation!.gather(Array(0..<5)[...], into: b)
    #expect(b.ids.array != corpus[140..<160].map { Int32($0) })

    // stride 1: a training window at every offset before the held-out tail, none reaching into it.
    let w = try load(["train": .string(dir), "validation_fraction": 0.1, "test_fraction": 0.2,
                      "text": ["cache_dir": .string(cache), "stride": 1]], context: 4)
    #expect(w.train.count == 137 && w.validation?.count == 5)
    w.train.gather([5, 136], into: b)
    #expect(b.ids.array == (corpus[5..<9] + corpus[136..<140]).map { Int32($0) })
    #expect(b.labels.array == (corpus[6..<10] + corpus[137..<141]).map { Int32($0) })
    #expect(loadError(["train": .string(dir), "validation_fraction": 0.1, "text": ["holdout": "blocks", "stride": 2]], context: 4)
        .contains("holdout: tail"))
}

@Test func brokenTextIsAClearError() throws {
    let dir = Fixtures.tempDirectory("text-bad")
    try FileIO.writeAtomically("\(dir)/latin1.txt", bytes: Array("caf".utf8) + [0xE9] + Array(" au lait".utf8))
    let cache = Fixtures.tempDirectory("cache")
    #expect(loadError(["train": .string("\(dir)/latin1.txt"), "text": ["cache_dir": .string(cache)]], context: 4)
        == "\(dir)/latin1.txt: is not valid UTF-8 at byte offset 3 (set data.text.encoding: bytes to train on raw bytes with the byte tokenizer)")
    // As raw bytes it trains.
    let raw = try load(["train": .string("\(dir)/latin1.txt"), "text": ["encoding": "bytes", "cache_dir": .string(cache)]], context: 4)
    #expect(raw.train.count == 2)
    #expect(loadError(["train": .string("\(dir)/latin1.txt"), "text": ["encoding": "bytes", "cache_dir": .string(cache)]])
        .contains("data.text.context: required"))
    #expect(loadError(["train": .string("\(dir)/latin1.txt"), "text": ["encoding": "bytes", "context": 8, "cache_dir": .string(cache)]], context: 4)
        .contains("data.text.context is 8 but the model reads 4 tokens"))
    #expect(loadError(["train": .string("\(dir)/latin1.txt"), "text": ["encoding": "bytes", "cache_dir": .string(cache)]], context: 64)
        .contains("12 tokens are too few for one block of 64 + 1"))
    #expect(loadError(["train": .string(dir), "text": ["include": "*.md", "cache_dir": .string(cache)]], context: 4)
        .contains("no files match include"))
    // A character the checkpoint's vocabulary does not have.
    try FileIO.writeAtomically("\(dir)/ok.txt", bytes: Array("abcabcabcabc".utf8))
    var known = DataInfo()
    known.tokenizer = Tokenizer(kind: .char, symbols: ["a", "b"])
    do {
        _ = try DataLoading.load(try dataConfig(["train": .string("\(dir)/ok.txt"), "text": ["tokenizer": "char", "cache_dir": .string(cache)]]),
                                 .init(input: .ids, target: .classes, seed: 0, context: 4, known: known))
        Issue.record("expected an unknown-character error")
    } catch {
        #expect("\(error)" == "\(dir)/ok.txt: character U+63 at byte offset 2 is not in the tokenizer's vocabulary")
    }
}

@Test func strideAndFileLabelsRefuseWhatTheyCannotDo() throws {
    let dir = Fixtures.tempDirectory("text-labels-bad")
    let cache = Fixtures.tempDirectory("cache")
    try FileIO.makeDirectories("\(dir)/train")
    try FileIO.writeAtomically("\(dir)/train/a", bytes: Array(String(repeating: "abcd", count: 20).utf8))
    try FileIO.writeAtomically("\(dir)/other", bytes: Array(String(repeating: "dcba", count: 20).utf8))
    // Random held-out blocks would overlap windows that start at every offset.
    #expect(loadError(["train": .string("\(dir)/train/a"), "validation_fraction": 0.1,
                       "text": ["holdout": "blocks", "stride": 1, "cache_dir": .string(cache)]], context: 4)
        .contains("data.text.stride: overlapping training windows need holdout: tail"))
    // A validation file that is not one of the training files has no class.
    #expect(loadError(["train": .string("\(dir)/train"), "validation": .string("\(dir)/other"),
                       "text": ["labels": "file", "cache_dir": .string(cache)]], context: 4)
        .contains("the validation file other is not one of the training files (the classes: a)"))
}

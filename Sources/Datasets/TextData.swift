import Formats
import Glibc

/// Text corpora for language modelling: files (or directories of them) read as bytes or
/// checked UTF-8, tokenized by bytes or by characters, written once to a token file (a .npy
/// array in a content-addressed cache, memory-mapped afterwards) and cut into blocks of the
/// context length.
enum TextData {
    static func load(_ c: DataConfig, _ req: DataLoading.Request) throws -> DataLoading.Raw {
        let o = c.text
        guard let context = o.context ?? req.context else {
            throw FileError(c.train!.inputs.joined(separator: ", "), "data.text.context: required (tokens per sample)")
        }
        if let k = o.context, let m = req.context, k != m {
            throw FileError(c.train!.inputs[0], "data.text.context is \(k) but the model reads \(m) tokens")
        }
        let splits: [(String, DataConfig.Files?)] = [("train", c.train), ("validation", c.validation), ("test", c.test)]
        var texts: [(String, [(path: String, bytes: [UInt8])])] = []
        for (name, f) in splits {
            guard let f else { continue }
            texts.append((name, try read(f, o)))
        }
        let tokenizer = req.known?.tokenizer
            ?? (o.tokenizer == .byte ? .bytes : Tokenizer.characters(of: texts.flatMap { $0.1.map { String(decoding: $0.bytes, as: UTF8.self) } }))
        if o.labels == .file { return try labelled(texts, tokenizer, context: context, o, req) }
        var sources: [String: DataSource] = [:]
        for (name, files) in texts {
            let tokens = try tokenize(files, tokenizer, cacheDir: o.cacheDir)
            let label = files.count == 1 ? files[0].path : "\(name) text (\(files.count) files)"
            let blocks = tokens.rows > 0 ? (tokens.rows - 1) / context : 0
            guard blocks > 0 else {
                throw FileError(files.map(\.path).joined(separator: ", "), "\(tokens.rows) tokens are too few for one block of \(context) + 1")
            }
            guard name == "train" else {
                sources[name] = TokenBlocks(name: label, tokens: tokens, context: context, vocabulary: tokenizer.size)
                continue
            }
            // Held-out fractions of the training text: its last blocks, contiguous (validation,
            // then test); the training windows (at data.text.stride) stay before them.
            let nv = o.holdout == .tail ? Int((Double(blocks) * c.validationFraction).rounded()) : 0
            let nt = o.holdout == .tail ? Int((Double(blocks) * c.testFraction).rounded()) : 0
            let trainBlocks = blocks - nv - nt
            guard trainBlocks > 0 else { throw FileError(label, "the held-out fractions leave no block of \(context) tokens to train on") }
            func span(_ from: Int, _ n: Int) -> Range<Int> { (from * context)..<((from + n) * context + 1) }
            sources["train"] = TokenBlocks(name: label, tokens: tokens, context: context, vocabulary: tokenizer.size,
                                           range: span(0, trainBlocks), stride: o.stride)
            if nv > 0 {
                sources["validation"] = TokenBlocks(name: label + "[validation]", tokens: tokens, context: context,
                                                    vocabulary: tokenizer.size, range: span(trainBlocks, nv))
            }
            if nt > 0 {
                sources["test"] = TokenBlocks(name: label + "[test]", tokens: tokens, context: context, vocabulary: tokenizer.size,
                                              range: span(trainBlocks + nv, nt))
            }
        }
        var raw = DataLoading.Raw(train: sources["train"]!, validation: sources["validation"], test: sources["test"])
        raw.info.tokenizer = tokenizer
        return raw
    }

    /// Classification by source file: every file's blocks of `context` tokens, labelled with the
    /// file's name (the training split's files are the classes, sorted by name).
    static func labelled(_ texts: [(String, [(path: String, bytes: [UInt8])])], _ t: Tokenizer, context: Int,
                         _ o: DataConfig.TextOptions, _ req: DataLoading.Request) throws -> DataLoading.Raw {
        func base(_ p: String) -> String { String(p.split(separator: "/").last ?? Substring(p)) }
        let classes = req.known?.classNames ?? Array(Set(texts[0].1.map { base($0.path) })).sorted()
        var sources: [String: DataSource] = [:]
        for (name, files) in texts {
            let tokens = try tokenize(files, t, cacheDir: o.cacheDir)
            var starts: [Int] = [], labels: [Int32] = []
            var offset = 0
            for f in files {
                let n = t.kind == .byte ? f.bytes.count : t.encode(f.bytes).ids.count
                guard let label = classes.firstIndex(of: base(f.path)) else {
                    throw FileError(f.path, "the \(name) file \(base(f.path)) is not one of the training files (the classes: \(classes.joined(separator: ", ")))")
                }
                for b in 0..<(n / context) {
                    starts.append(offset + b * context)
                    labels.append(Int32(label))
                }
                offset += n
            }
            let label = files.count == 1 ? files[0].path : "\(name) text (\(files.count) files)"
            guard !starts.isEmpty else { throw FileError(label, "no file holds a block of \(context) tokens") }
            sources[name] = LabelledBlocks(name: label, tokens: tokens, context: context, vocabulary: t.size, starts: starts,
                                           labels: labels, classes: classes.count)
        }
        var raw = DataLoading.Raw(train: sources["train"]!, validation: sources["validation"], test: sources["test"])
        raw.info.tokenizer = t
        raw.info.classNames = classes
        return raw
    }

    /// The files of a split (directories expanded by the include/exclude patterns), checked.
    static func read(_ f: DataConfig.Files, _ o: DataConfig.TextOptions) throws -> [(path: String, bytes: [UInt8])] {
        var paths: [String] = []
        for p in f.inputs {
            if FileIO.isDirectory(p) {
                let names = FileIO.list(p).filter { n in
                    o.include.contains { glob($0, n) } && !o.exclude.contains { glob($0, n) } && FileIO.isRegularFile("\(p)/\(n)")
                }
                guard !names.isEmpty else { throw FileError(p, "no files match include \(o.include) / exclude \(o.exclude)") }
                paths += names.map { "\(p)/\($0)" }
            } else {
                paths.append(p)
            }
        }
        return try paths.map { path in
            let b = try FileIO.readDecompressed(path)
            if o.encoding == .utf8, let bad = firstInvalidUTF8(b) {
                throw FileError(path, "is not valid UTF-8 at byte offset \(bad) (set data.text.encoding: bytes to train on raw bytes with the byte tokenizer)")
            }
            return (path, b)
        }
    }

    /// Token ids of the files, from the cache or tokenized now and cached.
    static func tokenize(_ files: [(path: String, bytes: [UInt8])], _ t: Tokenizer, cacheDir: String?) throws -> Column {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        func mix<S: Sequence>(_ s: S) where S.Element == UInt8 { for b in s { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 } }
        mix(t.kind.rawValue.utf8)
        for s in t.symbols { mix(s.utf8); mix([0]) }
        for f in files { mix(f.bytes); mix([0xFF, 0xFE]) }
        let dir = cacheDir ?? defaultCacheDirectory
        let path = "\(dir)/tokens-\(String(h, radix: 16)).npy"
        if !FileIO.exists(path) {
            var ids: [Int32] = []
            for f in files {
                let (e, unknown) = t.encode(f.bytes)
                if let u = unknown {
                    throw FileError(f.path, "character U+\(String(u.scalar.value, radix: 16, uppercase: true)) at byte offset \(u.offset) is not in the tokenizer's vocabulary")
                }
                ids += e
            }
            let type: ElementType = t.size <= 65536 ? .u2 : .i4
            let data: [UInt8] = type == .u2
                ? ids.map { UInt16($0) }.withUnsafeBytes { Array($0) }
                : ids.withUnsafeBytes { Array($0) }
            try FileIO.makeDirectories(dir)
            try FileIO.writeAtomically(path, bytes: NPY.image(type: type, shape: [ids.count], data: data))
        }
        let a = try NPY.read(path)
        guard a.header.shape.count == 1 else { throw FileError(path, "token cache file is not 1-D; delete it to rebuild") }
        return Column(base: a.data, keeper: a.file, rows: a.header.shape[0], sampleShape: [], type: a.header.type,
                      bigEndian: a.header.bigEndian)
    }

    /// $RINGTRAIN_CACHE, else $XDG_CACHE_HOME/ringtrain, else ~/.cache/ringtrain.
    static var defaultCacheDirectory: String {
        if let e = getenv("RINGTRAIN_CACHE") { return String(cString: e) }
        if let x = getenv("XDG_CACHE_HOME") { return String(cString: x) + "/ringtrain" }
        if let home = getenv("HOME") { return String(cString: home) + "/.cache/ringtrain" }
        return "/tmp/ringtrain-cache"
    }

    /// Offset of the first byte that does not belong to a valid UTF-8 sequence.
    static func firstInvalidUTF8(_ b: [UInt8]) -> Int? {
        var i = 0
        while i < b.count {
            let c = b[i]
            let n: Int
            if c < 0x80 { n = 1 } else if c >> 5 == 0x6 && c >= 0xC2 { n = 2 } else if c >> 4 == 0xE { n = 3 }
            else if c >> 3 == 0x1E && c <= 0xF4 { n = 4 } else { return i }
            guard i + n <= b.count else { return i }
            for k in 1..<n where b[i + k] >> 6 != 0x2 { return i }
            if n == 3 {
                let cp = (Int(c & 0x0F) << 12) | (Int(b[i + 1] & 0x3F) << 6)
                if cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF) { return i }
            }
            if n == 4 {
                let cp = (Int(c & 0x07) << 18) | (Int(b[i + 1] & 0x3F) << 12)
                if cp < 0x10000 || cp > 0x10FFFF { return i }
            }
            i += n
        }
        return nil
    }

    /// Shell-style match of `name` against `pattern` (* any run, ? one character).
    static func glob(_ pattern: String, _ name: String) -> Bool {
        let p = Array(pattern.unicodeScalars), s = Array(name.unicodeScalars)
        func m(_ i: Int, _ j: Int) -> Bool {
            if i == p.count { return j == s.count }
            if p[i] == "*" { return m(i + 1, j) || (j < s.count && m(i, j + 1)) }
            return j < s.count && (p[i] == "?" || p[i] == s[j]) && m(i + 1, j + 1)
        }
        return m(0, 0)
    }
}

import Formats

/// IDX files (MNIST, Fashion-MNIST): images of unsigned bytes scaled to [0, 1] and byte labels.
/// A named dataset reads `train-images-idx3-ubyte[.gz]` etc. from its directory; other IDX data
/// names its files (`train: {inputs: images.idx, targets: labels.idx}`).
enum IDXData {
    static func load(_ c: DataConfig, _ req: DataLoading.Request) throws -> DataLoading.Raw {
        if let name = c.dataset {
            let dir = c.path ?? DataConfig.namedDatasets[name]!
            let train = try named(name, dir, "train", req), test = try named(name, dir, "t10k", req)
            var raw = DataLoading.Raw(train: train, test: test)
            if let v = c.validation { raw.validation = try files(v, "validation", req) }
            return raw
        }
        var raw = DataLoading.Raw(train: try files(c.train!, "train", req))
        if let v = c.validation { raw.validation = try files(v, "validation", req) }
        if let t = c.test { raw.test = try files(t, "test", req) }
        try checkSameShape(raw)
        return raw
    }

    static func checkSameShape(_ raw: DataLoading.Raw) throws {
        for d in [raw.validation, raw.test].compactMap({ $0 }) where d.input.shape != raw.train.input.shape {
            throw FileError(d.name, "samples have shape \(d.input.shape), the training data's have \(raw.train.input.shape)")
        }
    }

    /// `<split>-images-idx3-ubyte[.gz]` and `<split>-labels-idx1-ubyte[.gz]` in `dir`.
    static func named(_ name: String, _ dir: String, _ split: String, _ req: DataLoading.Request) throws -> DataSource {
        func file(_ kind: String) throws -> String {
            let base = "\(dir)/\(split)-\(kind)"
            for p in [base + ".gz", base] where FileIO.exists(p) { return p }
            if !FileIO.isDirectory(dir) {
                let hint = name == "fashion-mnist"
                    ? "Install it with scripts/bootstrap (Debian package dataset-fashion-mnist)"
                    : "Put the \(name) IDX files there"
                throw FileError(dir, "\(name) not found: no such directory. \(hint), or give the directory holding the IDX files with --data DIR or data.path")
            }
            throw FileError(base + ".gz", "\(name) file not found in \(dir) (looked for \(split)-\(kind) and \(split)-\(kind).gz)")
        }
        let images = try file("images-idx3-ubyte"), labels = try file("labels-idx1-ubyte")
        return try pair(images, labels, "\(name)/\(split == "train" ? "train" : "test")", req, classes: 10)
    }

    static func files(_ f: DataConfig.Files, _ split: String, _ req: DataLoading.Request) throws -> DataSource {
        guard f.inputs.count == 1 else { throw FileError(f.inputs.joined(separator: ", "), "idx data takes one inputs file per split") }
        if req.target != .none && f.targets == nil {
            throw FileError(f.inputs[0], "the \(split) split needs a targets file ({inputs: …, targets: …})")
        }
        return try pair(f.inputs[0], req.target == .none ? nil : f.targets, f.inputs[0], req, classes: nil)
    }

    static func pair(_ imagePath: String, _ labelPath: String?, _ name: String, _ req: DataLoading.Request, classes: Int?) throws -> DataSource {
        let images = try IDX.read(imagePath)
        let n = images.dims[0]
        let sample: [Int]
        switch images.dims.count {
        case 1: sample = [1]
        case 2: sample = [images.dims[1]]
        case 3: sample = [1, images.dims[1], images.dims[2]]
        default: sample = Array(images.dims.dropFirst())
        }
        let input: FieldSpec
        let inputs: Column
        if req.input == .ids {
            inputs = Column(bytes: images.bytes, rows: n, sampleShape: sample, type: .u1)
            input = FieldSpec(.ids, shape: sample, count: 256)
        } else {
            inputs = Column(bytes: images.bytes, rows: n, sampleShape: sample, type: .u1, rawScale: 1 / 255)
            input = FieldSpec(.values, shape: sample)
        }
        guard let labelPath, req.target != .none else {
            return ArrayDataset(name: name, inputs: inputs, input: input, targets: nil, target: nil)
        }
        let labels = try IDX.read(labelPath)
        guard labels.dims.count == 1 else {
            throw FileError(labelPath, "expected 1 dimension [count], found \(labels.dims)")
        }
        guard labels.dims[0] == n else {
            throw FileError(labelPath, "holds \(labels.dims[0]) labels but \(imagePath) holds \(n) images")
        }
        if req.target == .classes {
            let k = classes ?? req.known?.target?.count ?? Int(labels.bytes.max() ?? 0) + 1
            if let bad = labels.bytes.firstIndex(where: { Int($0) >= k }) {
                throw FileError(labelPath, "label \(labels.bytes[bad]) at index \(bad) is outside 0..<\(k)")
            }
            let col = Column(bytes: labels.bytes, rows: n, sampleShape: [], type: .u1)
            col.classes = k
            return ArrayDataset(name: name, inputs: inputs, input: input, targets: col, target: FieldSpec(.classes, shape: [], count: k))
        }
        let col = Column(bytes: labels.bytes, rows: n, sampleShape: [1], type: .u1)
        return ArrayDataset(name: name, inputs: inputs, input: input, targets: col, target: FieldSpec(.values, shape: [1]))
    }
}

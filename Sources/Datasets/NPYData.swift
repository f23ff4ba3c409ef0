import Formats

/// NumPy arrays (`train: {inputs: x.npy, targets: y.npy}`), memory-mapped: rows are converted
/// to Float32 (or Int32 for ids and classes) only as batches gather them, so an array larger
/// than the process may hold trains from the page cache.
enum NPYData {
    static func load(_ c: DataConfig, _ req: DataLoading.Request) throws -> DataLoading.Raw {
        var raw = DataLoading.Raw(train: try split(c.train!, "train", req, known: req.known))
        let known = req.known ?? { var i = DataInfo(); i.input = raw.train.input; i.target = raw.train.target; return i }()
        if let v = c.validation { raw.validation = try split(v, "validation", req, known: known) }
        if let t = c.test { raw.test = try split(t, "test", req, known: known) }
        try IDXData.checkSameShape(raw)
        return raw
    }

    static func column(_ path: String) throws -> Column {
        let a = try NPY.read(path)
        guard let n = a.header.shape.first else { throw FileError(path, "is a scalar array; expected [samples, …]") }
        let sample = a.header.shape.count == 1 ? [] : Array(a.header.shape.dropFirst())
        return Column(base: a.data, keeper: a.file, rows: n, sampleShape: sample, type: a.header.type, bigEndian: a.header.bigEndian)
    }

    static func split(_ f: DataConfig.Files, _ name: String, _ req: DataLoading.Request, known: DataInfo?) throws -> DataSource {
        guard f.inputs.count == 1 else { throw FileError(f.inputs.joined(separator: ", "), "npy data takes one inputs file per split") }
        let path = f.inputs[0]
        var inputs = try column(path)
        let input: FieldSpec
        if req.input == .ids {
            guard inputs.type.isInteger || inputs.firstNonIntegral() == nil else {
                throw FileError(path, "holds \(inputs.type.rawValue) values; a model starting with an embedding needs integer ids")
            }
            let k = known?.input?.count ?? inputs.maxPlusOne()
            if let bad = inputs.firstOutside(k) {
                throw FileError(path, "id \(bad.value) at element \(bad.index) is outside the vocabulary 0..<\(k)")
            }
            input = FieldSpec(.ids, shape: inputs.sampleShape, count: k)
        } else {
            if inputs.sampleShape.isEmpty { inputs = inputs.reshaped([1]) }
            input = FieldSpec(.values, shape: inputs.sampleShape)
        }
        guard req.target != .none else { return ArrayDataset(name: path, inputs: inputs, input: input, targets: nil, target: nil) }
        guard let tp = f.targets else { throw FileError(path, "the \(name) split needs a targets file ({inputs: \(path), targets: …})") }
        var targets = try column(tp)
        guard targets.rows == inputs.rows else {
            throw FileError(tp, "holds \(targets.rows) rows, \(path) holds \(inputs.rows)")
        }
        if req.target == .classes {
            if let bad = targets.firstNonIntegral() {
                throw FileError(tp, "class targets must be integers; element \(bad.index) is \(bad.value)")
            }
            let k = known?.target?.count ?? targets.maxPlusOne()
            if let bad = targets.firstOutside(k) {
                throw FileError(tp, "class \(bad.value) at element \(bad.index) is outside 0..<\(k)")
            }
            targets.classes = k
            return ArrayDataset(name: path, inputs: inputs, input: input, targets: targets,
                                target: FieldSpec(.classes, shape: targets.sampleShape, count: k))
        }
        if targets.sampleShape.isEmpty { targets = targets.reshaped([1]) }
        return ArrayDataset(name: path, inputs: inputs, input: input, targets: targets, target: FieldSpec(.values, shape: targets.sampleShape))
    }
}

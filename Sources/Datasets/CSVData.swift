import Config
import Formats

/// Delimited text tables: feature and target columns by name (or index without a header),
/// numbers or categories (strings one-hot encoded for features, class indices for targets, the
/// vocabularies taken from the training file and saved in checkpoints), missing cells an error
/// naming line and column unless `data.csv.fill` says what to put there.
enum CSVData {
    static func load(_ c: DataConfig, _ req: DataLoading.Request) throws -> DataLoading.Raw {
        let o = c.csv
        let trainTable = try read(c.train!, o)
        let encoding = try Encoding(trainTable, o, req, source: c.train!.inputs[0], forecasting: c.window != nil)
        var raw = DataLoading.Raw(train: try encoding.dataset(trainTable, name: c.train!.inputs[0]))
        if let v = c.validation { raw.validation = try encoding.dataset(try read(v, o), name: v.inputs[0]) }
        if let t = c.test { raw.test = try encoding.dataset(try read(t, o), name: t.inputs[0]) }
        raw.info.classNames = encoding.classNames
        raw.info.featureColumns = encoding.features.map(\.name)
        for f in encoding.features { if let cats = f.categories { raw.info.categories[f.name] = cats } }
        return raw
    }

    /// A split's table and, if targets live in a second file, that table.
    struct Tables {
        var main: CSV.Table
        var mainPath: String
        var targets: CSV.Table?
        var targetsPath: String?
    }

    static func read(_ f: DataConfig.Files, _ o: DataConfig.CSVOptions) throws -> Tables {
        guard f.inputs.count == 1 else { throw FileError(f.inputs.joined(separator: ", "), "csv data takes one file per split") }
        let delim: CSV.Delimiter = o.delimiter == "whitespace" ? .whitespace : .character(o.delimiter.utf8.first!)
        let main = try CSV.read(f.inputs[0], delimiter: delim, header: o.header, skipRows: o.skipRows)
        guard let tp = f.targets else { return Tables(main: main, mainPath: f.inputs[0]) }
        let t = try CSV.read(tp, delimiter: delim, header: o.header, skipRows: o.skipRows)
        guard t.rows.count == main.rows.count else {
            throw FileError(tp, "has \(t.rows.count) rows, \(f.inputs[0]) has \(main.rows.count)")
        }
        return Tables(main: main, mainPath: f.inputs[0], targets: t, targetsPath: tp)
    }

    static func isMissing(_ s: String) -> Bool {
        let t = s.trimming(" \t")
        return t.isEmpty || t == "NA" || t == "N/A" || t == "NaN" || t == "nan" || t == "?" || t == "null"
    }

    static func number(_ s: String) -> Double? {
        guard let d = Double(s.trimming(" \t")), d.isFinite else { return nil }
        return d
    }

    /// How the training table's columns become features and targets; applied to every split.
    struct Encoding {
        struct Feature {
            var name: String
            var index: Int
            var categories: [String]?
            var fill: Double?
        }
        var features: [Feature] = []
        var targetIndices: [Int] = []
        var targetNames: [String] = []
        var targetFill: [Double?] = []
        var classNames: [String]?
        var classCount: Int?
        var byIndex = false
        let req: DataLoading.Request
        let options: DataConfig.CSVOptions

        /// forecasting: targets are also features (a window of past rows predicts the next rows'
        /// targets, so the target's own history is an input).
        init(_ t: Tables, _ o: DataConfig.CSVOptions, _ req: DataLoading.Request, source: String, forecasting: Bool = false) throws {
            self.req = req
            options = o
            let main = t.main
            func resolve(_ ref: String, in table: CSV.Table, _ path: String, key: String) throws -> Int {
                if let i = table.columns.firstIndex(of: ref) { return i }
                if let i = Int(ref), i >= 0, i < table.columns.count { return i }
                let hint = closestColumn(ref, table.columns)
                throw FileError(path, "data.csv.\(key): no column \"\(ref)\"\(hint) (columns: \(table.columns.joined(separator: ", ")))")
            }
            // Targets.
            let targetTable = t.targets ?? main, targetPath = t.targetsPath ?? t.mainPath
            if req.target != .none {
                var refs = o.targets
                if refs.isEmpty {
                    guard t.targets != nil else {
                        throw FileError(t.mainPath, "data.csv.targets: required: the target column(s) (columns: \(main.columns.joined(separator: ", ")))")
                    }
                    refs = targetTable.columns
                }
                targetIndices = try refs.map { try resolve($0, in: targetTable, targetPath, key: "targets") }
                targetNames = targetIndices.map { targetTable.columns[$0] }
                if req.target == .classes && targetIndices.count != 1 {
                    throw FileError(targetPath, "data.csv.targets: a classification task takes one target column, got \(targetNames.joined(separator: ", "))")
                }
            }
            // Features.
            let ignored = try Set(o.ignore.map { try resolve($0, in: main, t.mainPath, key: "ignore") })
            let targetsHere = t.targets == nil && !forecasting ? Set(targetIndices) : []
            let featureIdx = try o.features.map { try $0.map { try resolve($0, in: main, t.mainPath, key: "features") } }
                ?? main.columns.indices.filter { !ignored.contains($0) && !targetsHere.contains($0) }
            guard !featureIdx.isEmpty else { throw FileError(t.mainPath, "no feature columns left (all are targets or ignored)") }
            if let clash = featureIdx.first(where: { targetsHere.contains($0) }) {
                throw FileError(t.mainPath, "column \"\(main.columns[clash])\" is both a feature and a target")
            }
            let categorical = try Set(o.categorical.map { try resolve($0, in: main, t.mainPath, key: "categorical") })
            for i in featureIdx {
                let name = main.columns[i]
                var f = Feature(name: name, index: i)
                if categorical.contains(i) {
                    f.categories = req.known?.categories[name]
                        ?? Array(Set(main.rows.map { $0[i] }.filter { !isMissing($0) })).sorted()
                } else {
                    f.fill = try fillValue(name, column: i, main, t.mainPath)
                }
                features.append(f)
            }
            // Classes: by index when the training column holds only non-negative integers, else by name.
            if req.target == .classes {
                let col = targetIndices[0]
                let cells = targetTable.rows.map { $0[col].trimming(" \t") }
                byIndex = cells.allSatisfy { number($0).map { $0 >= 0 && $0.rounded() == $0 } ?? false }
                if byIndex {
                    classNames = req.known?.classNames ?? o.classNames
                    classCount = req.known?.target?.count ?? o.classNames?.count
                        ?? (cells.compactMap { number($0) }.map { Int($0) }.max() ?? 0) + 1
                } else {
                    classNames = req.known?.classNames ?? o.classNames ?? Array(Set(cells.filter { !isMissing($0) })).sorted()
                    classCount = classNames!.count
                }
            } else if req.target == .values {
                targetFill = try targetIndices.map { try fillValue(targetTable.columns[$0], column: $0, targetTable, targetPath) }
            }
        }

        func fillValue(_ name: String, column i: Int, _ table: CSV.Table, _ path: String) throws -> Double? {
            guard let f = options.fill[name] ?? options.fill["*"] else { return nil }
            switch f {
            case .value(let v): return v
            case .mean:
                let vals = table.rows.compactMap { isMissing($0[i]) ? nil : number($0[i]) }
                guard !vals.isEmpty else { throw FileError(path, "column \"\(name)\" has no numbers to take a mean of") }
                return vals.reduce(0, +) / Double(vals.count)
            }
        }

        var width: Int { features.reduce(0) { $0 + ($1.categories?.count ?? 1) } }

        func dataset(_ t: Tables, name: String) throws -> DataSource {
            let main = t.main, n = main.rows.count
            // Other splits' files are matched to the training file's columns by name.
            let cols = try options.header ? features.map { f in
                guard let i = main.columns.firstIndex(of: f.name) else {
                    throw FileError(t.mainPath, "no column \"\(f.name)\" (the training file has it)")
                }
                return i
            } : features.map(\.index)
            var x = [Float](repeating: 0, count: n * width)
            let w = width
            for (r, row) in main.rows.enumerated() {
                var k = r * w
                for (fi, f) in features.enumerated() {
                    guard cols[fi] < row.count else { throw FileError(t.mainPath, "line \(main.lines[r]): no column \"\(f.name)\"") }
                    let cell = row[cols[fi]]
                    if let cats = f.categories {
                        if !isMissing(cell) {
                            guard let c = cats.firstIndex(of: cell) else {
                                throw FileError(t.mainPath, "line \(main.lines[r]), column \"\(f.name)\": category \"\(cell)\" does not occur in the training data (known: \(cats.prefix(12).joined(separator: ", ")))")
                            }
                            x[k + c] = 1
                        }
                        k += cats.count
                        continue
                    }
                    if isMissing(cell) {
                        guard let v = f.fill else {
                            throw FileError(t.mainPath, "line \(main.lines[r]), column \"\(f.name)\": missing value (set data.csv.fill to a number or \"mean\")")
                        }
                        x[k] = Float(v)
                    } else {
                        guard let v = number(cell) else {
                            throw FileError(t.mainPath, "line \(main.lines[r]), column \"\(f.name)\": \"\(cell)\" is not a number (list the column under data.csv.categorical to one-hot encode it)")
                        }
                        x[k] = Float(v)
                    }
                    k += 1
                }
            }
            let inputs = Column(floats: x, sampleShape: [w])
            let input = FieldSpec(.values, shape: [w])
            guard req.target != .none else { return ArrayDataset(name: name, inputs: inputs, input: input, targets: nil, target: nil) }
            let table = t.targets ?? main, path = t.targetsPath ?? t.mainPath
            let tcols = try options.header ? targetNames.map { name in
                guard let i = table.columns.firstIndex(of: name) else { throw FileError(path, "no target column \"\(name)\"") }
                return i
            } : targetIndices
            if req.target == .classes {
                let col = tcols[0]
                var y = [Int32](repeating: 0, count: n)
                let k = classCount ?? 0
                for (r, row) in table.rows.enumerated() {
                    let cell = row[col].trimming(" \t")
                    if let i = classNames?.firstIndex(of: cell), !byIndex {
                        y[r] = Int32(i)
                    } else if byIndex, let v = number(cell), v.rounded() == v, v >= 0, Int(v) < k {
                        y[r] = Int32(v)
                    } else {
                        let what = isMissing(cell) ? "missing class" : "class \"\(cell)\""
                        throw FileError(path, "line \(table.lines[r]), column \"\(targetNames[0])\": \(what) is not one of the \(k) classes"
                                        + (classNames.map { " (\($0.prefix(12).joined(separator: ", ")))" } ?? " (0..<\(k))"))
                    }
                }
                let targets = Column(ints: y, sampleShape: [], classes: k)
                return ArrayDataset(name: name, inputs: inputs, input: input, targets: targets, target: FieldSpec(.classes, shape: [], count: k))
            }
            let m = targetIndices.count
            var y = [Float](repeating: 0, count: n * m)
            for (r, row) in table.rows.enumerated() {
                for (j, col) in tcols.enumerated() {
                    let cell = row[col]
                    if isMissing(cell) {
                        guard let v = targetFill[j] else {
                            throw FileError(path, "line \(table.lines[r]), column \"\(targetNames[j])\": missing target value (set data.csv.fill)")
                        }
                        y[r * m + j] = Float(v)
                    } else {
                        guard let v = number(cell) else {
                            throw FileError(path, "line \(table.lines[r]), column \"\(targetNames[j])\": \"\(cell)\" is not a number")
                        }
                        y[r * m + j] = Float(v)
                    }
                }
            }
            return ArrayDataset(name: name, inputs: inputs, input: input, targets: Column(floats: y, sampleShape: [m]),
                                target: FieldSpec(.values, shape: [m]))
        }
    }

    static func closestColumn(_ ref: String, _ columns: [String]) -> String {
        closest(ref, among: columns).map { " (did you mean \"\($0)\"?)" } ?? ""
    }
}

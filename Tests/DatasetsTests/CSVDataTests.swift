import Config
import Datasets
import Formats
import TestSupport
import Testing

/// Writes `text` to a fresh file and returns its path.
func file(_ name: String, _ text: String) throws -> String {
    let path = Fixtures.tempDirectory("data") + "/" + name
    try FileIO.writeAtomically(path, bytes: Array(text.utf8))
    return path
}

/// A data section parsed as a job file would have it.
func dataConfig(_ v: ConfigValue) throws -> DataConfig { try DataConfig(try ConfigReader(v, source: "job.yaml", path: "data")) }

func load(_ v: ConfigValue, target: TargetEncoding = .classes, input: InputEncoding = .values, context: Int? = nil,
          known: DataInfo? = nil) throws -> LoadedData {
    try DataLoading.load(try dataConfig(v), .init(input: input, target: target, seed: 3, context: context, known: known))
}

func loadError(_ v: ConfigValue, target: TargetEncoding = .classes, input: InputEncoding = .values, context: Int? = nil) -> String {
    do { _ = try load(v, target: target, input: input, context: context); return "no error" } catch { return "\(error)" }
}

func rows(_ d: DataSource) -> (x: [[Float]], labels: [Int32], values: [[Float]]) {
    let b = Batch()
    d.gather(Array(0..<d.count)[...], into: b)
    let w = d.input.shape.reduce(1, *)
    let x = (0..<d.count).map { i in (0..<w).map { b.x[i * w + $0] } }
    guard let t = d.target else { return (x, [], []) }
    if t.isInteger { return (x, b.labels.array, []) }
    let k = t.shape.reduce(1, *)
    return (x, [], (0..<d.count).map { i in (0..<k).map { b.y[i * k + $0] } })
}

@Test func csvColumnsByNameWithCategoriesAndClassNames() throws {
    let path = try file("weather.csv", """
        date,precipitation,wind,sky,weather
        2012-01-01,0.0,4.7,clear,sun
        2012-01-02,10.9,4.5,"cloudy, dark",rain
        2012-01-03,0.8,2.3,clear,rain

        2012-01-04,20.3,4.7,cloudy,snow
        """)
    let d = try load(["train": .string(path), "normalize": "none",
                      "csv": ["targets": "weather", "ignore": "date", "categorical": ["sky"]]])
    #expect(d.info.classNames == ["rain", "snow", "sun"])
    #expect(d.info.categories["sky"] == ["clear", "cloudy", "cloudy, dark"])
    #expect(d.info.featureColumns == ["precipitation", "wind", "sky"])
    #expect(d.train.input == FieldSpec(.values, shape: [5]))
    #expect(d.train.target == FieldSpec(.classes, shape: [], count: 3))
    let r = rows(d.train)
    #expect(r.labels == [2, 0, 0, 1])
    #expect(r.x[1] == [10.9, 4.5, 0, 0, 1])   // quoted field with a comma: one category
    #expect(r.x[3] == [20.3, 4.7, 0, 1, 0])
}

@Test func csvWithoutHeaderTargetsInASecondGzippedWhitespaceFile() throws {
    let x = try file("x.txt", "1 2\n3   4\n\t5 6\n")
    let y = try file("y.txt", "10.5\n20\n30\n")
    #expect(Fixtures.run(["gzip", x, y]).status == 0)
    let d = try load(["format": "csv", "train": ["inputs": .string(x + ".gz"), "targets": .string(y + ".gz")],
                      "normalize": "per_feature", "normalize_targets": true,
                      "csv": ["header": false, "delimiter": "whitespace"]], target: .values)
    #expect(d.train.input.shape == [2] && d.train.target == FieldSpec(.values, shape: [1]))
    // Standardised with the training statistics: mean 3, 4 and 20.1667; population std.
    let s = try #require(d.info.inputScaling), t = try #require(d.info.targetScaling)
    #expect(s.mode == .perFeature && s.mean == [3, 4])
    #expect(abs(t.mean[0] - 60.5 / 3) < 1e-9)
    let r = rows(d.train)
    let sd = (8.0 / 3).squareRoot()
    #expect(abs(Double(r.x[0][0]) - (1 - 3) / sd) < 1e-5 && abs(Double(r.x[2][1]) - (6 - 4) / sd) < 1e-5)
    #expect(abs(Double(r.values[0][0]) - (10.5 - t.mean[0]) / t.std[0]) < 1e-5)
}

@Test func csvIndexClassesSkipRowsAndSeededSplits() throws {
    // sklearn's layout: a first line of counts and class names, then rows with the class index last.
    var text = "60,2,a,b,c\n"
    for i in 0..<60 { text += "\(i),\(i * 2),\(i % 3)\n" }
    let path = try file("s.csv", text)
    let v: ConfigValue = ["train": .string(path), "validation_fraction": 0.25, "test_fraction": 0.25,
                          "csv": ["header": false, "skip_rows": 1, "targets": [2], "class_names": ["a", "b", "c"]]]
    let d = try load(v)
    #expect(d.train.count == 30 && d.validation?.count == 15 && d.test?.count == 15)
    #expect(d.info.classNames == ["a", "b", "c"] && d.train.target?.count == 3)
    // The three splits partition the rows, and a label is its row's.
    let all = [d.train, d.validation!, d.test!].flatMap { s in rows(s).x.map { Int($0[0] * 0 + 0) } }
    #expect(all.count == 60)
    var raw = try load(["train": .string(path), "normalize": "none", "validation_fraction": 0.25, "test_fraction": 0.25,
                        "csv": ["header": false, "skip_rows": 1, "targets": [2]]])
    let firsts = [raw.train, raw.validation!, raw.test!].flatMap { rows($0).x.map { Int($0[0]) } }
    #expect(Set(firsts) == Set(0..<60))
    let r = rows(raw.test!)
    #expect(zip(r.x, r.labels).allSatisfy { Int($0[0]) % 3 == Int($1) })
    // The same seed splits the same way; another seed does not.
    let again = try DataLoading.load(try dataConfig(["train": .string(path), "normalize": "none", "validation_fraction": 0.25,
                                                     "test_fraction": 0.25, "csv": ["header": false, "skip_rows": 1, "targets": [2]]]),
                                     .init(input: .values, target: .classes, seed: 3))
    #expect(rows(again.test!).x == r.x)
    raw = try DataLoading.load(try dataConfig(["train": .string(path), "normalize": "none", "test_fraction": 0.25,
                                               "csv": ["header": false, "skip_rows": 1, "targets": [2]]]),
                               .init(input: .values, target: .classes, seed: 4))
    #expect(rows(raw.test!).x != r.x)
}

@Test func csvFillsMissingValuesOnlyWhenAsked() throws {
    let path = try file("m.csv", "a,b,y\n1,,0\n3,4,1\nNA,8,0\n")
    #expect(loadError(["train": .string(path), "csv": ["targets": "y"]])
        == "\(path): line 2, column \"b\": missing value (set data.csv.fill to a number or \"mean\")")
    let d = try load(["train": .string(path), "normalize": "none", "csv": ["targets": "y", "fill": ["a": 0, "b": "mean"]]])
    #expect(rows(d.train).x == [[1, 6], [3, 4], [0, 8]])
}

/// Each broken CSV is an error naming the file and the place.
@Test func brokenCSVFilesAreClearErrors() throws {
    let ragged = try file("ragged.csv", "a,b,y\n1,2,0\n3,4\n")
    #expect(loadError(["train": .string(ragged), "csv": ["targets": "y"]]) == "\(ragged): line 3: 2 fields, expected 3 (as the header)")
    let text = try file("text.csv", "a,b,y\n1,2,0\n3,four,1\n")
    #expect(loadError(["train": .string(text), "csv": ["targets": "y"]])
        == "\(text): line 3, column \"b\": \"four\" is not a number (list the column under data.csv.categorical to one-hot encode it)")
    #expect(loadError(["train": .string(text), "csv": ["targets": "bb"]]).hasPrefix("\(text): data.csv.targets: no column \"bb\" (did you mean \"b\"?)"))
    #expect(loadError(["train": .string(text), "csv": ["targets": "y", "features": ["a", "c"]]]).contains("data.csv.features: no column \"c\""))
    let empty = try file("empty.csv", "")
    #expect(loadError(["train": .string(empty), "csv": ["targets": "y"]]) == "\(empty): is empty (no rows)")
    let header = try file("header.csv", "a,b,y\n")
    #expect(loadError(["train": .string(header), "csv": ["targets": "y"]]) == "\(header): has a header but no data rows")
    let quote = try file("quote.csv", "a,y\n\"1,0\n")
    #expect(loadError(["train": .string(quote), "csv": ["targets": "y"]]) == "\(quote): line 2: a quoted field is never closed")
    let noTargets = try file("nt.csv", "a,b\n1,2\n")
    #expect(loadError(["train": .string(noTargets)]).contains("data.csv.targets: required"))
    // A class in another split that training never saw.
    let train = try file("train.csv", "a,y\n1,cat\n2,dog\n")
    let test = try file("test.csv", "a,y\n1,cat\n2,eel\n")
    #expect(loadError(["train": .string(train), "test": .string(test), "csv": ["targets": "y"]])
        == "\(test): line 3, column \"y\": class \"eel\" is not one of the 2 classes (cat, dog)")
    let bin = try file("b.csv", "a,y\n1,0\n2,x\n")
    #expect(loadError(["train": .string(bin), "csv": ["targets": "y"]], target: .values) == "\(bin): line 3, column \"y\": \"x\" is not a number")
    let latin = try file("latin.csv", "a,y\n1,caf\u{E9}\n")
    try FileIO.writeAtomically(latin, bytes: Array("a,y\n1,caf".utf8) + [0xE9, 0x0A])
    #expect(loadError(["train": .string(latin), "csv": ["targets": "y"]]) == "\(latin): is not UTF-8 text")
}

@Test func dataSectionErrorsNameTheKey() throws {
    func err(_ v: ConfigValue) -> String {
        do { _ = try dataConfig(v); return "no error" } catch { return "\(error)" }
    }
    #expect(err(["train": "x.parquet"]).contains("data.format: cannot tell the format of x.parquet from its name"))
    #expect(err(["format": "csv"]).contains("data.train: required: the training file(s) of the csv data"))
    #expect(err(["dataset": "fashion-mnist", "train": "a.csv"]).contains("give either a named dataset"))
    #expect(err(["train": "a.csv", "normalize": "zscore"]).contains("data.normalize: expected one of auto, none, global, per_feature, per_channel"))
    #expect(err(["train": "a.csv", "csv": ["delimiter": ";;"]]).contains("data.csv.delimiter: expected one character"))
    #expect(err(["train": "a.txt", "text": ["tokenizer": "char", "encoding": "bytes"]]).contains("data.text.encoding"))
    #expect(err(["train": "a.csv", "validation_fraction": 0.6, "test_fraction": 0.4]).contains("leave too little to train on"))
    #expect(err(["train": "a.csv", "csv": ["targts": "y"]]).contains("data.csv.targts: unknown key (did you mean \"targets\"?"))
    let round = try dataConfig(["train": "a.csv", "test_fraction": 0.2, "csv": ["targets": "y", "fill": 0]])
    #expect(try DataConfig(try ConfigReader(round.configValue, source: "meta")) == round)
}

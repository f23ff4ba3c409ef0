import Config
import Datasets
import Testing

/// Ten days of (temperature, wind): temperature t_i = i, wind w_i = 10·i.
private func series() throws -> String {
    try file("series.csv", "date,temp,wind\n" + (0..<10).map { "2020-01-\($0 + 1),\($0),\($0 * 10)" }.joined(separator: "\n") + "\n")
}

@Test func forecastWindowsAreChronologicalWithTheTargetsHistoryAsInput() throws {
    let d = try load(["train": .string(try series()), "normalize": "none", "validation_fraction": 0.2,
                      "window": ["length": 3, "horizon": 2], "csv": ["targets": "temp", "ignore": "date"]],
                     target: .values)
    #expect(d.train.input == FieldSpec(.values, shape: [3, 2]))
    #expect(d.train.target == FieldSpec(.values, shape: [2]))
    // Training rows 0..<8: windows end at rows 3…6 so both targets stay in training rows.
    let r = rows(d.train)
    #expect(r.x.count == 4)
    #expect(r.x[0] == [0, 0, 1, 10, 2, 20])
    #expect(r.values[0] == [3, 4])
    #expect(r.values[3] == [6, 7])
    // Validation: rows 8, 9 forecast from the three rows before them.
    let v = rows(d.validation!)
    #expect(v.x == [[5, 50, 6, 60, 7, 70]])
    #expect(v.values == [[8, 9]])
}

@Test func forecastScalingComesFromTrainingRowsOnly() throws {
    let d = try load(["train": .string(try series()), "validation_fraction": 0.2, "normalize_targets": true,
                      "window": ["length": 2], "csv": ["targets": "temp", "ignore": "date"]], target: .values)
    // Training rows 0…7: temp mean 3.5, population std √5.25.
    let s = d.info.inputScaling!
    #expect(abs(s.mean[0] - 3.5) < 1e-12 && abs(s.std[0] - 5.25.squareRoot()) < 1e-12)
    #expect(abs(s.mean[1] - 35) < 1e-12)
    #expect(abs(d.info.targetScaling!.mean[0] - 3.5) < 1e-12)
    let v = rows(d.validation!)
    #expect(v.values.count == 2)
    #expect(abs(v.values[1][0] - Float((9 - 3.5) / 5.25.squareRoot())) < 1e-5)
}

@Test func forecastWindowsRefuseWhatTheyCannotUse() throws {
    let path = try series()
    #expect(loadError(["train": .string(path), "window": ["length": 9], "validation_fraction": 0.2,
                       "csv": ["targets": "temp", "ignore": "date"]], target: .values)
        .contains("8 training rows hold no window of 9 rows"))
    #expect(loadError(["train": .string(path), "window": ["length": 2],
                       "csv": ["targets": "temp", "ignore": "date"]], target: .classes)
        .contains("forecasting needs rows of float features and float targets"))
    #expect(loadError(["train": .string(path), "window": ["length": 0],
                       "csv": ["targets": "temp", "ignore": "date"]], target: .values)
        .contains("data.window.length"))
}

import Config
import Formats
import Testing

@Test func jsonRoundTrip() throws {
    let v = ConfigValue.object([
        "a": .int(-3), "b": .double(0.5), "c": .string("q\"uo\\te\n\u{1}é"), "d": .list([.bool(true), .null]),
        "e": .object(["x": .double(2)]),
    ])
    let s = JSON.string(v)
    #expect(try JSON.parse(s) == v)
    #expect(try JSON.parse("  {\"k\" : [1, 2.5e3, \"\\u00e9\\ud83d\\ude00\"]} ") ==
        .object(["k": .list([.int(1), .double(2500), .string("é😀")])]))
}

@Test(arguments: ["", "{", "{\"a\":1,}", "[1 2]", "{\"a\":1}x", "{\"a\":1,\"a\":2}", "\"\\x\"", "01a", "nul",
                  String(repeating: "[", count: 100) + String(repeating: "]", count: 100), "{\"a\":\"\u{1}\"}", "1e999"])
func jsonRejectsBadInput(_ text: String) {
    #expect(throws: JSON.ParseError.self) { try JSON.parse(text) }
}

@Test func yamlKeepsTypesAndOrder() throws {
    let v = try YAML.parse("""
        b: 1
        a: "1"
        c: 1.5
        d: [true, null, x]
        e: {f: -2}
        """, source: "t.yaml")
    #expect(v == .object(["b": .int(1), "a": .string("1"), "c": .double(1.5),
                          "d": .list([.bool(true), .null, .string("x")]), "e": .object(["f": .int(-2)])]))
    #expect(throws: ConfigError.self) { try YAML.parse("a: [1, 2", source: "t.yaml") }
    #expect(throws: ConfigError.self) { try YAML.parse("a: 1\na: 2\n", source: "t.yaml") }
}

@Test func configReaderNamesPathsAndUnknownKeys() throws {
    let v = try YAML.parse("train:\n  epochs: ten\n  bach_size: 3\n", source: "job.yaml")
    let r = try ConfigReader(v, source: "job.yaml")
    let t = try r.section("train")
    #expect(throws: ConfigError(source: "job.yaml", path: "train.epochs", "expected an integer, found string \"ten\"")) {
        _ = try t.int("epochs", default: 1)
    }
    _ = try t.int("batch_size", default: 1)
    do { try t.finish(); Issue.record("expected an error") } catch {
        #expect("\(error)" == "job.yaml: train.bach_size: unknown key (did you mean \"batch_size\"? expected one of: batch_size, epochs)")
    }
}

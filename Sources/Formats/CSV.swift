/// Delimited text tables (RFC 4180: quoted fields, doubled quotes, CRLF or LF), raw or gzip.
/// Cells stay text here; the dataset layer decides what each column means.
public enum CSV {
    public enum Delimiter: Equatable, Sendable {
        case character(UInt8)
        /// Runs of spaces and tabs (whitespace-separated files such as sklearn's diabetes).
        case whitespace
    }

    public struct Table: Sendable {
        /// Column names: the header row, or "0", "1", … without one.
        public var columns: [String]
        public var rows: [[String]]
        /// The file line each row starts on (1-based), for error messages.
        public var lines: [Int]
    }

    /// One field as CSV writes it (RFC 4180): quoted, inner quotes doubled, when it holds a
    /// comma, quote or line break (or `always`).
    public static func field(_ s: String, always: Bool = false) -> String {
        guard always || s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return s }
        return "\"" + s.split(separator: "\"", omittingEmptySubsequences: false).joined(separator: "\"\"") + "\""
    }

    public static func read(_ path: String, delimiter: Delimiter = .character(UInt8(ascii: ",")),
                            header: Bool = true, skipRows: Int = 0) throws -> Table {
        let bytes = try FileIO.readDecompressed(path)
        return try parse(bytes, source: path, delimiter: delimiter, header: header, skipRows: skipRows)
    }

    public static func parse(_ b: [UInt8], source: String, delimiter: Delimiter, header: Bool, skipRows: Int) throws -> Table {
        guard String(validating: b, as: UTF8.self) != nil else { throw FileError(source, "is not UTF-8 text") }
        var records: [[String]] = [], lines: [Int] = []
        var field: [UInt8] = [], record: [String] = []
        var line = 1, recordLine = 1
        var i = 0, quoted = false, fieldStarted = false
        let quote = UInt8(ascii: "\""), cr = UInt8(ascii: "\r"), lf = UInt8(ascii: "\n")
        func endField() {
            record.append(String(decoding: field, as: UTF8.self))
            field.removeAll(keepingCapacity: true)
            fieldStarted = false
        }
        func endRecord() {
            if delimiter == .whitespace && !fieldStarted && field.isEmpty {
                // trailing blanks are not a field
            } else {
                endField()
            }
            // Blank lines are skipped, as pandas and numpy do.
            if !(record.count == 1 && record[0].isEmpty) && !record.isEmpty {
                records.append(record)
                lines.append(recordLine)
            }
            record.removeAll()
        }
        while i < b.count {
            let c = b[i]
            if quoted {
                if c == quote {
                    if i + 1 < b.count && b[i + 1] == quote { field.append(quote); i += 2; continue }
                    quoted = false
                } else {
                    if c == lf { line += 1 }
                    field.append(c)
                }
                i += 1
                continue
            }
            switch delimiter {
            case .character(let d) where c == d:
                endField()
                i += 1
                continue
            case .whitespace where c == UInt8(ascii: " ") || c == UInt8(ascii: "\t"):
                if fieldStarted || !field.isEmpty { endField() }
                i += 1
                continue
            default: break
            }
            if c == quote && field.isEmpty {
                quoted = true
                fieldStarted = true
            } else if c == cr || c == lf {
                if c == cr && i + 1 < b.count && b[i + 1] == lf { i += 1 }
                endRecord()
                line += 1
                recordLine = line
            } else {
                field.append(c)
                fieldStarted = true
            }
            i += 1
        }
        if quoted { throw FileError(source, "line \(recordLine): a quoted field is never closed") }
        if fieldStarted || !field.isEmpty || !record.isEmpty { endRecord() }
        guard records.count > skipRows else {
            throw FileError(source, records.isEmpty ? "is empty (no rows)" : "has only \(records.count) row(s), all skipped (skip_rows: \(skipRows))")
        }
        records.removeFirst(skipRows)
        lines.removeFirst(skipRows)
        var columns: [String]
        if header {
            columns = records.removeFirst().map { $0.trimmingSpaces }
            lines.removeFirst()
            guard !records.isEmpty else { throw FileError(source, "has a header but no data rows") }
            var seen = Set<String>()
            for c in columns where !seen.insert(c).inserted { throw FileError(source, "header names column \"\(c)\" twice") }
        } else {
            columns = (0..<records[0].count).map(String.init)
        }
        for (k, r) in records.enumerated() where r.count != columns.count {
            throw FileError(source, "line \(lines[k]): \(r.count) fields, expected \(columns.count)" + (header ? " (as the header)" : " (as the first row)"))
        }
        return Table(columns: columns, rows: records, lines: lines)
    }
}

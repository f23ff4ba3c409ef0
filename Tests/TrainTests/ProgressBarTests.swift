import Testing
import Train

private let status = ProgressBar.Status(epoch: 3, epochs: 10, step: 234, steps: 468, samplesPerSecond: 41_234,
                                        loss: 0.41234, lr: 0.045, etaSeconds: 65)

@Test func theBarShowsEveryFieldWhenThereIsRoom() {
    let line = ProgressBar.render(status, width: 120, color: false)
    #expect(line.hasPrefix("epoch 3/10 ━━━━━━━━━━━━━━━━━━━━──────────────────── 234/468  41.2k samples/s"), "\(line)")
    #expect(line.hasSuffix("loss 0.4123  lr 0.04500  ETA 1:05"), "\(line)")
    #expect(line.count <= 120 && !line.contains("\u{1B}"))
}

@Test(arguments: [100, 80, 60, 40, 30, 12])
func theBarIsCutToTheTerminalWidth(_ width: Int) {
    let line = ProgressBar.render(status, width: width, color: false)
    #expect(line.count <= width, "\(line.count) > \(width): \(line)")
    #expect(line.hasPrefix("epoch 3/10 "), "\(line)")
    // Fields go from the right: the step count stays while there is room for it.
    if width >= 40 { #expect(line.contains("234/468")) }
}

@Test func colourOnlyWhenAsked() {
    let c = ProgressBar.render(status, width: 120, color: true)
    #expect(c.contains("\u{1B}[32m") && c.contains("\u{1B}[0m"))
    // The same visible text as without colour, apart from the empty part's glyph.
    let visible = c.replacingEscapes().replacingOccurrences(of: "━", with: "x")
    #expect(visible == ProgressBar.render(status, width: 120, color: false).replacingOccurrences(of: "━", with: "x")
        .replacingOccurrences(of: "─", with: "x"))
}

private extension String {
    func replacingEscapes() -> String {
        var out = "", skipping = false
        for ch in self {
            if ch == "\u{1B}" { skipping = true; continue }
            if skipping { if ch == "m" { skipping = false }; continue }
            out.append(ch)
        }
        return out
    }
    func replacingOccurrences(of a: String, with b: String) -> String { split(separator: Character(a), omittingEmptySubsequences: false).joined(separator: b) }
}

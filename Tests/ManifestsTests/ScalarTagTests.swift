import Testing
import Yams
@testable import Manifests

/// `ScalarTag` stands in for Yams's `Resolver.default` (regular expressions); Yams's own
/// rules are the oracle here.
@Suite struct ScalarTagTests {
    static func yamsTag(_ text: String) -> Yams.Tag.Name {
        Resolver.default.resolveTag(of: Node(text))
    }

    static let examples = [
        "", "~", "null", "Null", "NULL", "nULL", "none",
        "yes", "Yes", "YES", "yEs", "no", "NO", "true", "True", "TRUE", "tRue", "false", "FALSE",
        "on", "On", "ON", "off", "Off", "OFF", "y", "n", "Y", "N",
        "0", "-0", "+0", "00", "007", "08", "0_7", "0o7", "0o", "0o8", "0b", "0b1010", "0b12", "-0b1",
        "0x", "0x1F", "0xg", "0X1F", "-0x_a", "1", "-1", "+1", "12_345", "1_", "_1", "-", "+",
        "1:30", "190:20:30", "1:60", "1:5", "1:05", "1:005", "0:30", "-1:30", "1:30:",
        "1.", "1.5", "-1.5", "+1.5", "1.5e3", "1.5E+3", "1.5e-3", "1e3", "1e", "1e+", "1.5.5",
        ".5", "._", ".5e3", ".5e+3", "-.5", "+.5", ".", "..5", "1__.__e5",
        ".inf", "-.inf", "+.Inf", ".INF", ".iNf", ".nan", ".NaN", ".NAN", "-.nan", "inf", "nan",
        "190:20:30.15", "1:30.", "1:30.5_", "1:61.5", "-1:30.5", "0:30.5",
        "<<", "<", "=", "==",
        "2001-12-14", "2001-1-4", "2001-12-14t21:59:43.10-05:00", "2001-12-14 21:59:43.10 -5",
        "2001-12-15T02:59:43.1Z", "2001-12-15 2:59:43.10", "2002-12-14T21:59:43", "2001-12-14  21:59:43 Z",
        "2001-12-14T21:59:43 ", "2001-12-14T21:59:43+123", "2001-12-14T21:59:43+1:2", "2001-12-14T21:59:4",
        "20011-12-14", "2001-123-14", "2001-12-145", "2001-12-14T", "2001-12-14T21:59:43.",
        "80", "web-v1", "100ms", "10s", "1Ki", "500m", "/api/.*", "GET", "v1alpha4",
    ]

    @Test(arguments: examples)
    func resolvesLikeYams(text: String) {
        #expect(ScalarTag.resolve(text) == Self.yamsTag(text), "\(text)")
    }

    /// Strings made of the characters the rules care about, in every short combination a
    /// fixed-seed generator picks.
    @Test func resolvesRandomStringsLikeYams() {
        let alphabet = Array("0123456789_-+.:eExobaTtZ ~<=nlfi")
        var generator = DecoderRobustnessTests.SeededGenerator(state: 0x5CA1A7)
        var mismatches: [String] = []
        for _ in 0..<20_000 {
            let length = Int(generator.next() % 12)
            let text = String((0..<length).map { _ in alphabet[Int(generator.next() % UInt64(alphabet.count))] })
            if ScalarTag.resolve(text) != Self.yamsTag(text) { mismatches.append(text) }
        }
        #expect(mismatches == [])
    }

    @Test func aQuotedOrTaggedScalarKeepsItsTag() throws {
        let root = try #require(try ManifestDecoder.yamlParser("a: '80'\nb: 80\nc: !!str 80\nd: |\n  80\ne: null\n").nextRoot())
        guard case .mapping(let mapping) = root else { Issue.record("not a mapping"); return }
        let tags = mapping.map { "\($0.key.scalar?.string ?? ""): \($0.value.tagName.rawValue)" }
        #expect(tags == [
            "a: tag:yaml.org,2002:str", "b: tag:yaml.org,2002:int", "c: tag:yaml.org,2002:str",
            "d: tag:yaml.org,2002:str", "e: tag:yaml.org,2002:null",
        ])
    }
}

import Foundation
import Testing
@testable import Manifests

/// Random bytes and randomly mutated manifests never crash the decoder, and every
/// document ends up as a resource, as problems, or as nothing (an empty document).
@Suite struct DecoderRobustnessTests {
    /// SplitMix64: a fixed seed makes every failure reproducible.
    struct SeededGenerator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static let corpus: [String] = {
        var texts: [String] = []
        for directory in ["manifests/examples", "Tests/Fixtures/invalid"] {
            let url = repositoryRoot.appendingPathComponent(directory)
            for name in ((try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []).sorted()
            where name.hasSuffix(".yaml") {
                if let text = try? String(contentsOf: url.appendingPathComponent(name), encoding: .utf8) {
                    texts.append(text)
                }
            }
        }
        return texts
    }()

    static let yamlAlphabet = Array(":-[]{}&*!|>'\"#%@,?\n \t0123456789abcdeé\u{0}\u{FEFF}")

    static func mutate(_ text: String, using random: inout SeededGenerator) -> String {
        var characters = Array(text)
        for _ in 0..<Int.random(in: 1...4, using: &random) {
            let position = characters.isEmpty ? 0 : Int.random(in: 0..<characters.count, using: &random)
            switch Int.random(in: 0..<6, using: &random) {
            case 0 where !characters.isEmpty:  // delete a run
                let end = min(characters.count, position + Int.random(in: 1...8, using: &random))
                characters.removeSubrange(position..<end)
            case 1:  // insert YAML-significant characters
                let inserted = (0..<Int.random(in: 1...4, using: &random)).map { _ in yamlAlphabet.randomElement(using: &random)! }
                characters.insert(contentsOf: inserted, at: position)
            case 2 where !characters.isEmpty:  // replace one character
                characters[position] = yamlAlphabet.randomElement(using: &random)!
            case 3:  // duplicate a line
                var lines = String(characters).split(separator: "\n", omittingEmptySubsequences: false)
                if let line = lines.randomElement(using: &random) {
                    lines.insert(line, at: Int.random(in: 0...lines.count, using: &random))
                }
                characters = Array(lines.joined(separator: "\n"))
            case 4:  // re-indent a line
                var lines = String(characters).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
                if !lines.isEmpty {
                    let index = Int.random(in: 0..<lines.count, using: &random)
                    lines[index] = String(repeating: " ", count: Int.random(in: 0...6, using: &random))
                        + lines[index].drop { $0 == " " }
                }
                characters = Array(lines.joined(separator: "\n"))
            default:  // truncate
                characters = Array(characters.prefix(position))
            }
        }
        return String(characters)
    }

    func checkTotal(_ input: String, file: String = "fuzz.yaml") {
        let decoded = ManifestDecoder.decode(input, file: file)
        let lineCount = input.reduce(1) { $1 == "\n" ? $0 + 1 : $0 }
        for document in decoded.documents {
            if case .invalid(let problems) = document {
                #expect(!problems.isEmpty, "an invalid document must say why: \(input.debugDescription)")
            }
        }
        for problem in decoded.problems {
            #expect((1...lineCount + 1).contains(problem.line), "line \(problem.line) outside the input: \(problem)")
            #expect(problem.description.hasPrefix("\(file):\(problem.line): "))
        }
        _ = ResourceSetValidator().validate(decoded.resources)
        _ = decoded.resources.map(\.summary)
    }

    @Test func corpusIsLoaded() {
        #expect(Self.corpus.count >= 20)
    }

    @Test func mutatedManifests() {
        var random = SeededGenerator(state: 0xE1_0001)
        for _ in 0..<3000 {
            let text = Self.mutate(Self.corpus.randomElement(using: &random)!, using: &random)
            checkTotal(text)
        }
    }

    @Test func randomBytes() {
        var random = SeededGenerator(state: 0xE1_0002)
        for _ in 0..<1000 {
            let bytes = (0..<Int.random(in: 0...300, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            let decoded = ManifestDecoder.decode(bytes: bytes, file: "bytes.yaml")
            if String(validating: bytes, as: UTF8.self) == nil {
                #expect(decoded.problems.map(\.message) == ["not valid UTF-8"])
            }
        }
        for _ in 0..<1000 {
            let text = String((0..<Int.random(in: 0...200, using: &random)).map { _ in Self.yamlAlphabet.randomElement(using: &random)! })
            checkTotal(text)
        }
    }

    @Test func deepNestingIsAnErrorNotACrash() {
        for opener in ["[", "{", "- "] {
            let decoded = ManifestDecoder.decode(String(repeating: opener, count: 5000), file: "deep.yaml")
            #expect(decoded.resources.isEmpty)
            #expect(decoded.problems.count == 1)
        }
    }

    @Test func aliasExpansionIsBounded() {
        // 2,000 aliases of one match with 2,000 headers: 4 million header regexes if walked naively.
        let headers = (0..<2000).map { "h\($0): a" }.joined(separator: ", ")
        let yaml = """
            apiVersion: specs.smi-spec.io/v1alpha2
            kind: HTTPRouteGroup
            metadata: {name: bomb}
            matches:
            - &m {name: m, headers: {\(headers)}}

            """ + String(repeating: "- *m\n", count: 2000)
        let decoded = ManifestDecoder.decode(yaml, file: "bomb.yaml")
        #expect(decoded.resources.isEmpty)
        #expect(decoded.problems.last?.description
            == "bomb.yaml:5: HTTPRouteGroup/default/bomb: (document): document too large to decode (aliases expand to too many nodes)")
    }

    @Test func invalidUTF8PointsAtItsLine() {
        let bytes = Array("apiVersion: v1\nkind: x\n".utf8) + [0xFF, 0xFE] + Array("\n".utf8)
        let decoded = ManifestDecoder.decode(bytes: bytes, file: "latin1.yaml")
        #expect(decoded.problems.map(\.description) == ["latin1.yaml:3: document 1: (file): not valid UTF-8"])
    }
}

import EinoTestSupport
import Foundation
import Testing

/// The CRDs under manifests/crds are structural, cover exactly the kinds and versions Eino
/// decodes, and accept the examples — checked by Tests/Scripts/check_crds.py with jsonschema.
@Suite struct CRDSchemaTests {
    let python = URL(fileURLWithPath: "/usr/bin/python3")
    let script = "Tests/Scripts/check_crds.py"

    @Test func crdsAreStructuralAndAcceptTheExamples() throws {
        let result = try EinoProcess.run(python, [script])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdoutLines.last == "crds: 27 passed, 0 failed")
    }

    @Test(arguments: ["negative-weight.yaml", "percent-over-100.yaml"])
    func crdsRejectInvalidDocuments(fixture: String) throws {
        let result = try EinoProcess.run(python, [script, "--expect-invalid", "Tests/Fixtures/crd-invalid/\(fixture)"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
    }
}

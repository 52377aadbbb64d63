import NIOHTTP1
import Proxy
import Testing

@Suite struct ReceivedFieldsTests {
    @Test func lowerCaseTokensWithCleanValuesPass() {
        #expect(ReceivedFields.areValid(HTTPHeaders([("host", "web"), ("x-b3-traceid", "80f198ee56343ba8"), ("accept", "*/*"),
                                                      ("cookie", "a=1; b=\"two words\"\t"), ("x_weird!#$%&'*+.^`|~0", "é")])))
        #expect(ReceivedFields.areValid(HTTPHeaders()))
    }

    @Test func malformedNamesFail() {
        for name in ["", "Host", "x header", "x:y", ":path", "x\u{7F}", "naïve", "x\"y", "x(y)", "x/y", "x@y", "x{y}"] {
            #expect(!ReceivedFields.areValid(HTTPHeaders([(name, "v")])), "\(name)")
        }
    }

    @Test func valuesWithNULCROrLFFail() {
        for value in ["a\r\nx-smuggled: 1", "a\nb", "a\rb", "a\u{0}b"] {
            #expect(!ReceivedFields.areValid(HTTPHeaders([("x-ok", "fine"), ("x-bad", value)])), "\(value.debugDescription)")
        }
    }
}

import Testing
@testable import Manifests

@Suite struct QuantityTests {
    @Test(arguments: [
        ("1", 1000), ("500m", 500), ("10m", 10), ("0", 0), ("0.5", 500), ("1.5", 1500),
        ("0.1", 100), ("100m", 100), ("2k", 2_000_000), ("1Ki", 1_024_000), ("5e-1", 500),
        ("1e3", 1_000_000), ("+3", 3000), ("007", 7000), ("1.000", 1000), ("1000000n", 1),
        ("2147483m", 2_147_483), ("-0", 0),
    ] as [(String, UInt64)])
    func exactMilliUnits(text: String, milli: UInt64) throws {
        #expect(try Quantity.milliUnits(text) == milli)
    }

    @Test(arguments: [
        ("-1", Quantity.Failure.negative), ("-500m", .negative), ("1u", .finerThanMilli),
        ("1.0005", .finerThanMilli), ("abc", .malformed), ("", .malformed), ("1x", .malformed),
        (".", .malformed), ("1e", .malformed), ("1e1000", .malformed), ("3000000", .tooLarge),
        ("1Ei", .tooLarge), ("99999999999999999999", .tooLarge), ("1 ", .malformed),
    ])
    func rejected(text: String, failure: Quantity.Failure) {
        #expect(throws: failure) { try Quantity.milliUnits(text) }
    }
}

/// Kubernetes resource quantities (`1`, `500m`, `1.5`, `2k`, `1Ki`, `5e-1`) as exact
/// milli-units, for TrafficSplit v1alpha1 weights.
///
/// Exact integer arithmetic only: `0.1` and `100m` must give the same split, which a
/// floating-point parse would not promise.
enum Quantity {
    static let maxMilli: UInt64 = UInt64(Int32.max)

    enum Failure: Error, Equatable {
        case malformed
        case negative
        case finerThanMilli
        case tooLarge
    }

    static func milliUnits(_ text: String) throws(Failure) -> UInt64 {
        var rest = Substring(text)
        var negative = false
        if let sign = rest.first, sign == "+" || sign == "-" {
            negative = sign == "-"
            rest = rest.dropFirst()
        }
        let intPart = rest.prefix { $0.isASCII && $0.isNumber }
        rest = rest.dropFirst(intPart.count)
        var fracPart = Substring("")
        if rest.first == "." {
            rest = rest.dropFirst()
            fracPart = rest.prefix { $0.isASCII && $0.isNumber }
            rest = rest.dropFirst(fracPart.count)
        }
        guard !(intPart.isEmpty && fracPart.isEmpty) else { throw .malformed }

        var exponent10 = 3  // to milli-units
        var binaryPower = 0  // multiples of 1024
        switch rest {
        case "": break
        case "n": exponent10 -= 9
        case "u": exponent10 -= 6
        case "m": exponent10 -= 3
        case "k": exponent10 += 3
        case "M": exponent10 += 6
        case "G": exponent10 += 9
        case "T": exponent10 += 12
        case "P": exponent10 += 15
        case "E": exponent10 += 18
        case "Ki": binaryPower = 1
        case "Mi": binaryPower = 2
        case "Gi": binaryPower = 3
        case "Ti": binaryPower = 4
        case "Pi": binaryPower = 5
        case "Ei": binaryPower = 6
        default:
            guard let first = rest.first, first == "e" || first == "E" else { throw .malformed }
            let digits = rest.dropFirst()
            let unsigned = digits.first == "+" || digits.first == "-" ? digits.dropFirst() : digits
            guard !unsigned.isEmpty, unsigned.count <= 3, unsigned.allSatisfy({ $0.isASCII && $0.isNumber }),
                  let value = Int(digits)
            else { throw .malformed }
            exponent10 += value
        }

        var digits = Array((intPart + fracPart).drop { $0 == "0" })
        exponent10 -= fracPart.count
        while exponent10 < 0, digits.last == "0" {
            digits.removeLast()
            exponent10 += 1
        }
        if digits.isEmpty { return 0 }
        if negative { throw .negative }
        guard exponent10 >= 0 else { throw .finerThanMilli }
        guard digits.count <= 18, var value = UInt64(String(digits)), value <= maxMilli else { throw .tooLarge }
        for _ in 0..<exponent10 {
            value *= 10
            if value > maxMilli { throw .tooLarge }
        }
        for _ in 0..<binaryPower {
            value *= 1024
            if value > maxMilli { throw .tooLarge }
        }
        return value
    }
}

/// What went wrong while creating, loading or using identity material. The descriptions are
/// written for the person running `eino`: they name the file or the rule that failed.
public enum IdentityError: Error, Equatable, CustomStringConvertible {
    /// A file could not be read or written.
    case file(path: String, problem: String)
    /// A file that must not be replaced exists (CA files without `--force`).
    case alreadyExists(path: String)
    /// A PEM file did not hold what it should.
    case badPEM(path: String, problem: String)
    /// A private key does not belong to the certificate it was paired with.
    case keyMismatch(String)
    /// A CSR was refused by the CA.
    case badCSR(String)
    /// A certificate cannot serve the role it was given (e.g. a leaf used as a CA).
    case badCertificate(String)
    /// A validity window that is empty or inverted.
    case badValidity(String)

    public var description: String {
        switch self {
        case .file(let path, let problem): return "\(path): \(problem)"
        case .alreadyExists(let path): return "\(path): already exists"
        case .badPEM(let path, let problem): return "\(path): \(problem)"
        case .keyMismatch(let what): return "private key does not match \(what)"
        case .badCSR(let why): return "certificate signing request refused: \(why)"
        case .badCertificate(let why): return why
        case .badValidity(let why): return "invalid validity: \(why)"
        }
    }
}

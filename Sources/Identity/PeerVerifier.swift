import Foundation
import SwiftASN1
import X509

/// Which side of a connection the verified peer played: it decides which extended key usage
/// its certificate must allow (a client needs clientAuth, a server serverAuth).
public enum PeerRole: Sendable {
    case client
    case server
}

/// A peer whose chain verified: its identity and the chain from its leaf to one of our roots.
public struct VerifiedPeer: Sendable, Hashable {
    public let identity: SPIFFEID
    public let chain: [Certificate]
}

/// Why a peer was refused. `kind` is what callers branch on (metrics, `eino-error`);
/// `description` is the sentence for the log.
public struct PeerVerificationError: Error, Hashable, CustomStringConvertible {
    public enum Kind: Hashable, Sendable {
        /// No certificate was presented.
        case noCertificate
        /// The peer's certificate is past its notAfter.
        case expired
        /// The peer's certificate is before its notBefore.
        case notYetValid
        /// No chain to a root of the bundle (a foreign CA, a bad signature, a broken chain).
        case untrusted
        /// The leaf names no valid Eino SPIFFE ID, or one outside our trust domain.
        case badIdentity
        /// The chain is fine but names someone other than the identity we meant to reach.
        case identityMismatch(expected: SPIFFEID, actual: SPIFFEID)
    }

    public let kind: Kind
    public let description: String
}

/// Verifies presented chains against a trust bundle with swift-certificates' `Verifier`
/// (RFC 5280 path building, signatures, validity at the current time) plus Eino's own rules
/// for the leaf, and yields the peer's SPIFFE ID.
///
/// This is the whole check: the TLS builders install it as a custom verification callback,
/// which replaces BoringSSL's chain validation entirely.
public struct PeerVerifier: Sendable {
    public let trustBundle: TrustBundle
    /// Peers must belong to this trust domain; federation across domains is not supported.
    public let trustDomain: String
    private let roots: CertificateStore

    public init(trustBundle: TrustBundle, trustDomain: String) {
        self.trustBundle = trustBundle
        self.trustDomain = trustDomain
        self.roots = CertificateStore(trustBundle.roots)
    }

    /// Verifies `presented` (leaf first, as the peer sent it) at the current time.
    ///
    /// - Parameters:
    ///   - role: what the peer acted as on this connection.
    ///   - expected: when set (the outbound side, which knows whom it dialled), a chain naming
    ///     any other identity is refused: a proxy holding `db` cannot answer for `web`.
    public func verify(
        _ presented: [Certificate], as role: PeerRole, expecting expected: SPIFFEID? = nil
    ) async -> Result<VerifiedPeer, PeerVerificationError> {
        guard let leaf = presented.first else {
            return .failure(PeerVerificationError(kind: .noCertificate, description: "peer presented no certificate"))
        }
        let identity: SPIFFEID
        do {
            identity = try SPIFFEID(certificate: leaf)
        } catch {
            return .failure(PeerVerificationError(kind: .badIdentity, description: "peer certificate: \(error)"))
        }
        guard identity.trustDomain == trustDomain else {
            return .failure(PeerVerificationError(
                kind: .badIdentity, description: "peer \(identity) is outside trust domain \(trustDomain)"))
        }
        var verifier = Verifier(rootCertificates: roots) {
            RFC5280Policy()
            SPIFFELeafPolicy(role: role)
        }
        let result = await verifier.validate(leaf: leaf, intermediates: CertificateStore(presented.dropFirst()))
        switch result {
        case .validCertificate(let chain):
            if let expected, expected != identity {
                return .failure(PeerVerificationError(
                    kind: .identityMismatch(expected: expected, actual: identity),
                    description: "peer is \(identity), expected \(expected)"))
            }
            return .success(VerifiedPeer(identity: identity, chain: Array(chain)))
        case .couldNotValidate(let failures):
            return .failure(Self.classify(leaf: leaf, identity: identity, failures: failures))
        }
    }

    /// Turns the Verifier's list of failed candidate chains into one actionable reason. Time
    /// problems of the leaf are named as such; everything else means "not from our CA".
    private static func classify(
        leaf: Certificate, identity: SPIFFEID, failures: [CertificateValidationResult.PolicyFailure]
    ) -> PeerVerificationError {
        let now = Date()
        if now > leaf.notValidAfter {
            return PeerVerificationError(kind: .expired, description: "peer \(identity): certificate expired at \(leaf.notValidAfter)")
        }
        if now < leaf.notValidBefore {
            return PeerVerificationError(kind: .notYetValid, description: "peer \(identity): certificate not valid before \(leaf.notValidBefore)")
        }
        if let reason = failures.first?.policyFailureReason {
            // Every candidate chain starts at this leaf; a leaf-rule failure is about identity.
            let kind: PeerVerificationError.Kind = "\(reason)".hasPrefix("SPIFFELeafPolicy") ? .badIdentity : .untrusted
            return PeerVerificationError(kind: kind, description: "peer \(identity): \(reason)")
        }
        return PeerVerificationError(kind: .untrusted, description: "peer \(identity): certificate does not chain to a root in the trust bundle")
    }
}

/// Eino's rules for the leaf on top of RFC 5280: not a CA, exactly one SPIFFE URI SAN, and an
/// extended key usage that allows the role (when the extension is present).
struct SPIFFELeafPolicy: VerifierPolicy, Sendable {
    let role: PeerRole

    // The leaf's SAN is critical (its subject is empty), so this policy must claim it.
    let verifyingCriticalExtensions: [ASN1ObjectIdentifier] = [
        .X509ExtensionID.subjectAlternativeName, .X509ExtensionID.extendedKeyUsage,
    ]

    func chainMeetsPolicyRequirements(chain: UnverifiedCertificateChain) -> PolicyEvaluationResult {
        let leaf = chain.leaf
        do {
            if case .isCertificateAuthority = try leaf.extensions.basicConstraints {
                return .failsToMeetPolicy(reason: "SPIFFELeafPolicy: leaf is a CA certificate")
            }
            _ = try SPIFFEID(certificate: leaf)
            if let usage = try leaf.extensions.extendedKeyUsage {
                let needed: ExtendedKeyUsage.Usage = role == .client ? .clientAuth : .serverAuth
                if !usage.contains(needed) && !usage.contains(.any) {
                    return .failsToMeetPolicy(reason: "SPIFFELeafPolicy: extendedKeyUsage lacks \(needed)")
                }
            }
        } catch {
            return .failsToMeetPolicy(reason: "SPIFFELeafPolicy: \(error)")
        }
        return .meetsPolicy
    }
}

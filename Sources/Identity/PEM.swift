import Crypto
import SwiftASN1
import X509

/// PEM and DER conversions shared by the file formats and the TLS builders.
enum PEM {
    /// Every `CERTIFICATE` block in `text`, in file order (leaf first in a chain file).
    static func certificates(in text: String, path: String) throws -> [Certificate] {
        let documents: [PEMDocument]
        do {
            documents = try PEMDocument.parseMultiple(pemString: text)
        } catch {
            throw IdentityError.badPEM(path: path, problem: "not PEM: \(error)")
        }
        var certificates: [Certificate] = []
        for document in documents where document.discriminator == "CERTIFICATE" {
            do {
                certificates.append(try Certificate(pemDocument: document))
            } catch {
                throw IdentityError.badPEM(path: path, problem: "certificate \(certificates.count + 1) does not parse: \(error)")
            }
        }
        if certificates.isEmpty { throw IdentityError.badPEM(path: path, problem: "no CERTIFICATE block") }
        return certificates
    }

    /// A P-256 private key in PKCS#8 (`PRIVATE KEY`) or SEC 1 (`EC PRIVATE KEY`) form.
    static func privateKey(in text: String, path: String) throws -> P256.Signing.PrivateKey {
        do {
            return try P256.Signing.PrivateKey(pemRepresentation: text)
        } catch {
            throw IdentityError.badPEM(path: path, problem: "not an ECDSA P-256 private key in PEM: \(error)")
        }
    }

    /// Certificates as concatenated PEM blocks, each ending in a newline.
    static func encode(_ certificates: [Certificate]) throws -> String {
        try certificates.map { try $0.serializeAsPEM().pemString + "\n" }.joined()
    }

    static func der(_ certificate: Certificate) throws -> [UInt8] {
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        return serializer.serializedBytes
    }
}

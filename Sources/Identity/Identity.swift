/// Certificates, SPIFFE identities and TLS context builders. Filled in by the mTLS work.
public enum IdentityModule {}

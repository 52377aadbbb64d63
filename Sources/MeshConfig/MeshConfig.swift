/// The compiled, immutable, versioned snapshot a proxy runs on, built from `Manifests`
/// and registry state. Filled in by the data-plane work; kept as its own module so that
/// `Proxy` and `ControlPlane` share only these wire types.
public enum MeshConfigModule {}

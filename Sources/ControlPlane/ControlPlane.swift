/// Store, apply API, registry, CA service. Filled in by the control-plane work.
public enum ControlPlaneModule {}

/// The data plane: listeners, HTTP and TCP forwarding. Filled in by the data-plane work.
public enum ProxyModule {}

/// Counters, histograms and Prometheus exposition. Filled in by the telemetry work.
public enum TelemetryModule {}

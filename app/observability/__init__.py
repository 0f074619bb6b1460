"""Operability: structured logs, Prometheus metrics and the request telemetry middleware."""

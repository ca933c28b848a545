"""OpenTelemetry traces: the process's tracer provider (`provider`, the SDK) and the trace
context that travels with a job through the queue (`context`, the API alone)."""

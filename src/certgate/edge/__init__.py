"""The edge (POP): TLS termination, per-request client-certificate checks, rules and proxying."""

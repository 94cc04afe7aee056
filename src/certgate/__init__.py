"""certgate: a self-hostable mTLS client-certificate edge with an ESA-compatible control plane."""

__version__ = "0.1.0"

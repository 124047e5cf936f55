"""raytrade: a Ray-based distributed AI trading engine."""

__version__ = "0.1.0"

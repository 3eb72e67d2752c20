"""venvsmith: exactly pinned Python environments, resolved and built once, served over gRPC."""

__version__ = "0.1.0"

"""Clients of the two services, embedded in-process or remote over gRPC."""

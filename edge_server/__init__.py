"""The edge server: gRPC servicer, micro-batching, auth, health/reflection and ``serve()``."""

from edge_server.server import RunningServer, ServerOptions, build_server, serve

__all__ = ["RunningServer", "ServerOptions", "build_server", "serve"]

"""Wire protocol: generated protobuf/gRPC code (``v1``) and its conversion to splitnet types."""

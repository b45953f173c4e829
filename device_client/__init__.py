"""The device client: head + encoder locally, offload over gRPC, local fallback."""

from device_client.client import FrameResult, SplitClient
from device_client.connection import InsecureTokenError, ServerConfigError, TlsOptions
from device_client.detector import DetectorResult, SplitDetector
from device_client.estimator import LinkEstimator

__all__ = ["DetectorResult", "FrameResult", "InsecureTokenError", "LinkEstimator", "ServerConfigError", "SplitClient",
           "SplitDetector", "TlsOptions"]

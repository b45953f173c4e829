"""The device client: head + encoder locally, offload over gRPC, local fallback."""

from device_client.channel import TlsOptions
from device_client.client import FrameResult, SplitClient
from device_client.estimator import LinkEstimator

__all__ = ["FrameResult", "LinkEstimator", "SplitClient", "TlsOptions"]

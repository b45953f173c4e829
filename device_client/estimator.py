"""The link estimator the client keeps (:mod:`policies.network.estimator`, shared with the simulator)."""

from policies.network.estimator import LinkEstimator, LinkSample

__all__ = ["LinkEstimator", "LinkSample"]

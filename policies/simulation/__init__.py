"""Simulation: action profiles, the offloading simulator, the ``splitnet/Offload-v0`` env, ``simulate``."""

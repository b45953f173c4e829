"""Simulator speed: wall-clock seconds for one 10,000-frame episode of ``splitnet/Offload-v0``.

Runs the shipped profile over the first training trace with uniformly random actions
(every action kind is exercised), then the greedy and oracle baselines (the oracle
predicts every action each frame, so it is the slowest user of the simulator).

    python -m benchmarks.sim_speed [--profile P] [--frames 10000] [--json OUT]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.common import write_json
from policies.agents.baselines import baseline
from policies.network.trace_sets import load_split
from policies.simulation.env import OffloadEnv
from policies.simulation.profile import Profile
from policies.simulation.simulate import simulate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--profile", default=None)
    ap.add_argument("--frames", type=int, default=10_000)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    profile = Profile.load(args.profile)
    traces = load_split("train")[:1]
    env = OffloadEnv(profile, traces, episode_frames=args.frames)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for _ in range(args.frames):
        env.step(int(rng.integers(env.action_space.n)))
    env_s = time.perf_counter() - t0
    result = {"frames": args.frames, "trace": traces[0].name, "env_random_actions_s": env_s}
    for name in ("greedy", "oracle"):
        t0 = time.perf_counter()
        simulate(profile, traces, {name: baseline(name, profile)}, frames=args.frames)
        result[f"simulate_{name}_s"] = time.perf_counter() - t0
    for key, value in result.items():
        if key.endswith("_s"):
            print(f"{key:<24}{value:8.2f} s for {args.frames} frames")
    write_json("sim_speed", result, args.json)


if __name__ == "__main__":
    main()

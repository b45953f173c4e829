"""Learned policies: PPO and DQN from stable-baselines3 on ``splitnet/Offload-v0``.

A saved policy is stable-baselines3's zip plus ``splitnet.json`` (algorithm, action
names, network sizes). Loading reads only that JSON and the network weights with
``torch.load(weights_only=True)``; nothing in the file is unpickled.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from gymnasium import spaces

from policies.base import N_SCALARS, SCALAR_HIGH, Observation, observation_vector
from policies.env import OffloadEnv
from policies.profile import Profile
from policies.simulator import RewardWeights
from policies.traces import Trace
from splitnet.errors import CheckpointError

ALGOS = ("ppo", "dqn")
SHIPPED = {name: Path(__file__).parent / "assets" / f"{name}.zip" for name in ALGOS}
NET_ARCH = [64, 64]


def _algo_class(algo: str):
    from stable_baselines3 import DQN, PPO

    if algo not in ALGOS:
        raise ValueError(f"algorithm must be one of {ALGOS}, got {algo!r}")
    return PPO if algo == "ppo" else DQN


def _new_model(algo: str, env, seed: int = 0, verbose: int = 0):
    cls = _algo_class(algo)
    if algo == "ppo":
        return cls("MlpPolicy", env, seed=seed, verbose=verbose, n_steps=2048, batch_size=256, gamma=0.9,
                   learning_rate=3e-4, ent_coef=0.01, policy_kwargs={"net_arch": NET_ARCH}, device="cpu")
    return cls("MlpPolicy", env, seed=seed, verbose=verbose, gamma=0.9, learning_rate=5e-4, buffer_size=100_000,
               learning_starts=2000, exploration_fraction=0.3, exploration_final_eps=0.02, target_update_interval=2000,
               train_freq=4, policy_kwargs={"net_arch": NET_ARCH}, device="cpu")


def train_policy(profile: Profile, traces: Sequence[Trace], algo: str, steps: int, out: str | Path,
                 seed: int = 0, fps: float = 10.0, deadline_ms: float = 100.0,
                 weights: RewardWeights | None = None, progress: bool = True) -> Path:
    """Train on ``traces`` for ``steps`` frames and save to ``out`` (a zip)."""
    env = OffloadEnv(profile, traces, fps=fps, deadline_ms=deadline_ms, weights=weights)
    model = _new_model(algo, env, seed)
    model.learn(total_timesteps=steps, progress_bar=progress)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    meta = {"algo": algo, "actions": profile.names, "net_arch": NET_ARCH,
            "obs_dim": int(env.observation_space.shape[0]),
            "steps": steps, "seed": seed, "fps": fps, "deadline_ms": deadline_ms,
            "traces": [t.source or t.name for t in traces], "profile_sha256": profile.checkpoint_sha256}
    with zipfile.ZipFile(out, "a") as zf:
        zf.writestr("splitnet.json", json.dumps(meta, indent=2))
    return out


class LearnedPolicy:
    """A trained PPO/DQN network choosing among named actions (no pickle involved in loading)."""

    def __init__(self, path: str | Path, name: str | None = None) -> None:
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"policy file not found: {path}")
        try:
            with zipfile.ZipFile(path) as zf:
                meta = json.loads(zf.read("splitnet.json"))
                state = torch.load(io.BytesIO(zf.read("policy.pth")), map_location="cpu", weights_only=True)
        except (KeyError, zipfile.BadZipFile, json.JSONDecodeError, RuntimeError) as exc:
            raise CheckpointError(f"{path} is not a splitnet policy: {exc}") from exc
        self.meta = meta
        self.actions: list[str] = list(meta["actions"])
        self.name = name or meta["algo"]
        high = np.concatenate([SCALAR_HIGH, np.ones(meta["obs_dim"] - N_SCALARS, dtype=np.float32)])
        obs_space = spaces.Box(np.zeros_like(high), high, dtype=np.float32)
        act_space = spaces.Discrete(len(self.actions))
        if meta["algo"] == "ppo":
            from stable_baselines3.common.policies import ActorCriticPolicy

            self.net = ActorCriticPolicy(obs_space, act_space, lambda _: 0.0, net_arch=meta["net_arch"])
        else:
            from stable_baselines3.dqn.policies import DQNPolicy

            self.net = DQNPolicy(obs_space, act_space, lambda _: 0.0, net_arch=meta["net_arch"])
        self.net.load_state_dict(state)
        self.net.set_training_mode(False)
        if meta["obs_dim"] != N_SCALARS + len(self.actions):
            raise CheckpointError(f"{path}: observation size {meta['obs_dim']} does not fit "
                                  f"its {len(self.actions)} actions")

    def check_actions(self, names: Sequence[str]) -> None:
        if list(names) != self.actions:
            raise CheckpointError(f"policy {self.name} was trained on actions {self.actions}, not {list(names)}")

    def act(self, observation: Observation) -> str:
        vec = observation_vector(observation, self.actions)
        with torch.no_grad():
            action, _ = self.net.predict(vec, deterministic=True)
        return self.actions[int(action)]


def load_policy(spec: str) -> LearnedPolicy:
    """``ppo`` / ``dqn`` name the shipped policies; anything else is a path."""
    if spec in SHIPPED:
        return LearnedPolicy(SHIPPED[spec], spec)
    return LearnedPolicy(spec)

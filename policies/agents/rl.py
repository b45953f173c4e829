"""Learned policies: PPO and DQN from stable-baselines3 on ``splitnet/Offload-v0``.

Training starts, by default, with imitation: the network first learns to predict the
oracle's choice from the deployable observation (behaviour cloning on
``imitation_frames`` oracle decisions on the training traces), then stable-baselines3's
PPO or DQN improves it by reinforcement on the same environment. Without that start,
exploration floods the slow links and both algorithms settle on ``local``.

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

from policies.agents.baselines import OraclePolicy
from policies.common.policy import LEGACY_SCALARS, N_SCALARS, SCALAR_HIGH, Observation, observation_vector
from policies.network.traces import Trace
from policies.simulation.env import OffloadEnv
from policies.simulation.profile import Profile
from policies.simulation.simulator import RewardWeights
from splitnet.errors import CheckpointError

ALGOS = ("ppo", "dqn")
SHIPPED = {name: Path(__file__).parents[1] / "assets" / f"{name}.zip" for name in ALGOS}
NET_ARCH = [64, 64]


def _algo_class(algo: str):
    from stable_baselines3 import DQN, PPO

    if algo not in ALGOS:
        raise ValueError(f"algorithm must be one of {ALGOS}, got {algo!r}")
    return PPO if algo == "ppo" else DQN


HYPERPARAMETERS = {
    "ppo": {"n_steps": 2048, "batch_size": 256, "gamma": 0.9, "learning_rate": 3e-4, "ent_coef": 0.01},
    "dqn": {"gamma": 0.9, "learning_rate": 5e-4, "buffer_size": 100_000, "learning_starts": 2000,
            "exploration_fraction": 0.3, "exploration_final_eps": 0.02, "target_update_interval": 2000,
            "train_freq": 4},
}


def _new_model(algo: str, env, hyperparameters: dict, seed: int = 0, verbose: int = 0,
               net_arch: Sequence[int] = NET_ARCH):
    return _algo_class(algo)("MlpPolicy", env, seed=seed, verbose=verbose,
                             policy_kwargs={"net_arch": list(net_arch)}, device="cpu", **hyperparameters)


def oracle_demonstrations(env: OffloadEnv, frames: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Observations the device would have and the oracle's actions, over ``frames`` frames."""
    oracle = OraclePolicy(env.profile)
    names = env.profile.names
    obs_list, acts = [], []
    env.reset(seed=seed)
    for _ in range(frames):
        o = env.sim.observation(with_lookahead=True)
        a = names.index(oracle.act(o))
        obs_list.append(observation_vector(o, names))
        acts.append(a)
        _, _, term, trunc, _ = env.step(a)
        if term or trunc:
            env.reset()
    return np.stack(obs_list), np.asarray(acts, dtype=np.int64)


def imitate(model, obs: np.ndarray, actions: np.ndarray, epochs: int = 10, batch_size: int = 256,
            lr: float = 1e-3, seed: int = 0) -> float:
    """Behaviour cloning of ``actions`` into the model's network; returns the final training accuracy."""
    policy = model.policy
    net = policy.q_net if hasattr(policy, "q_net") else policy
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    x, y = torch.as_tensor(obs), torch.as_tensor(actions)
    gen = torch.Generator().manual_seed(seed)
    policy.set_training_mode(True)
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=gen).split(batch_size):
            if hasattr(policy, "q_net"):
                loss = torch.nn.functional.cross_entropy(policy.q_net(x[idx]), y[idx])
            else:
                loss = -policy.get_distribution(x[idx]).log_prob(y[idx]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    policy.set_training_mode(False)
    if hasattr(policy, "q_net_target"):
        policy.q_net_target.load_state_dict(policy.q_net.state_dict())
    with torch.no_grad():
        pred = policy.q_net(x).argmax(1) if hasattr(policy, "q_net") else policy.get_distribution(x).mode()
    return float((pred == y).float().mean())


def _predict_action(net, observation: Observation, actions: list[str], n_scalars: int) -> str:
    """The action a stable-baselines3 model or policy network picks for ``observation`` (deterministic)."""
    with torch.no_grad():
        action, _ = net.predict(observation_vector(observation, actions, n_scalars), deterministic=True)
    return actions[int(action)]


class _NetworkPolicy:
    """The network being trained, as a :class:`~policies.common.policy.Policy` (deterministic actions)."""

    def __init__(self, model, actions: Sequence[str]) -> None:
        self.model, self.actions, self.name = model, list(actions), "candidate"

    def act(self, observation: Observation) -> str:
        return _predict_action(self.model, observation, self.actions, N_SCALARS)


def _keep_best_callback(profile: Profile, traces: Sequence[Trace], every: int, frames: int, fps: float,
                        deadline_ms: float, weights: RewardWeights | None):
    """A stable-baselines3 callback: every ``every`` steps (and at the end) the network's mean reward over the
    first ``frames`` frames of each of ``traces`` (the training traces, always the same frames); the best
    network's weights are kept in ``callback.best_state`` (``best_reward``, ``best_step``)."""
    import copy

    from stable_baselines3.common.callbacks import BaseCallback

    from policies.simulation.simulate import simulate

    class KeepBest(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.best_reward, self.best_step, self.best_state = -float("inf"), -1, None
            self.history: list[tuple[int, float]] = []
            self._next = 0

        def score(self) -> None:
            report, _ = simulate(profile, traces, {"candidate": _NetworkPolicy(self.model, profile.names)},
                                 fps=fps, deadline_ms=deadline_ms, frames=frames, weights=weights)
            reward = float(report["policies"]["candidate"]["reward_mean"])
            self.history.append((self.num_timesteps, reward))
            if reward > self.best_reward:
                self.best_reward, self.best_step = reward, self.num_timesteps
                self.best_state = copy.deepcopy(self.model.policy.state_dict())

        def _on_training_start(self) -> None:
            self.score()  # the imitation start is a candidate too
            self._next = self.num_timesteps + every

        def _on_step(self) -> bool:
            if self.num_timesteps >= self._next:
                self.score()
                self._next += every
            return True

        def _on_training_end(self) -> None:
            if not self.history or self.history[-1][0] != self.num_timesteps:
                self.score()

    return KeepBest()


def train_policy(profile: Profile, traces: Sequence[Trace], algo: str, steps: int, out: str | Path,
                 seed: int = 0, fps: float = 10.0, deadline_ms: float = 100.0,
                 weights: RewardWeights | None = None, progress: bool = True,
                 imitation_frames: int = 50_000, net_arch: Sequence[int] = NET_ARCH,
                 hyperparameters: dict | None = None, keep_best_every: int = 0,
                 keep_best_frames: int = 2000) -> Path:
    """Train on ``traces`` (imitation of the oracle, then ``steps`` frames of RL) and save to ``out`` (a zip).

    ``hyperparameters`` override stable-baselines3's arguments in :data:`HYPERPARAMETERS`.
    ``keep_best_every`` > 0: every that many steps the network is scored on the first ``keep_best_frames``
    frames of each training trace, and the best-scoring network is saved rather than the last one (RL on a
    noisy reward drifts; the evaluation traces are not looked at).
    """
    env = OffloadEnv(profile, traces, fps=fps, deadline_ms=deadline_ms, weights=weights)
    hyperparameters = {**HYPERPARAMETERS[algo], **(hyperparameters or {})}
    model = _new_model(algo, env, hyperparameters, seed, net_arch=net_arch)
    imitation_accuracy = None
    if imitation_frames > 0:
        demo_env = OffloadEnv(profile, traces, fps=fps, deadline_ms=deadline_ms, weights=weights)
        obs, acts = oracle_demonstrations(demo_env, imitation_frames, seed)
        imitation_accuracy = imitate(model, obs, acts, seed=seed)
    keep_best = None
    if steps > 0:
        if keep_best_every > 0:
            keep_best = _keep_best_callback(profile, traces, keep_best_every, keep_best_frames, fps, deadline_ms,
                                            weights)
        model.learn(total_timesteps=steps, progress_bar=progress, callback=keep_best)
        if keep_best is not None and keep_best.best_state is not None:
            model.policy.load_state_dict(keep_best.best_state)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    meta = {"algo": algo, "actions": profile.names, "net_arch": list(net_arch),
            "hyperparameters": hyperparameters,
            "obs_dim": int(env.observation_space.shape[0]), "n_scalars": N_SCALARS,
            "steps": steps, "seed": seed, "fps": fps, "deadline_ms": deadline_ms,
            "imitation_frames": imitation_frames, "imitation_accuracy": imitation_accuracy,
            "kept": (None if keep_best is None else
                     {"by": f"mean reward, first {keep_best_frames} frames of each training trace",
                      "every_steps": keep_best_every, "step": keep_best.best_step,
                      "reward_mean": keep_best.best_reward, "history": keep_best.history}),
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
        self.n_scalars = int(meta.get("n_scalars", LEGACY_SCALARS))  # files without it predate the newer features
        if self.n_scalars not in (LEGACY_SCALARS, N_SCALARS) or meta["obs_dim"] != self.n_scalars + len(self.actions):
            raise CheckpointError(f"{path}: observation size {meta['obs_dim']} does not fit "
                                  f"its {len(self.actions)} actions")
        high = np.concatenate([SCALAR_HIGH[:self.n_scalars], np.ones(len(self.actions), dtype=np.float32)])
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

    def check_actions(self, names: Sequence[str]) -> None:
        if list(names) != self.actions:
            raise CheckpointError(f"policy {self.name} was trained on actions {self.actions}, not {list(names)}")

    def act(self, observation: Observation) -> str:
        return _predict_action(self.net, observation, self.actions, self.n_scalars)


def load_policy(spec: str) -> LearnedPolicy:
    """``ppo`` / ``dqn`` name the shipped policies; anything else is a path."""
    if spec in SHIPPED:
        return LearnedPolicy(SHIPPED[spec], spec)
    return LearnedPolicy(spec)

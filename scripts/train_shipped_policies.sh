#!/usr/bin/env bash
# Reproduces policies/assets/: the two profiles (one timing measurement, shared), then PPO and DQN
# trained on the training traces with the training-image profile (about 25 min on 2 CPU cores).
# DQN (observation with the last frame's latency and fallback): seeds 0-4 were trained with the command
# below and the one with the best mean reward on the TRAINING traces was kept (seed 4; about 8 min each).
# PPO: one run, seed 0 (about 14 min).
set -euo pipefail
cd "$(dirname "$0")/.."
S=${S:-.venv/bin/splitnet}
SCENARIO=(--device-class "Raspberry Pi Zero 2 class camera (14x slower than the measuring machine: about 93 ms per frame locally)"
  --device-speed 14 --server-speed 1
  --link-class "congested cellular uplink: recorded traces at 1/10 of their throughput"
  --trace-scale 0.1 --rtt-ms 20 --jitter-ms 5)
$S --threads 1 profile --data ../shared/data/cifar10/val.npz --limit 2000 "${SCENARIO[@]}" --json policies/assets/profile.json
$S --threads 1 profile --data ../shared/data/cifar10/train.npz --limit 2000 "${SCENARIO[@]}" \
  --timings-from policies/assets/profile.json --json policies/assets/profile_train.json
$S --threads 1 train policy --profile policies/assets/profile_train.json --traces train --algo ppo --steps 1000000 \
  --out policies/assets/ppo.zip &
$S --threads 1 train policy --profile policies/assets/profile_train.json --traces train --algo dqn --steps 600000 \
  --seed 4 --out policies/assets/dqn.zip
wait
$S --threads 1 simulate --traces eval --deadline-ms 100 --policy local edge greedy oracle static_best ppo dqn --json out/simulate_eval.json

"""The policies: baselines (local, edge, greedy, oracle...), robustMPC, PPO/DQN, recording, lookup by name."""

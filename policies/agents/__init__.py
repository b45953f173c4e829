"""The policies: observation and protocol, baselines (local, edge, greedy, oracle...), PPO/DQN, lookup by name."""

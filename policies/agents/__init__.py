"""The policies: observation and protocol, baselines (local, edge, greedy, oracle...), robustMPC, PPO/DQN, a
recording wrapper, lookup by name."""

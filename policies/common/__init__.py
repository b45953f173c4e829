"""What the device client, the simulator and the policies share: observation, policy interface, timing rules."""

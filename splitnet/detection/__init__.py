"""Object detection: a seeded synthetic data set, a small splittable detector, its losses and decoding."""

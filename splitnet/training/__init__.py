"""Training loops: teachers, slimmable bottlenecks and split detectors' object filters."""

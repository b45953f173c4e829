"""Training loops: teachers and slimmable bottlenecks."""

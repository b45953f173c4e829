"""Runnable examples (not part of the installed package): ``detection_loop.py`` and the
perception loop it runs (``perception_loop.py``), which ``benchmarks.detection_loop`` reuses."""

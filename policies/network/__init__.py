"""Network emulation: throughput traces and their split, channel models, the link proxy, the link estimator."""

"""Network emulation: throughput traces, the train/eval trace split, channel models, the ``splitnet link`` proxy,
and the link estimator a device (client or simulated) keeps from its own transfers."""

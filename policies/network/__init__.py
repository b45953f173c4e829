"""Network emulation: throughput traces, the train/eval trace split, channel models, the ``splitnet link`` proxy."""

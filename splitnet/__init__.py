"""splitnet: split computing for edge devices (core library, no networking)."""

import warnings

# CompressAI scripts a helper with torch.jit.script at import time, which torch now flags.
warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=FutureWarning)

from splitnet.errors import SplitnetError  # noqa: E402
from splitnet.models import ModelSpec, create_model, list_models, model_spec, register_model  # noqa: E402
from splitnet.splitting import list_split_points, split_model  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "ModelSpec",
    "SplitnetError",
    "__version__",
    "create_model",
    "list_models",
    "list_split_points",
    "model_spec",
    "register_model",
    "split_model",
]

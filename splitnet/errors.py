"""Exceptions raised by splitnet.

Every error a caller can trigger with bad input derives from :class:`SplitnetError`,
so a network boundary can catch one type and map it to a status code.
"""

from __future__ import annotations


class SplitnetError(Exception):
    """Base class of every error splitnet raises on bad input or bad state."""


class UnknownModelError(SplitnetError, KeyError):
    """A model name is not in the registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class UnknownSplitPointError(SplitnetError, KeyError):
    """A split node does not exist in the model or cannot be cut there."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class UnknownCodecError(SplitnetError, KeyError):
    """A codec id is not registered."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class UnknownWidthError(SplitnetError, ValueError):
    """A width is not one of the widths a slimmable module was built with."""


class ShapeError(SplitnetError, ValueError):
    """A tensor or latent has a shape the receiver cannot accept."""


class PayloadError(SplitnetError, ValueError):
    """Bytes on the wire are malformed: truncated, corrupted, wrong version or too large."""


class DecodeError(PayloadError):
    """Coded bytes could not be decoded back into a tensor."""


class CheckpointError(SplitnetError, ValueError):
    """A checkpoint file is missing, malformed or does not match the model."""


class DataError(SplitnetError, ValueError):
    """A data set file is missing or not in the expected npz format."""

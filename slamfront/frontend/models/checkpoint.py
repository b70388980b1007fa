"""Reading published checkpoints and loading them into a network with strict key/shape checks."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slamfront.errors import WeightsError

if TYPE_CHECKING:
    import torch


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The object stored in a torch checkpoint (tensors only: ``weights_only=True``), on CPU."""
    import pickle

    import torch

    try:
        loaded = torch.load(Path(path), map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError, ValueError) as exc:
        raise WeightsError(f"{path}: not a readable torch checkpoint: {_reason(exc)}") from exc
    if not isinstance(loaded, dict):
        raise WeightsError(f"{path}: expected a dict of tensors, got {type(loaded).__name__}")
    return loaded


_TORCH_ADVICE = ("Weights only load failed", "Please file an issue", "Check the documentation")


def _reason(exc: BaseException) -> str:
    """What is wrong with the file, without torch's advice around it (which suggests loading
    with ``weights_only=False``, i.e. running the file's code: never for a file refused)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    kept = [line for line in lines if not line.startswith(_TORCH_ADVICE)]
    text = "; ".join(kept) or (lines[0] if lines else type(exc).__name__)
    first, dot, _ = text.partition(". ")
    return first + dot.strip() if len(text) > 200 else text


def load_checked(
    module: torch.nn.Module, state: Mapping[str, Any], source: str | os.PathLike[str]
) -> None:
    """Load ``state`` into ``module``; the first missing, unexpected or misshaped key is an error.

    Keys are compared in the module's own order so the message names the first layer at fault.
    """
    import torch

    own = module.state_dict()
    for key, tensor in own.items():
        if key not in state:
            raise WeightsError(f"{source}: key {key!r} of the network is missing from the file")
        value = state[key]
        if not isinstance(value, torch.Tensor):
            raise WeightsError(f"{source}: key {key!r} holds {type(value).__name__}, not a tensor")
        if tuple(value.shape) != tuple(tensor.shape):
            raise WeightsError(
                f"{source}: key {key!r} has shape {tuple(value.shape)}, the network expects "
                f"{tuple(tensor.shape)}"
            )
    for key in state:
        if key not in own:
            raise WeightsError(f"{source}: unexpected key {key!r} (not part of the network)")
    for key, value in state.items():
        if value.dtype.is_floating_point and not bool(torch.isfinite(value).all()):
            raise WeightsError(f"{source}: key {key!r} holds NaN or infinite values")
    module.load_state_dict(dict(state), strict=True)


__all__ = ["load_checked", "read_checkpoint"]

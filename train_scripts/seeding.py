"""The one seeding block of every script: python, numpy and (when installed) torch, torch determinism."""

from __future__ import annotations

import importlib.util
import random

import numpy as np

__all__ = ["seed_everything"]


def seed_everything(seed: int, torch_threads: int = 0, torch_deterministic: bool = True) -> None:
    """Seed the global RNGs once, at the start of a script (the only place they are touched).

    Args:
        seed: seed of ``random``, ``numpy.random`` and ``torch``.
        torch_threads: torch intra-op threads (0 = leave torch's setting).
        torch_deterministic: set ``torch.backends.cudnn.deterministic`` (and ``benchmark`` off).
    """
    random.seed(seed)
    np.random.seed(seed)
    if importlib.util.find_spec("torch") is None:  # the light core installs no torch
        return
    import torch

    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = torch_deterministic
    torch.backends.cudnn.benchmark = not torch_deterministic
    if torch_threads > 0:
        torch.set_num_threads(torch_threads)

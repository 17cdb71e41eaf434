"""``render_mode="rgb_array"``: a small picture of the last round's decision (pure numpy, no plotting library).

Gymnasium's convention for ``rgb_array`` is one ``(H, W, 3)`` uint8 frame per ``render()`` call; Stable-Baselines3's
``make_vec_env`` asks for this mode by default and video recorders (``gymnasium.wrappers.RecordVideo``,
SB3's ``VecVideoRecorder``) consume it. The frame has four horizontal bands, top to bottom:

=========  ========================================================================================
band       cells
=========  ========================================================================================
MS link    one cell per MS subchannel, coloured by its owner client, brightness = power / p_max^k
FS link    the same for the FS subchannels
split      one cell per block: blocks 1..c (clients) in blue, c+1..L (main server) in orange
rank       one cell per candidate LoRA rank, the chosen one white
=========  ========================================================================================

Before the first step of an episode the bands are drawn empty (dark grey).
"""

from __future__ import annotations

import numpy as np

from fedsllm_env.types import Decision

__all__ = ["FRAME_HEIGHT", "FRAME_WIDTH", "CLIENT_COLORS", "client_color", "render_decision"]

FRAME_WIDTH = 256
"""Frame width, pixels (a multiple of 16, as video encoders like)."""
FRAME_HEIGHT = 128
"""Frame height, pixels: four bands of 26 px separated by 6 px gaps."""
_BAND_PX, _GAP_PX = 26, 6

CLIENT_COLORS = np.array([
    [31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
    [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207],
], dtype=np.float64)
"""Colour of client k is ``CLIENT_COLORS[k % 10]`` (matplotlib's tab10 palette)."""
_EMPTY = np.array([40, 40, 40], dtype=np.uint8)
_CLIENT_SIDE = np.array([31, 119, 180], dtype=np.uint8)
_SERVER_SIDE = np.array([255, 127, 14], dtype=np.uint8)
_CHOSEN = np.array([255, 255, 255], dtype=np.uint8)
_OTHER = np.array([90, 90, 90], dtype=np.uint8)
_MIN_BRIGHTNESS = 0.25  # a subchannel used at ~0 W stays visible


def client_color(client: int, power_fraction: float = 1.0) -> np.ndarray:
    """RGB (uint8) of ``client``'s cell at ``power_fraction`` = power / p_max^k (clipped to [0, 1])."""
    level = _MIN_BRIGHTNESS + (1.0 - _MIN_BRIGHTNESS) * float(np.clip(power_fraction, 0.0, 1.0))
    return np.round(CLIENT_COLORS[int(client) % len(CLIENT_COLORS)] * level).astype(np.uint8)


def _cell_edges(n: int) -> np.ndarray:
    """Left pixel edge of each of ``n`` equal cells across the frame (1 px gap between cells when they fit)."""
    return np.round(np.linspace(0, FRAME_WIDTH, n + 1)).astype(int)


def _band(frame: np.ndarray, row: int, colors: np.ndarray) -> None:
    """Paint band ``row`` with one cell per colour (``colors``: (n, 3) uint8)."""
    top = row * (_BAND_PX + _GAP_PX)
    edges = _cell_edges(len(colors))
    sep = 1 if FRAME_WIDTH // max(len(colors), 1) >= 4 else 0
    for i, color in enumerate(colors):
        frame[top:top + _BAND_PX, edges[i]:max(edges[i] + 1, edges[i + 1] - sep)] = color


def render_decision(decision: Decision | None, num_subchannels: tuple[int, int], n_layer: int,
                    ranks: tuple[int, ...], client_max_power_w: np.ndarray | None) -> np.ndarray:
    """The ``(FRAME_HEIGHT, FRAME_WIDTH, 3)`` uint8 frame of one round's decision.

    Args:
        decision: the decision of the last round (None before the first step: empty bands).
        num_subchannels: (M, N), subchannels of the MS and FS links.
        n_layer: L, blocks of the model (the split band has L cells).
        ranks: candidate LoRA ranks (the rank band has one cell each).
        client_max_power_w: (K,) p_max^k, W (brightness reference; needed with a decision).

    Returns:
        The frame.
    """
    m, n = num_subchannels
    frame = np.zeros((FRAME_HEIGHT, FRAME_WIDTH, 3), dtype=np.uint8)
    if decision is None:
        for row, cells in enumerate((m, n, n_layer, len(ranks))):
            _band(frame, row, np.tile(_EMPTY, (cells, 1)))
        return frame
    if client_max_power_w is None:
        raise ValueError("client_max_power_w is needed to draw a decision")
    pmax = np.asarray(client_max_power_w, dtype=np.float64)
    for row, (owners, power) in enumerate(((decision.assign_ms, decision.power_ms_w),
                                           (decision.assign_fs, decision.power_fs_w))):
        owners = np.asarray(owners, dtype=int)
        fractions = np.asarray(power, dtype=np.float64) / np.maximum(pmax[owners], 1e-30)
        _band(frame, row, np.stack([client_color(k, f) for k, f in zip(owners, fractions)]))
    blocks = np.arange(1, n_layer + 1)
    _band(frame, 2, np.where((blocks <= int(decision.split))[:, None], _CLIENT_SIDE, _SERVER_SIDE))
    chosen = np.asarray(ranks) == int(decision.rank)
    _band(frame, 3, np.where(chosen[:, None], _CHOSEN, _OTHER))
    return frame

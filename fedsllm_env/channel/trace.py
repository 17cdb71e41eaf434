"""Channel model ``"trace"``: replays recorded gains and loads from a ``.npz`` file.

File format (``WirelessConfig.channel_trace_path``), a numpy ``.npz`` archive with exactly these arrays:

=========  ============  ==============================================================================
key        shape         content
=========  ============  ==============================================================================
gain_ms    (T, K, M)     linear channel gain of client k on MS subchannel i in recorded round t (> 0)
gain_fs    (T, K, N)     linear channel gain on the FS subchannels (> 0)
load       (T, K)        device load in [0, ComputeConfig.load_max]
=========  ============  ==============================================================================

K, M, N must equal the config's ``num_clients``, ``num_subchannels_ms`` and ``num_subchannels_fs``; every
value must be finite. Each episode starts at a row drawn from the episode's generator and advances one row
per round, wrapping around after row T-1. Devices (f_k, kappa_k, p_max) are drawn from the config as in
the other models. :func:`record_trace` records a trace from any channel model and :func:`save_trace`
writes one (atomically), e.g. to replay measured gains or to freeze a scenario for a benchmark.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedsllm_env.atomic import atomic_write
from fedsllm_env.channel.base import ChannelModel, draw_devices
from fedsllm_env.config import ComputeConfig, WirelessConfig
from fedsllm_env.errors import ConfigError
from fedsllm_env.types import ChannelState, Scenario

__all__ = ["TRACE_KEYS", "TraceStart", "TraceChannel", "load_trace", "record_trace", "save_trace"]

TRACE_KEYS = ("gain_ms", "gain_fs", "load")
"""The arrays a trace file holds."""


def _check_arrays(arrays: dict[str, np.ndarray], source: str, k: int | None = None, m: int | None = None,
                  n: int | None = None, load_max: float = 1.0) -> dict[str, np.ndarray]:
    """Validated float copies of a trace's arrays; ConfigError naming ``source`` and the problem otherwise."""
    keys = set(arrays)
    if keys != set(TRACE_KEYS):
        raise ConfigError(f"channel trace {source}: expected exactly the arrays {list(TRACE_KEYS)}, got "
                          f"{sorted(keys)} (missing {sorted(set(TRACE_KEYS) - keys)}, "
                          f"unknown {sorted(keys - set(TRACE_KEYS))})")
    out = {}
    for key in TRACE_KEYS:
        arr = np.asarray(arrays[key])
        if arr.dtype.kind not in "iuf":
            raise ConfigError(f"channel trace {source}: {key} must hold real numbers, got dtype {arr.dtype}")
        out[key] = arr.astype(float)
    g_ms, g_fs, load = out["gain_ms"], out["gain_fs"], out["load"]
    if g_ms.ndim != 3 or g_fs.ndim != 3 or load.ndim != 2:
        raise ConfigError(f"channel trace {source}: expected gain_ms (T, K, M), gain_fs (T, K, N), load (T, K), "
                          f"got shapes {g_ms.shape}, {g_fs.shape}, {load.shape}")
    t = g_ms.shape[0]
    k = g_ms.shape[1] if k is None else k
    m = g_ms.shape[2] if m is None else m
    n = g_fs.shape[2] if n is None else n
    for key, arr, want in (("gain_ms", g_ms, (t, k, m)), ("gain_fs", g_fs, (t, k, n)), ("load", load, (t, k))):
        if arr.shape != want or t < 1:
            raise ConfigError(f"channel trace {source}: {key} has shape {arr.shape}, expected {want} "
                              f"(T >= 1 rounds, K={k} clients, M={m} / N={n} subchannels)")
        bad = np.argwhere(~np.isfinite(arr))
        if bad.size:
            raise ConfigError(f"channel trace {source}: {key} holds a non-finite value at index {tuple(bad[0])}")
    for key, arr in (("gain_ms", g_ms), ("gain_fs", g_fs)):
        if arr.min() <= 0:
            raise ConfigError(f"channel trace {source}: {key} must be > 0 (linear gains), "
                              f"found {arr.min()!r} at index {np.unravel_index(arr.argmin(), arr.shape)}")
    if load.min() < 0 or load.max() > load_max:
        raise ConfigError(f"channel trace {source}: load must be in [0, load_max={load_max}], "
                          f"found values in [{load.min()!r}, {load.max()!r}]")
    return out


def load_trace(path: str | Path, wireless: WirelessConfig, compute: ComputeConfig) -> dict[str, np.ndarray]:
    """Read and validate a trace file against the config's K, M, N and load_max.

    Raises:
        FileNotFoundError: no file at ``path``.
        ConfigError: not an ``.npz`` archive, or arrays with the wrong keys, shapes, dtypes or values.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"channel trace {path} does not exist (WirelessConfig.channel_trace_path)")
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ConfigError(f"channel trace {path}: expected an .npz archive of {list(TRACE_KEYS)}, "
                              f"got a single {type(data).__name__}")
        with data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"channel trace {path}: cannot read it as an .npz archive ({exc})") from exc
    return _check_arrays(arrays, str(path), wireless.num_clients, wireless.num_subchannels_ms,
                         wireless.num_subchannels_fs, compute.load_max)


def save_trace(path: str | Path, gain_ms: np.ndarray, gain_fs: np.ndarray, load: np.ndarray) -> Path:
    """Validate (shapes agree with each other, finite, gains > 0, loads in [0, 1]) and write a trace atomically."""
    arrays = _check_arrays({"gain_ms": gain_ms, "gain_fs": gain_fs, "load": load}, str(path))
    return atomic_write(path, lambda fh: np.savez(fh, **arrays))


def record_trace(model: ChannelModel, rng: np.random.Generator, rounds: int) -> dict[str, np.ndarray]:
    """Run ``model`` for one episode of ``rounds`` rounds and stack what it shows (the :func:`save_trace` arrays)."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    scenario = model.draw_scenario(rng)
    state = model.initial_state(rng, scenario)
    seen = [model.observe(state)]
    for _ in range(rounds - 1):
        state = model.next_state(rng, state, scenario)
        seen.append(model.observe(state))
    return {key: np.stack([getattr(s, key) for s in seen]) for key in TRACE_KEYS}


@dataclass(frozen=True)
class TraceStart:
    """Hidden per-episode draw of the trace model (``Scenario.hidden``)."""

    row: int
    """Trace row of the episode's first round."""


class TraceChannel:
    """Replays ``WirelessConfig.channel_trace_path`` (module docstring); its state is the current trace row.

    Raises:
        ConfigError: no path configured, or a malformed trace (see :func:`load_trace`).
        FileNotFoundError: the file does not exist.
    """

    def __init__(self, wireless: WirelessConfig, compute: ComputeConfig):
        if not wireless.channel_trace_path:
            raise ConfigError("channel_model='trace' needs WirelessConfig.channel_trace_path (an .npz trace file)")
        self.wireless = wireless
        self.compute = compute
        self.trace = load_trace(wireless.channel_trace_path, wireless, compute)
        self.num_rows = int(self.trace["load"].shape[0])

    def draw_scenario(self, rng: np.random.Generator) -> Scenario:
        """Start row ~ U{0..T-1}, then the devices."""
        start = TraceStart(int(rng.integers(self.num_rows)))
        return draw_devices(rng, self.wireless, self.compute, hidden=start)

    def initial_state(self, rng: np.random.Generator, scenario: Scenario) -> int:
        """The episode's start row (no draw)."""
        if not isinstance(scenario.hidden, TraceStart):
            raise ValueError("TraceChannel needs a scenario drawn by its own draw_scenario")
        return scenario.hidden.row

    def next_state(self, rng: np.random.Generator, state: int, scenario: Scenario) -> int:
        """The next row, wrapping around (no draw)."""
        return (int(state) + 1) % self.num_rows

    def observe(self, state: int) -> ChannelState:
        """Copies of the row's gains and loads."""
        t = self.trace
        return ChannelState(t["gain_ms"][state].copy(), t["gain_fs"][state].copy(), t["load"][state].copy())

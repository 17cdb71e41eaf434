"""The channel-model protocol and the device draws every model shares (pure numpy).

A channel model owns everything about the wireless cell that an agent may not see (positions, shadowing,
small-scale fading, LOS states, a trace's read position) and shows only a :class:`ChannelState` (gains and
loads) through :meth:`ChannelModel.observe`. The env, the baselines and the tests call a model only
through this protocol, so a new model is one new module plus one line in
:data:`fedsllm_env.channel.CHANNEL_MODELS`.

Randomness comes only from the ``numpy.random.Generator`` passed to each call, so the same seed gives the
same episode.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from fedsllm_env.config import ComputeConfig, WirelessConfig
from fedsllm_env.types import ChannelState, Scenario
from fedsllm_env.units import dbm_to_watt

__all__ = ["ChannelModel", "draw_devices", "device_class_flops_per_cycle", "step_load", "initial_load"]


@runtime_checkable
class ChannelModel(Protocol):
    """A wireless channel and device-load process, advanced once per training round.

    ``State`` is the model's own (hidden) per-round record; only :meth:`observe` turns it into what the
    agent and the optimizer see.
    """

    wireless: WirelessConfig
    compute: ComputeConfig

    def draw_scenario(self, rng: np.random.Generator) -> Scenario:
        """Per-episode draw: devices (f_k, kappa_k, p_max) and the model's hidden draw in ``Scenario.hidden``."""
        ...

    def initial_state(self, rng: np.random.Generator, scenario: Scenario) -> Any:
        """Hidden state of the first round of the episode ``scenario`` belongs to."""
        ...

    def next_state(self, rng: np.random.Generator, state: Any, scenario: Scenario) -> Any:
        """Hidden state one round (one env step) after ``state``."""
        ...

    def observe(self, state: Any) -> ChannelState:
        """Observable part of ``state``: (K, M) and (K, N) linear gains, (K,) device loads."""
        ...


def draw_devices(rng: np.random.Generator, wcfg: WirelessConfig, ccfg: ComputeConfig, hidden: Any = None) -> Scenario:
    """Scenario with f_k ~ U(client_cpu_freq_range_hz) Hz, kappa_k drawn from the choices (or set by the client's
    device class, :func:`device_class_flops_per_cycle`), p_max = the dBm cap in W.

    Args:
        rng: the episode's generator (draws f_k, then kappa_k).
        wcfg: K and the power cap.
        ccfg: device ranges.
        hidden: the channel model's per-episode draw, stored in ``Scenario.hidden``.
    """
    k = wcfg.num_clients
    lo, hi = ccfg.client_cpu_freq_range_hz
    freq = rng.uniform(lo, hi, k)
    kappa = rng.choice(np.asarray(ccfg.client_flops_per_cycle_choices, dtype=float), size=k)
    if ccfg.device_class_flops_per_cycle:
        kappa = device_class_flops_per_cycle(k, ccfg)
    pmax = np.full(k, float(dbm_to_watt(wcfg.client_max_power_dbm)))
    return Scenario(freq, kappa, pmax, hidden)


def device_class_flops_per_cycle(num_clients: int, ccfg: ComputeConfig) -> np.ndarray:
    """(K,) kappa_k of a fleet of device classes: client k is class ``k mod len(classes)``, FLOPs/cycle."""
    classes = np.asarray(ccfg.device_class_flops_per_cycle, dtype=float)
    return classes[np.arange(num_clients) % classes.size]


def initial_load(rng: np.random.Generator, num_clients: int, cfg: ComputeConfig) -> np.ndarray:
    """(K,) first-round device load: ``load_mean`` plus one innovation, clipped to [0, load_max]."""
    return np.clip(cfg.load_mean + cfg.load_noise_std * rng.standard_normal(num_clients), 0.0, cfg.load_max)


def step_load(load: np.ndarray, cfg: ComputeConfig, noise: np.ndarray) -> np.ndarray:
    """One AR(1) step of the device load with standard-normal ``noise`` (any shape), clipped to [0, load_max]."""
    nxt = cfg.load_mean + cfg.load_ar_coef * (load - cfg.load_mean) + cfg.load_noise_std * noise
    return np.minimum(np.maximum(nxt, 0.0), cfg.load_max)

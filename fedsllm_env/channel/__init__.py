"""Channel models: the wireless cell and device loads behind the env's observations (pure numpy).

``WirelessConfig.channel_model`` picks one by name from :data:`CHANNEL_MODELS`; :func:`make_channel_model`
builds it. Every model follows :class:`ChannelModel` (draw a scenario, first state, next state, observe)
and keeps its hidden state (positions, shadowing, fading, ...) to itself: agents and the optimizer see
only :class:`~fedsllm_env.types.ChannelState` (gains and loads).

Adding a model = one module with a class ``Model(wireless, compute)`` that follows the protocol, plus one
line in :data:`CHANNEL_MODELS` (or :func:`register_channel_model` from outside the package).
"""

from __future__ import annotations

import importlib
from typing import Callable

from fedsllm_env.channel.base import ChannelModel, device_class_flops_per_cycle, draw_devices, initial_load, step_load
from fedsllm_env.channel.macro import (
    CellDraw,
    FadingState,
    MacroChannel,
    channel_gain,
    draw_rayleigh,
    drop_clients,
    evolve_fading,
    large_scale_gain,
    move_clients,
    path_loss_db,
)
from fedsllm_env.config import ComputeConfig, WirelessConfig
from fedsllm_env.errors import ConfigError

__all__ = [
    "CHANNEL_MODELS",
    "ChannelModel",
    "ChannelModelFactory",
    "make_channel_model",
    "register_channel_model",
    "MacroChannel",
    "CellDraw",
    "FadingState",
    "draw_devices",
    "device_class_flops_per_cycle",
    "initial_load",
    "step_load",
    "path_loss_db",
    "drop_clients",
    "draw_rayleigh",
    "evolve_fading",
    "large_scale_gain",
    "channel_gain",
    "move_clients",
]

ChannelModelFactory = Callable[[WirelessConfig, ComputeConfig], ChannelModel]
"""``factory(wireless, compute) -> model``; a model class is one."""

CHANNEL_MODELS: dict[str, str | ChannelModelFactory] = {
    "macro": "fedsllm_env.channel.macro:MacroChannel",  # default: 128.1 + 37.6 log10 d_km, Rayleigh, AR(1) load
    "umi": "fedsllm_env.channel.umi:UMiChannel",  # 3GPP TR 38.901 UMi street canyon large-scale gain
    "trace": "fedsllm_env.channel.trace:TraceChannel",  # replays gains and loads from an .npz file
}
"""Name (``WirelessConfig.channel_model``) -> ``"module:Class"`` (imported on first use) or a factory."""


def register_channel_model(name: str, factory: ChannelModelFactory, *, overwrite: bool = False) -> None:
    """Make ``factory`` selectable as ``WirelessConfig.channel_model = name``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"channel model name must be a non-empty string, got {name!r}")
    if name in CHANNEL_MODELS and not overwrite:
        raise ValueError(f"channel model {name!r} is already registered (pass overwrite=True to replace it)")
    CHANNEL_MODELS[name] = factory


def make_channel_model(wireless: WirelessConfig, compute: ComputeConfig) -> ChannelModel:
    """The model named by ``wireless.channel_model``, built for these configs.

    Raises:
        ConfigError: unknown name (the message lists the registered ones) or a config the model rejects.
    """
    name = wireless.channel_model
    if name not in CHANNEL_MODELS:
        raise ConfigError(f"WirelessConfig.channel_model must be one of {sorted(CHANNEL_MODELS)}, got {name!r}")
    factory = CHANNEL_MODELS[name]
    if isinstance(factory, str):
        module, _, attr = factory.partition(":")
        factory = getattr(importlib.import_module(module), attr)
    return factory(wireless, compute)

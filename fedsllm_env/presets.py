"""Scenario presets: named nested config overrides for the regimes where the split/rank decision differs.

Use them as ``gym.make(env_id, config=PRESETS[name])`` or ``--preset NAME`` on every ``fedsllm`` command
(a ``--config`` file and the other flags are applied on top). Each preset changes only the fields of its
regime; everything else stays at the package defaults (``fedsllm_env/config.py``). The docstring of
each preset (:data:`PRESET_DOCS`) states the regime it models and where its numbers come from. Which cut
and rank the optimizer picks in each preset, and how much the conventional schemes lose there, is
measured by ``fedsllm figures --presets`` (README, "Scenario presets").
"""

from __future__ import annotations

import copy
from typing import Any

from fedsllm_env.config import merge_overrides
from fedsllm_env.errors import ConfigError

__all__ = ["PRESETS", "PRESET_DOCS", "preset_overrides", "with_preset"]

PRESETS: dict[str, dict[str, Any]] = {
    "paper-default": {},
    "server-scarce": {
        "wireless": {"num_clients": 20, "num_subchannels_ms": 20, "num_subchannels_fs": 20},
        "compute": {"server_flops_per_cycle": 8.0},
    },
    "memory-capped": {
        "wireless": {"num_clients": 20, "num_subchannels_ms": 20, "num_subchannels_fs": 20},
        "compute": {"server_flops_per_cycle": 8.0, "client_memory_bytes": 4.9e6},
    },
    "narrow-fs-uplink": {
        "wireless": {"subchannel_bandwidth_fs_hz": 90e3},
    },
    "single-tone-fs-uplink": {
        "wireless": {"subchannel_bandwidth_fs_hz": 15e3},
    },
    "non-iid": {
        "training": {"partition": "dirichlet"},
    },
    "heterogeneous-devices": {
        "wireless": {"num_clients": 10},
        "compute": {"server_flops_per_cycle": 4.0, "device_class_flops_per_cycle": [2.0, 8.0, 20.0],
                    "device_class_memory_bytes": [3.0e6, 12.0e6, 30.0e6]},
    },
    "mixed-fleet": {
        "compute": {"device_class_flops_per_cycle": [4.0, 16.0], "device_class_memory_bytes": [2.2e6, 12.0e6]},
    },
}
"""Preset name -> nested config overrides (``FedsLLMConfig.from_dict`` accepts each as is)."""

PRESET_DOCS: dict[str, str] = {
    "paper-default": (
        "The paper's setting as this package models it (SPEC.md): K = 5 clients in a 500 m macro cell, "
        "M = N = 10 subchannels of 1 MHz per uplink, 23 dBm per client, a main server 20x the mean device "
        "(3 GHz x 80 FLOPs/cycle), IID data. No overrides."),
    "server-scarce": (
        "Many clients share one small edge server: K = 20 clients (20 subchannels of 1 MHz per link, as in "
        "the default) and a main server of 3 GHz x 8 FLOPs/cycle = 24 GFLOP/s (one core with a single "
        "128-bit FMA pipe: 4 fp32 lanes x 2 FLOPs), so the server's rate per client (1.2 GFLOP/s) is below "
        "every device's peak (1-2 GHz x 4-16 FLOPs/cycle = 4-32 GFLOP/s, the default device draw). This is the "
        "regime where split learning's literature finds a deeper cut pays: server compute per client "
        "scarcer than the slowest client's (Thapa et al., SplitFed, AAAI 2022; Lin et al., Efficient "
        "Parallel Split Learning over Resource-constrained Wireless Edge Networks, IEEE TMC 2024). The "
        "calibration measured that a deeper cut also needs more rounds (E(r, 5) is 14-22 % above E(r, 1), both partitions), "
        "so the cut is a real trade-off here."),
    "memory-capped": (
        "The server-scarce cell with devices whose memory bounds the cut: each client may spend 4.9 MB on "
        "its part of the model (frozen weights at model.dtype (fp32 by default; activation_bits, the wire, "
        "does not change them), LoRA and AdamW state in fp32, the cut activations of one micro-batch; "
        "``compute.client_memory_bytes``, ``ModelShape.client_memory_bytes``). For the default "
        "backbone (6 x 128 GPT-2, 1536-token vocabulary, b = 8, n = 80, fp32) that admits cut 2 at every rank "
        "(4.73 MB at r = 64), cut 3 only up to r = 16 (4.87 MB) and never cuts 4-5 (5.6 MB and more), as "
        "a phone holds only a slice of a billion-parameter LLM beside its other apps. With model.dtype "
        "'bfloat16' the frozen weights take 2 bytes each and the cap binds later: cut 3 up to r = 32 "
        "(3.81 MB), cut 4 up to r = 16 (4.14 MB), cut 5 up to r = 8 (4.57 MB)."),
    "narrow-fs-uplink": (
        "A narrow uplink to the federated server: FS subchannels of 90 kHz, the 6-tone NB-IoT uplink "
        "allocation (6 x 15 kHz subcarriers, 3GPP TS 36.211 sec. 10.1), instead of 1 MHz; MS link "
        "unchanged. Uploading the client-side LoRA adapters (q r (d_in + d_out) bits per adapted module) "
        "then costs 11x more time, so the rank's upload cost competes with its faster convergence."),
    "single-tone-fs-uplink": (
        "The narrowest FS uplink: single-tone NB-IoT subchannels of 15 kHz (one subcarrier, 3GPP TS 36.211 "
        "sec. 10.1), MS link unchanged, so the adapters' upload dominates a round and a smaller rank wins "
        "even though it needs more rounds."),
    "non-iid": (
        "Label-skewed data: each client's share of every venue type drawn from Dirichlet(0.5) "
        "(``training.partition = 'dirichlet'``, alpha 0.5, the common non-IID benchmark of Hsu, Qi and "
        "Brown 2019), so convergence E(r, c) is the one measured under that partition (the calibration "
        "measures IID and Dirichlet per rank and cut)."),
    "heterogeneous-devices": (
        "A fleet of three device classes on a scarce server, made for the heterogeneous ids (a cut and a rank "
        "per client, ``FedsLLM-Surrogate-Hetero-v0``; with the shared ids every client gets the weakest class's "
        "choices). Client k is class k mod 3 (``compute.device_class_*``): 2, 8 and 20 FLOPs/cycle "
        "at 1-2 GHz, so the class means are 3, 12 and 30 GFLOP/s, a 10x spread between the weakest and the "
        "strongest class; memory caps of 3, 12 and 30 MB, proportional to compute as in one edge product line "
        "(NVIDIA Jetson Orin: Orin Nano 8 GB at 40 TOPS, Orin NX 16 GB at 100 TOPS, AGX Orin 64 GB at 275 TOPS, "
        "0.16-0.23 GB per TOPS), scaled as memory-capped's so that on the default backbone the weakest class "
        "holds only cut 1 (2.83 MB at r = 64) and the two others every (cut, rank) (10.45 MB at cut 5, r = 64). "
        "K = 10 (the default M = N = 10) and a main server of 3 GHz x 4 FLOPs/cycle = 12 GFLOP/s, 1.2 GFLOP/s "
        "per client as in server-scarce, where a deeper cut pays. A shared (cut, rank) must fit the weakest "
        "class (cut 1); per client, the strong classes may offload the server."),
    "mixed-fleet": (
        "The paper's cell (K = 5, the default server) with two device classes, made for the heterogeneous ids: "
        "memory-starved phones (class 0: clients 0, 2, 4; 4 FLOPs/cycle, 2.2 MB, which holds cut 1 only up to "
        "r = 8 on the default backbone) and laptops (class 1: clients 1, 3; 16 FLOPs/cycle, 12 MB, every (cut, "
        "rank)). A shared (cut, rank) must fit the phones (r <= 8); per client the laptops may train larger "
        "ranks (HetLoRA's setting, arXiv:2401.06432), whose aggregation the heterogeneous engine prices."),
}
"""Preset name -> the regime it models and the source of its numbers."""


def preset_overrides(name: str) -> dict[str, Any]:
    """A deep copy of ``PRESETS[name]``.

    Raises:
        ConfigError: Unknown preset (the message lists the known ones).
    """
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return copy.deepcopy(PRESETS[name])


def with_preset(name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """``PRESETS[name]`` with ``overrides`` merged over it at every level ("" = no preset: ``overrides``)."""
    return merge_overrides(preset_overrides(name) if name else None, overrides)

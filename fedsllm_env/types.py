"""Frozen records passed between layers: scenario, channel state, decision, delay breakdown, round outcome."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Scenario", "ChannelState", "Decision", "DelayBreakdown", "RoundOutcome"]


@dataclass(frozen=True)
class Scenario:
    """What stays fixed during one episode (drawn at reset): the devices, plus the channel model's hidden draw."""

    client_cpu_freq_hz: np.ndarray
    """(K,) f_k, Hz."""
    client_flops_per_cycle: np.ndarray
    """(K,) kappa_k, FLOPs per cycle."""
    client_max_power_w: np.ndarray
    """(K,) p_max^k on each link, W."""
    hidden: Any = None
    """The channel model's per-episode draw (e.g. positions and shadowing), opaque to agents and the optimizer;
    None in a scenario rebuilt from an observation."""

    @property
    def num_clients(self) -> int:
        """K."""
        return int(self.client_cpu_freq_hz.shape[0])

    @property
    def client_peak_flops(self) -> np.ndarray:
        """(K,) f_k * kappa_k, FLOP/s with no background load."""
        return self.client_cpu_freq_hz * self.client_flops_per_cycle


@dataclass(frozen=True)
class ChannelState:
    """What an agent may observe of one round's wireless and load state (the channel model keeps the rest)."""

    gain_ms: np.ndarray
    """(K, M) linear channel gain of client k on MS subchannel i."""
    gain_fs: np.ndarray
    """(K, N) linear channel gain of client k on FS subchannel i."""
    load: np.ndarray
    """(K,) fraction of each device's clock busy with other work, in [0, load_max]."""


@dataclass(frozen=True)
class Decision:
    """One round's resource-allocation decision."""

    assign_ms: np.ndarray
    """(M,) int, owner client of each MS subchannel."""
    assign_fs: np.ndarray
    """(N,) int, owner client of each FS subchannel."""
    power_ms_w: np.ndarray
    """(M,) transmit power its owner uses on each MS subchannel, W."""
    power_fs_w: np.ndarray
    """(N,) transmit power its owner uses on each FS subchannel, W."""
    split: int | np.ndarray
    """Cut index c: blocks 1..c on clients, c+1..L on the main server (or a (K,) array, a cut c_k per client:
    the heterogeneous model of ``fedsllm_env.delay``)."""
    rank: int | np.ndarray
    """LoRA rank r shared by every adapter (or a (K,) array, a rank r_k per client)."""

    def replace(self, **changes: Any) -> Decision:
        """Copy with some fields changed."""
        from dataclasses import replace

        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict."""
        return {
            "assign_ms": self.assign_ms.tolist(),
            "assign_fs": self.assign_fs.tolist(),
            "power_ms_w": self.power_ms_w.tolist(),
            "power_fs_w": self.power_fs_w.tolist(),
            "split": np.asarray(self.split).astype(int).tolist(),
            "rank": np.asarray(self.rank).astype(int).tolist(),
        }


@dataclass(frozen=True)
class DelayBreakdown:
    """Every delay term of one round (seconds) and the payloads behind them (bits)."""

    client_forward_s: np.ndarray
    """(K,) T_k^F, client forward of one iteration."""
    client_backward_s: np.ndarray
    """(K,) T_k^B, client backward of one iteration."""
    activation_upload_s: np.ndarray
    """(K,) T_k^up, activations + labels to the MS."""
    gradient_download_s: np.ndarray
    """(K,) T_k^down, activation gradients from the MS."""
    server_compute_s: float
    """T^S, MS forward + backward for all K micro-batches of one iteration."""
    iteration_s: float
    """T_iter = max_k(T_k^F + T_k^up) + T^S + max_k(T_k^down + T_k^B)."""
    lora_upload_s: np.ndarray
    """(K,) client LoRA upload to the FS."""
    broadcast_s: float
    """FS broadcast of the averaged LoRA."""
    round_s: float
    """T_round = I * T_iter + max_k T_k^{LoRA up} + T^broadcast."""
    rate_ms_bps: np.ndarray
    """(K,) uplink rate of each client to the MS, bit/s."""
    rate_fs_bps: np.ndarray
    """(K,) uplink rate of each client to the FS, bit/s."""
    activation_bits: float
    """Activation payload of one client per iteration (without labels), bits."""
    label_bits: float
    """Label payload of one client per iteration, bits."""
    lora_bits: float | np.ndarray
    """Client-side LoRA payload of one client per round, bits ((K,), client by client, for a per-client profile)."""

    def as_info(self) -> dict[str, float]:
        """Plain floats for ``info`` / logging (per-client arrays are reported by their max)."""
        return {
            "client_forward_s": float(self.client_forward_s.max()),
            "client_backward_s": float(self.client_backward_s.max()),
            "activation_upload_s": float(self.activation_upload_s.max()),
            "gradient_download_s": float(self.gradient_download_s.max()),
            "server_compute_s": float(self.server_compute_s),
            "iteration_s": float(self.iteration_s),
            "lora_upload_s": float(self.lora_upload_s.max()),
            "broadcast_s": float(self.broadcast_s),
            "round_s": float(self.round_s),
            "activation_bits": float(self.activation_bits),
            "label_bits": float(self.label_bits),
            "lora_bits": float(np.max(self.lora_bits)),
        }


@dataclass(frozen=True)
class RoundOutcome:
    """What one training round produced (real engine or surrogate)."""

    train_loss: float
    """Mean training loss over the round's local iterations."""
    val_loss: float
    """Validation loss after FedAvg."""
    round_index: int
    """1-based index of the round just finished."""
    measured: dict[str, float] = field(default_factory=dict)
    """Measured quantities (bytes actually exchanged, wall time); empty in surrogate mode."""

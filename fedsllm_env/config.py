"""Frozen, validated configuration dataclasses holding every default of the system model.

Each concern has its own record (wireless, compute, model/split/LoRA, training, reward); they are
composed into :class:`FedsLLMConfig`. Every record validates itself in ``__post_init__`` and
raises :class:`~fedsllm_env.errors.ConfigError` naming the field and the bad value.
``FedsLLMConfig.from_dict`` rejects unknown keys at every level.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from fedsllm_env.errors import ConfigError

__all__ = [
    "WirelessConfig",
    "ComputeConfig",
    "ModelConfig",
    "TrainingConfig",
    "RewardConfig",
    "FedsLLMConfig",
    "PHYSICAL_BOUNDS",
    "SIZE_BOUNDS",
    "TINY_MAX_POSITIONS",
    "MAX_NUM_ENVS",
    "merge_overrides",
    "check_seed",
    "available_memory_bytes",
    "check_memory",
    "estimate_env_bytes",
    "estimate_rollout_bytes",
    "check_num_envs",
]


def _show(value: Any) -> str:
    """``repr(value)``, with ints of more than 15 digits written as ``1.000e+300`` (the message stays one line)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**15:
        digits = str(abs(value))
        return f"{'-' if value < 0 else ''}{digits[0]}.{digits[1:4]}e+{len(digits) - 1}"
    if isinstance(value, tuple):
        return "(" + ", ".join(_show(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return repr(value)


def _require(ok: bool, cls: str, name: str, value: Any, rule: str) -> None:
    if not ok:
        raise ConfigError(f"{cls}.{name} {rule}, got {_show(value)}")


def _within(obj: Any, name: str, low: float, high: float, unit: str) -> None:
    """Physical bound of a field (see :data:`PHYSICAL_BOUNDS`): ``low <= value <= high``."""
    value = getattr(obj, name)
    _require(low <= value <= high, type(obj).__name__, name, value, f"must be in [{low:g}, {high:g}] {unit}")


PHYSICAL_BOUNDS: dict[str, tuple[float, float, str]] = {
    "subchannel_bandwidth_ms_hz": (1.0, 1e12, "Hz"),
    "subchannel_bandwidth_fs_hz": (1.0, 1e12, "Hz"),
    "noise_psd_dbm_per_hz": (-220.0, -100.0, "dBm/Hz"),
    "client_max_power_dbm": (-60.0, 40.0, "dBm"),
    "total_power_ms_w": (1e-9, math.inf, "W"),
    "total_power_fs_w": (1e-9, math.inf, "W"),
    "cell_radius_m": (1.0, 1e5, "m"),
    "carrier_frequency_hz": (1e8, 1e12, "Hz"),
    "shadowing_std_db": (0.0, 30.0, "dB"),
    "mobility_speed_mps": (0.0, 1e3, "m/s"),
    "mobility_interval_s": (1e-6, 1e6, "s"),
    "downlink_rate_bps": (1.0, math.inf, "bit/s"),
    "broadcast_rate_bps": (1.0, math.inf, "bit/s"),
    "client_cpu_freq_range_hz": (1.0, 1e12, "Hz"),
    "client_flops_per_cycle_choices": (1e-6, 1e6, "FLOPs/cycle"),
    "server_cpu_freq_hz": (1.0, 1e12, "Hz"),
    "server_flops_per_cycle": (1e-6, 1e9, "FLOPs/cycle"),
    "backward_factor": (1e-3, 1e3, "x forward"),
    "delay_scale_s": (1e-9, math.inf, "s"),
    "delay_weight": (0.0, 1e9, ""),
    "progress_weight": (0.0, 1e9, ""),
}
"""Field -> (low, high, unit): physical ranges of the wireless, compute and reward fields.

They are far wider than any real cell or device, and narrow enough that every rate is positive and
every delay, reward and observation stays a finite float64 (with a margin of more than 10^200 to the
float range for any channel draw of non-negligible probability): the worst SNR they allow is about
1e-70, whose rate ``B log2(1 + SNR)`` is still positive because the delay model evaluates it with
``log1p``. Outside these ranges a value is refused with a :class:`ConfigError`."""


SIZE_BOUNDS: dict[str, int] = {
    "num_clients": 4096,
    "num_subchannels_ms": 4096,
    "num_subchannels_fs": 4096,
    "ranks": 4096,
    "initial_split": 4096,
    "tiny_n_layer": 64,
    "tiny_n_embd": 4096,
    "tiny_n_head": 64,
    "tiny_vocab_size": 65536,
    "tiny_pretrain_steps": 1_000_000,
    "batch_size": 4096,
    "seq_len": 131072,
    "local_iterations": 10_000,
    "num_train_samples": 1_000_000,
    "num_val_samples": 1_000_000,
    "val_batches": 1_000_000,
    "max_rounds": 100_000,
    "power_levels": 1024,
}
"""Size field -> largest value accepted (inclusive). Far above any study of this system model (K up to 4096
clients and 4096 subchannels per link, mini-batches up to 4096 sequences of up to 131,072 tokens), and low
enough that no size overflows the delay model; the memory of K (M + N) channel entries per env is estimated
and checked before an env allocates it (:func:`estimate_env_bytes`, :func:`check_num_envs`). Above a bound a
value is refused with a :class:`ConfigError` that names the bound. ``training.seq_len`` is also capped by the
backbone's positions: :data:`TINY_MAX_POSITIONS` for the built-in ``tiny-gpt2`` in real mode, the calibrated
model's ``n_positions`` in surrogate mode, the model's own for another backbone."""

TINY_MAX_POSITIONS = 256
"""Positions of the built-in ``tiny-gpt2`` backbone (the longest ``training.seq_len`` it takes)."""

MAX_NUM_ENVS = 65536
"""Most envs one vector env (or ``--n-envs``) may hold; the memory estimate usually binds first."""


def _at_most(obj: Any, name: str) -> None:
    """Upper size bound of a field (see :data:`SIZE_BOUNDS`); tuples are checked item by item."""
    value, high = getattr(obj, name), SIZE_BOUNDS[name]
    values = value if isinstance(value, tuple) else (value,)
    _require(all(v <= high for v in values), type(obj).__name__, name, value,
             f"must be <= {high:,} (fedsllm_env.config.SIZE_BOUNDS)")


def _finite(value: int | float) -> bool:
    """``math.isfinite``, False (not OverflowError) for an int beyond the float range such as 10**400."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _check_numbers(obj: Any) -> None:
    """Type-check numeric and tuple fields against their annotations (bool is not a number)."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        hint = hints[f.name]
        origin = typing.get_origin(hint)
        cls = type(obj).__name__
        if hint is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{cls}.{f.name} must be an int, got {type(value).__name__} {_show(value)}")
        elif hint is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{cls}.{f.name} must be a number, got {type(value).__name__} {value!r}")
            if not _finite(value):
                raise ConfigError(f"{cls}.{f.name} must be finite, got {_show(value)}")
            object.__setattr__(obj, f.name, float(value))
        elif hint is bool:
            if type(value).__name__ not in ("bool", "bool_"):  # python or numpy booleans only
                raise TypeError(f"{cls}.{f.name} must be true or false, got {type(value).__name__} {value!r}")
            object.__setattr__(obj, f.name, bool(value))
        elif hint is str:
            if not isinstance(value, str):
                raise TypeError(f"{cls}.{f.name} must be a string, got {type(value).__name__} {value!r}")
        elif origin is tuple:
            if isinstance(value, list):
                value = tuple(value)
                object.__setattr__(obj, f.name, value)
            if not isinstance(value, tuple):
                raise TypeError(f"{cls}.{f.name} must be a tuple, got {type(value).__name__} {value!r}")
            _check_items(cls, f.name, value, typing.get_args(hint))
        elif origin is Literal:
            allowed = typing.get_args(hint)
            if value not in allowed:
                raise ConfigError(f"{cls}.{f.name} must be one of {allowed}, got {value!r}")


def _check_items(cls: str, name: str, value: tuple, args: tuple) -> None:
    """Type-check the items of a tuple field (``tuple[float, ...]``, ``tuple[int, int]``, ...)."""
    for i, item in enumerate(value):
        item_type = args[0] if len(args) == 2 and args[1] is Ellipsis else args[min(i, len(args) - 1)]
        where = f"{cls}.{name}[{i}]"
        if item_type is float:
            if isinstance(item, bool) or not isinstance(item, (int, float)):
                raise TypeError(f"{where} must be a number, got {type(item).__name__} {item!r}")
            if not _finite(item):
                raise ConfigError(f"{where} must be finite, got {_show(item)}")
        elif item_type is int:
            if isinstance(item, bool) or not isinstance(item, int):
                raise TypeError(f"{where} must be an int, got {type(item).__name__} {item!r}")
        elif item_type is str and not isinstance(item, str):
            raise TypeError(f"{where} must be a string, got {type(item).__name__} {item!r}")


class _Validated:
    """Mixin: dict round trip with unknown-key rejection."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        """Build from a (possibly nested) dict; unknown keys raise ConfigError."""
        if not isinstance(data, dict):
            raise ConfigError(f"{cls.__name__} expects a dict, got {type(data).__name__}")
        names = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ConfigError(f"unknown {cls.__name__} key(s) {unknown}; valid keys: {sorted(names)}")
        kwargs = {}
        hints = typing.get_type_hints(cls)
        for key, value in data.items():
            sub = hints[key]
            if isinstance(sub, type) and issubclass(sub, _Validated) and isinstance(value, dict):
                value = sub.from_dict(value)
            kwargs[key] = value
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Plain-python dict (tuples become lists), inverse of ``from_dict``."""

        def conv(v: Any) -> Any:
            if isinstance(v, _Validated):
                return v.to_dict()
            if isinstance(v, tuple):
                return [conv(x) for x in v]
            return v

        return {f.name: conv(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    def replace(self, **changes: Any):
        """Copy with some fields changed (re-validated)."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


@dataclass(frozen=True)
class WirelessConfig(_Validated):
    """Cell, subchannels, powers and channel dynamics."""

    num_clients: int = 5
    """K, number of edge clients (1 to 4096; a memory estimate bounds K (M + N) per env)."""
    num_subchannels_ms: int = 10
    """M, uplink subchannels towards the main server (activations), K to 4096."""
    num_subchannels_fs: int = 10
    """N, uplink subchannels towards the federated server (LoRA adapters), K to 4096."""
    subchannel_bandwidth_ms_hz: float = 1e6
    """B_s, bandwidth of one MS subchannel, Hz."""
    subchannel_bandwidth_fs_hz: float = 1e6
    """B_f, bandwidth of one FS subchannel, Hz."""
    noise_psd_dbm_per_hz: float = -174.0
    """N0, noise power spectral density, dBm/Hz."""
    client_max_power_dbm: float = 23.0
    """p_max^k, per-client transmit power cap on each link, dBm."""
    total_power_ms_w: float = 0.6
    """p_th^s, total transmit power of all clients on the MS link, W."""
    total_power_fs_w: float = 0.6
    """p_th^f, total transmit power of all clients on the FS link, W."""
    cell_radius_m: float = 500.0
    """Radius of the cell clients are dropped in uniformly, m."""
    min_distance_m: float = 20.0
    """Minimum client-to-access-point distance, m."""
    shadowing_std_db: float = 8.0
    """Log-normal shadowing standard deviation, dB."""
    fading_correlation: float = 0.9
    """Gauss-Markov coefficient rho of the Rayleigh fading between rounds (Jakes J0(2 pi f_d T))."""
    mobility_speed_mps: float = 0.0
    """Client speed for the random-direction mobility model, m/s (0 = static)."""
    mobility_interval_s: float = 1.0
    """Time that passes between two rounds for mobility, s."""
    downlink_rate_bps: float = 50e6
    """Fixed MS -> client downlink rate for activation gradients, bit/s."""
    broadcast_rate_bps: float = 50e6
    """Fixed FS -> clients broadcast rate for the averaged LoRA, bit/s."""
    channel_model: str = "macro"
    """Channel model by name (``fedsllm_env.channel.CHANNEL_MODELS``): "macro" (128.1 + 37.6 log10 d_km path loss,
    the fields above), "umi" (3GPP TR 38.901 UMi street canyon) or "trace" (replays ``channel_trace_path``)."""
    carrier_frequency_hz: float = 3.5e9
    """Carrier frequency of frequency-dependent path-loss models ("umi"), Hz."""
    channel_trace_path: str = ""
    """.npz file of recorded gains and loads replayed by channel_model="trace" (format: fedsllm_env.channel.trace)."""

    def __post_init__(self) -> None:
        _check_numbers(self)
        n = "WirelessConfig"
        _require(self.num_clients >= 1, n, "num_clients", self.num_clients, "must be >= 1")
        for name in ("num_clients", "num_subchannels_ms", "num_subchannels_fs"):
            _at_most(self, name)
        for name in ("num_subchannels_ms", "num_subchannels_fs"):
            v = getattr(self, name)
            _require(v >= self.num_clients, n, name, v,
                     f"must be >= num_clients={self.num_clients} (every client needs a subchannel)")
        for name in ("subchannel_bandwidth_ms_hz", "subchannel_bandwidth_fs_hz", "total_power_ms_w",
                     "total_power_fs_w", "cell_radius_m", "min_distance_m", "downlink_rate_bps",
                     "broadcast_rate_bps", "mobility_interval_s", "carrier_frequency_hz"):
            v = getattr(self, name)
            _require(v > 0, n, name, v, "must be > 0")
        _require(self.min_distance_m < self.cell_radius_m, n, "min_distance_m", self.min_distance_m,
                 f"must be < cell_radius_m={self.cell_radius_m}")
        _require(self.shadowing_std_db >= 0, n, "shadowing_std_db", self.shadowing_std_db, "must be >= 0")
        _require(self.mobility_speed_mps >= 0, n, "mobility_speed_mps", self.mobility_speed_mps, "must be >= 0")
        _require(0.0 <= self.fading_correlation <= 1.0, n, "fading_correlation", self.fading_correlation,
                 "must be in [0, 1]")
        for name in ("subchannel_bandwidth_ms_hz", "subchannel_bandwidth_fs_hz", "noise_psd_dbm_per_hz",
                     "client_max_power_dbm", "total_power_ms_w", "total_power_fs_w", "cell_radius_m",
                     "shadowing_std_db", "mobility_speed_mps", "mobility_interval_s", "downlink_rate_bps",
                     "broadcast_rate_bps", "carrier_frequency_hz"):
            _within(self, name, *PHYSICAL_BOUNDS[name])
        _require(isinstance(self.channel_model, str) and self.channel_model != "", n, "channel_model",
                 self.channel_model, "must be a non-empty string naming a registered channel model")
        _require(isinstance(self.channel_trace_path, str), n, "channel_trace_path", self.channel_trace_path,
                 "must be a string")


@dataclass(frozen=True)
class ComputeConfig(_Validated):
    """Device and server compute capabilities and the device-load process."""

    client_cpu_freq_range_hz: tuple[float, float] = (1e9, 2e9)
    """f_k is drawn uniformly in this range per client at reset, Hz."""
    client_flops_per_cycle_choices: tuple[float, ...] = (4.0, 8.0, 16.0)
    """kappa_k is drawn uniformly from these values (heterogeneous devices), FLOPs/cycle."""
    server_cpu_freq_hz: float = 3e9
    """f_s, main-server clock, Hz."""
    server_flops_per_cycle: float = 80.0
    """kappa_s, main-server FLOPs per cycle (default: 20x the mean device)."""
    backward_factor: float = 2.0
    """Backward FLOPs as a multiple of forward FLOPs."""
    load_max: float = 0.9
    """Upper bound of a device's background load (fraction of f_k busy)."""
    load_mean: float = 0.3
    """Long-run mean of the AR(1) load process."""
    load_ar_coef: float = 0.8
    """AR(1) coefficient of the load process between rounds."""
    load_noise_std: float = 0.1
    """Innovation standard deviation of the load process."""
    client_memory_bytes: float = 0.0
    """Memory a client may spend on its part of the model (frozen weights, LoRA + AdamW state, cut
    activations), bytes; 0 = unlimited. Splits/ranks that do not fit are masked / projected."""
    device_class_flops_per_cycle: tuple[float, ...] = ()
    """A fleet of device classes (empty: off): client k belongs to class ``k mod len(classes)`` and its
    kappa_k is this entry (replacing the draw from ``client_flops_per_cycle_choices``, which is still made so
    the channel draws stay those of the same seed without classes), FLOPs/cycle. f_k is still drawn per
    episode from ``client_cpu_freq_range_hz``."""
    device_class_memory_bytes: tuple[float, ...] = ()
    """Memory cap of each device class, bytes (0 = unlimited for that class; empty: every client has
    ``client_memory_bytes``). Same length as ``device_class_flops_per_cycle`` when both are set. A shared
    (split, rank) must fit the smallest cap of the cell; per client (``heterogeneous``) each client its own."""

    def __post_init__(self) -> None:
        _check_numbers(self)
        n = "ComputeConfig"
        rng = self.client_cpu_freq_range_hz
        _require(len(rng) == 2 and 0 < rng[0] <= rng[1], n, "client_cpu_freq_range_hz", rng,
                 "must be (low, high) with 0 < low <= high")
        _require(len(self.client_flops_per_cycle_choices) >= 1
                 and all(float(x) > 0 for x in self.client_flops_per_cycle_choices), n,
                 "client_flops_per_cycle_choices", self.client_flops_per_cycle_choices,
                 "must be a non-empty tuple of positive numbers")
        for name in ("server_cpu_freq_hz", "server_flops_per_cycle", "backward_factor"):
            v = getattr(self, name)
            _require(v > 0, n, name, v, "must be > 0")
            _within(self, name, *PHYSICAL_BOUNDS[name])
        for name in ("client_cpu_freq_range_hz", "client_flops_per_cycle_choices"):
            low, high, unit = PHYSICAL_BOUNDS[name]
            values = getattr(self, name)
            _require(all(low <= v <= high for v in values), n, name, values,
                     f"must hold values in [{low:g}, {high:g}] {unit}")
        _require(0 <= self.load_max < 1, n, "load_max", self.load_max, "must be in [0, 1)")
        _require(0 <= self.load_mean <= self.load_max, n, "load_mean", self.load_mean,
                 f"must be in [0, load_max={self.load_max}]")
        _require(0 <= self.load_ar_coef < 1, n, "load_ar_coef", self.load_ar_coef, "must be in [0, 1)")
        _require(self.load_noise_std >= 0, n, "load_noise_std", self.load_noise_std, "must be >= 0")
        _require(self.client_memory_bytes >= 0, n, "client_memory_bytes", self.client_memory_bytes, "must be >= 0")
        _require(all(float(x) > 0 for x in self.device_class_flops_per_cycle), n, "device_class_flops_per_cycle",
                 self.device_class_flops_per_cycle, "must hold positive numbers (or be empty)")
        low, high, unit = PHYSICAL_BOUNDS["client_flops_per_cycle_choices"]
        _require(all(low <= v <= high for v in self.device_class_flops_per_cycle), n, "device_class_flops_per_cycle",
                 self.device_class_flops_per_cycle, f"must hold values in [{low:g}, {high:g}] {unit}")
        _require(all(float(x) >= 0 for x in self.device_class_memory_bytes), n, "device_class_memory_bytes",
                 self.device_class_memory_bytes, "must hold numbers >= 0 (0 = unlimited)")
        _require(not (self.device_class_flops_per_cycle and self.device_class_memory_bytes)
                 or len(self.device_class_flops_per_cycle) == len(self.device_class_memory_bytes), n,
                 "device_class_memory_bytes", self.device_class_memory_bytes,
                 f"must have one entry per device class ({len(self.device_class_flops_per_cycle)}, the length of "
                 "device_class_flops_per_cycle)")
        _require(not (self.device_class_memory_bytes and self.client_memory_bytes > 0), n, "client_memory_bytes",
                 self.client_memory_bytes, "must be 0 when device_class_memory_bytes sets a cap per class (set one)")


@dataclass(frozen=True)
class ModelConfig(_Validated):
    """Backbone, split candidates and LoRA."""

    backbone: str = "tiny-gpt2"
    """"tiny-gpt2" (built and pre-trained locally, cached), a local folder or a Hugging Face hub name of a GPT-2,
    LLaMA-style (LLaMA, Qwen2, Mistral, SmolLM) or OPT causal LM."""
    device: str = "auto"
    """Where the real engine trains: "auto" (cuda, else mps, else cpu), "cpu", "cuda", "cuda:N" (N in 0..255) or
    "mps". Real mode checks that the device exists before building anything
    (:func:`fedsllm_env.splitfed.devices.check_device_available`)."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Compute dtype of the frozen backbone (LoRA adapters stay float32); 16-bit dtypes send 16-bit activations."""
    ranks: tuple[int, ...] = (4, 8, 16, 32, 64)
    """Candidate LoRA ranks r (one rank shared by every adapted module), 1 to 4096 each."""
    lora_scaling: float = 2.0
    """LoRA alpha / r (alpha = lora_scaling * r, so the update scale does not depend on r)."""
    lora_dropout: float = 0.0
    """Dropout on the LoRA input."""
    lora_target_modules: tuple[str, ...] = ("attn.c_attn", "attn.c_proj")
    """Sub-modules (inside each block) that get a LoRA adapter: the family's own suffixes, GPT-2 names standing
    for the same role in every family ("attn.c_attn" = q/k/v, "attn.c_proj" = attention output, "mlp.c_fc",
    "mlp.c_proj") or "attention" / "mlp" / "all". Default: the attention projections."""
    activation_bits: int = 32
    """q, bits per activation / gradient / LoRA element on the air; activations and gradients are capped by the
    compute dtype's bits. Below the tensors' own bits the engine quantises what it sends (bfloat16 / int8)."""
    aggregation: Literal["zero_pad", "svd"] = "zero_pad"
    """Heterogeneous mode only: how adapters of mixed ranks are aggregated, "zero_pad" (HetLoRA) or "svd"
    (FlexLoRA) (``fedsllm_env.splitfed.hetero``)."""
    initial_split: int = 1
    """Cut index c used before the first action (1 <= c <= L-1; at most 4096)."""
    initial_rank: int = 16
    """LoRA rank used before the first action (must be one of ``ranks``)."""
    tiny_n_layer: int = 6
    """Blocks L of the locally built tiny GPT-2 (2 to 64)."""
    tiny_n_embd: int = 128
    """Hidden size of the tiny GPT-2 (at most 4096)."""
    tiny_n_head: int = 4
    """Attention heads of the tiny GPT-2 (1 to 64)."""
    tiny_vocab_size: int = 1536
    """Byte-level BPE vocabulary of the tiny GPT-2 (trained on its pre-training corpus; 258 to 65536)."""
    tiny_pretrain_steps: int = 600
    """Optimizer steps of the one-off local pre-training of the tiny GPT-2 (8 packed 128-token chunks each; at
    most 1,000,000)."""

    def __post_init__(self) -> None:
        _check_numbers(self)
        n = "ModelConfig"
        _require(self.backbone.strip() == self.backbone != "", n, "backbone", self.backbone,
                 "must be a non-empty string without leading or trailing spaces")
        _require(len(self.ranks) >= 1 and all(isinstance(r, int) and not isinstance(r, bool) and r >= 1
                                              for r in self.ranks), n, "ranks", self.ranks,
                 "must be a non-empty tuple of ints >= 1")
        _require(list(self.ranks) == sorted(set(self.ranks)), n, "ranks", self.ranks,
                 "must be strictly increasing")
        _at_most(self, "ranks")
        _require(self.initial_rank in self.ranks, n, "initial_rank", self.initial_rank, f"must be one of {self.ranks}")
        _require(self.lora_scaling > 0, n, "lora_scaling", self.lora_scaling, "must be > 0")
        _require(0 <= self.lora_dropout < 1, n, "lora_dropout", self.lora_dropout, "must be in [0, 1)")
        _require(len(self.lora_target_modules) >= 1, n, "lora_target_modules", self.lora_target_modules,
                 "must name at least one module")
        _require(self.activation_bits in (8, 16, 32), n, "activation_bits", self.activation_bits,
                 "must be 8, 16 or 32")
        _require(self.tiny_n_layer >= 2, n, "tiny_n_layer", self.tiny_n_layer, "must be >= 2 (a split needs 2 blocks)")
        _require(self.tiny_n_head >= 1 and self.tiny_n_embd % self.tiny_n_head == 0, n, "tiny_n_embd",
                 self.tiny_n_embd, f"must be a positive multiple of tiny_n_head={self.tiny_n_head}")
        _require(self.tiny_pretrain_steps >= 0, n, "tiny_pretrain_steps", self.tiny_pretrain_steps, "must be >= 0")
        _require(self.tiny_vocab_size >= 258, n, "tiny_vocab_size", self.tiny_vocab_size,
                 "must be >= 258 (2 special tokens + 256 byte symbols)")
        _require(self.initial_split >= 1, n, "initial_split", self.initial_split, "must be >= 1")
        for name in ("initial_split", "tiny_n_layer", "tiny_n_embd", "tiny_n_head", "tiny_vocab_size",
                     "tiny_pretrain_steps"):
            _at_most(self, name)
        _require(re.fullmatch(r"auto|cpu|mps|cuda(:(0|[1-9]\d{0,2}))?", self.device) is not None
                 and not (self.device.startswith("cuda:") and int(self.device[5:]) > 255),
                 n, "device", self.device, "must be 'auto', 'cpu', 'cuda', 'cuda:N' with N in 0..255, or 'mps'")


@dataclass(frozen=True)
class TrainingConfig(_Validated):
    """Split-federated training: batches, iterations, data and the convergence target."""

    batch_size: int = 8
    """b, sequences per client mini-batch (1 to 4096)."""
    seq_len: int = 80
    """n, tokens per sequence (80 holds 98 % of the synthetic task's examples with the tiny GPT-2's BPE whole);
    8 to 131,072, and at most the backbone's positions: 256 for the built-in tiny-gpt2 in real mode, the
    calibrated model's ``n_positions`` in surrogate mode."""
    local_iterations: int = 2
    """I, local iterations per round (1 to 10,000)."""
    learning_rate: float = 5e-3
    """AdamW learning rate of the LoRA parameters (client and server side): the largest stable one at rank 64
    with the default backbone (docs/convergence.md)."""
    dataset: str = "e2e-synthetic"
    """"e2e-synthetic" (generated meaning-representation -> sentence pairs) or a local .txt / .jsonl / .csv path
    (official E2E ``mr,ref`` or Hugging Face ``meaning_representation,human_reference`` fields, or ``text``)."""
    num_train_samples: int = 2000
    """Training examples generated (synthetic dataset) or read at most (files); at most 1,000,000."""
    num_val_samples: int = 200
    """Validation examples (at most 1,000,000)."""
    partition: Literal["iid", "dirichlet"] = "iid"
    """How training data is split across clients."""
    dirichlet_alpha: float = 0.5
    """Concentration of the Dirichlet non-IID partition (over meaning-representation venue types)."""
    val_batches: int = 8
    """Validation mini-batches evaluated per round (the first ``val_batches * batch_size`` validation examples,
    the same every round); 0 = every validation example; at most 1,000,000. 8 (64 examples) keeps validation at
    about a fifth of a default round (every example: about 45 %), which the calibration budget needs."""
    target_val_loss: float = 0.0
    """Episode terminates when validation loss <= this; 0 = use the calibration file's target."""
    max_rounds: int = 80
    """Round cap of one episode (truncation); above the slowest measured E(r) (59.5 rounds at r = 1). At most
    100,000."""
    data_seed: int = 0
    """Seed of the synthetic corpus (fixed: the task does not change between episodes); >= 0."""

    def __post_init__(self) -> None:
        _check_numbers(self)
        n = "TrainingConfig"
        for name in ("batch_size", "seq_len", "local_iterations", "num_train_samples", "num_val_samples",
                     "max_rounds"):
            v = getattr(self, name)
            _require(v >= 1, n, name, v, "must be >= 1")
        _require(self.val_batches >= 0, n, "val_batches", self.val_batches, "must be >= 0 (0 = all)")
        _require(self.seq_len >= 8, n, "seq_len", self.seq_len, "must be >= 8")
        _require(self.data_seed >= 0, n, "data_seed", self.data_seed, "must be >= 0")
        for name in ("batch_size", "seq_len", "local_iterations", "num_train_samples", "num_val_samples",
                     "val_batches", "max_rounds"):
            _at_most(self, name)
        _require(self.learning_rate > 0, n, "learning_rate", self.learning_rate, "must be > 0")
        _require(self.dirichlet_alpha > 0, n, "dirichlet_alpha", self.dirichlet_alpha, "must be > 0")
        _require(self.target_val_loss >= 0, n, "target_val_loss", self.target_val_loss, "must be >= 0")
        _require(isinstance(self.dataset, str) and self.dataset != "", n, "dataset", self.dataset,
                 "must be a non-empty string")


@dataclass(frozen=True)
class RewardConfig(_Validated):
    """Reward shaping. reward = -delay_weight * T_round / delay_scale_s (the return is -total delay)."""

    delay_scale_s: float = 1.0
    """Normaliser of the round delay, s."""
    delay_weight: float = 1.0
    """Weight of the delay term."""
    progress_weight: float = 0.0
    """Optional weight of a validation-loss-drop bonus (0 keeps the return equal to -total delay)."""

    def __post_init__(self) -> None:
        _check_numbers(self)
        n = "RewardConfig"
        _require(self.delay_scale_s > 0, n, "delay_scale_s", self.delay_scale_s, "must be > 0")
        _require(self.delay_weight >= 0, n, "delay_weight", self.delay_weight, "must be >= 0")
        _require(self.progress_weight >= 0, n, "progress_weight", self.progress_weight, "must be >= 0")
        for name in ("delay_scale_s", "delay_weight", "progress_weight"):
            _within(self, name, *PHYSICAL_BOUNDS[name])


@dataclass(frozen=True)
class FedsLLMConfig(_Validated):
    """Everything one environment instance needs."""

    wireless: WirelessConfig = field(default_factory=WirelessConfig)
    compute: ComputeConfig = field(default_factory=ComputeConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    mode: Literal["real", "surrogate"] = "surrogate"
    """"real" trains the transformer every step; "surrogate" uses the calibrated loss-curve model."""
    action_mode: Literal["box", "multidiscrete", "hybrid"] = "box"
    """Flat Box(-1, 1) (PPO/SAC/TD3), MultiDiscrete with action masks (MaskablePPO), or split+rank only."""
    power_levels: int = 5
    """Power levels per subchannel in the MultiDiscrete action space (2 to 1024)."""
    heterogeneous: bool = False
    """A cut and a rank per client (SPEC "Heterogeneous clients"): actions and observations carry K cuts and K
    ranks, the real engine trains in its heterogeneous mode, the surrogate prices the profile. False = the
    paper's shared cut and rank."""
    calibration_path: str = ""
    """E(r) / loss-curve calibration JSON; "" = the measured table shipped with the package."""

    def __post_init__(self) -> None:
        for name, cls in (("wireless", WirelessConfig), ("compute", ComputeConfig), ("model", ModelConfig),
                          ("training", TrainingConfig), ("reward", RewardConfig)):
            value = getattr(self, name)
            if isinstance(value, dict):
                object.__setattr__(self, name, cls.from_dict(value))
            elif not isinstance(value, cls):
                raise TypeError(f"FedsLLMConfig.{name} must be a {cls.__name__} or dict, got {type(value).__name__}")
        _check_numbers(self)
        _require(self.power_levels >= 2, "FedsLLMConfig", "power_levels", self.power_levels, "must be >= 2")
        _at_most(self, "power_levels")
        t, m = self.training, self.model
        if self.mode == "real" and m.backbone == "tiny-gpt2" and t.seq_len > TINY_MAX_POSITIONS:
            raise ConfigError(f"TrainingConfig.seq_len must be <= {TINY_MAX_POSITIONS} for the built-in tiny-gpt2 "
                              f"backbone ({TINY_MAX_POSITIONS} positions), got {t.seq_len}; lower training.seq_len "
                              "or set model.backbone to a model with more positions")


def merge_overrides(base: dict[str, Any] | None, *patches: dict[str, Any] | None) -> dict[str, Any]:
    """Nested config overrides: each patch merged over ``base`` key by key at every level (a dict merges
    into a dict, any other value replaces), as a new dict; the inputs are left untouched.

    Example: ``merge_overrides({"training": {"seq_len": 32}}, {"training": {"max_rounds": 5}})`` ==
    ``{"training": {"seq_len": 32, "max_rounds": 5}}``.
    """
    out: dict[str, Any] = copy.deepcopy(dict(base or {}))
    for patch in patches:
        for key, value in (patch or {}).items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = merge_overrides(out[key], value)
            else:
                out[key] = copy.deepcopy(value)
    return out


# ---- inputs beside the config: seeds, memory, devices ----------------------------------------------------

def check_seed(seed: Any, what: str = "seed") -> int | None:
    """``seed`` as a python int (numpy integers accepted), or None; :class:`~fedsllm_env.errors.SeedError` for a
    bool, a float, a negative number or anything else (Gymnasium's generators take ints >= 0 only)."""
    import numbers

    from fedsllm_env.errors import SeedError

    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        shown = repr(seed.item()) if getattr(seed, "shape", None) == () else repr(seed)  # numpy scalars plainly
        raise SeedError(f"{what} must be an int >= 0 or None, got {type(seed).__name__} {shown}; pass an int "
                        "such as 0 or 12345")
    if int(seed) < 0:
        raise SeedError(f"{what} must be an int >= 0 or None, got {int(seed)}; pass a non-negative seed")
    return int(seed)


def available_memory_bytes() -> int | None:
    """Memory this machine can still give a process (``MemAvailable`` of /proc/meminfo, else the physical
    memory), bytes; None where neither is known."""
    import os

    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def check_memory(need_bytes: float, what: str, fix: str) -> None:
    """Raise :class:`~fedsllm_env.errors.MemoryLimitError` when an estimate ``need_bytes`` exceeds the memory
    available now (:func:`available_memory_bytes`); call before allocating.

    Args:
        need_bytes: estimated bytes the allocation needs.
        what: the input that asks for it (e.g. "4096 envs of K = 1000, M = N = 4096").
        fix: what to lower.
    """
    from fedsllm_env.errors import MemoryLimitError

    have = available_memory_bytes()
    if have is not None and need_bytes > have:
        raise MemoryLimitError(f"{what} needs about {need_bytes / 2**30:,.1f} GiB of memory, more than the "
                               f"{have / 2**30:,.1f} GiB available; {fix}")


ENV_BYTES_PER_GAIN = 160
"""Bytes a surrogate env holds per channel-gain entry (fading, gains, draws, observation and action rows of the
K (M + N) entries), measured with tracemalloc on the batched env (about 110 on the single env)."""

ENV_BYTES_FIXED = 16 * 1024
"""Bytes a surrogate env holds besides its gain entries and its noise row."""


def estimate_env_bytes(cfg: FedsLLMConfig, num_envs: int = 1) -> int:
    """Estimated memory of ``num_envs`` surrogate envs of ``cfg`` (channel state, per-round draws, observation and
    action rows, the surrogate's noise of ``max_rounds`` rounds), bytes."""
    w = cfg.wireless
    gains = w.num_clients * (w.num_subchannels_ms + w.num_subchannels_fs)
    per_env = ENV_BYTES_PER_GAIN * gains + 8 * cfg.training.max_rounds + ENV_BYTES_FIXED
    return int(num_envs) * per_env


def estimate_rollout_bytes(cfg: FedsLLMConfig, num_envs: int, n_steps: int) -> int:
    """Estimated memory of an on-policy rollout buffer (SB3's PPO / A2C: float32 observation, action and six
    scalars per env step) over ``n_steps`` steps of ``num_envs`` envs, bytes. (An off-policy replay buffer of
    ``buffer_size`` transitions: ``estimate_rollout_bytes(cfg, 2, buffer_size)``, observation and next one.)"""
    w = cfg.wireless
    k, m, n = w.num_clients, w.num_subchannels_ms, w.num_subchannels_fs
    obs = k * (m + n) + 8 * k + 8  # gains, loads and peaks, split / rank / progress features (upper bound)
    act = k * (m + n) + m + n + 2 * k + 2  # the Box layout, the largest
    return int(num_envs) * int(n_steps) * 4 * (obs + act + 6)


def check_num_envs(cfg: FedsLLMConfig, num_envs: int, n_steps: int = 0, flag: str = "num_envs") -> None:
    """``num_envs`` envs of ``cfg`` (and, with ``n_steps``, a rollout buffer of ``n_steps`` steps of each) fit:
    at most :data:`MAX_NUM_ENVS` and within the memory available now.

    Raises:
        ConfigError: ``num_envs`` is not an int in [1, MAX_NUM_ENVS].
        MemoryLimitError: the estimate (:func:`estimate_env_bytes` + :func:`estimate_rollout_bytes`) exceeds the
            available memory.
    """
    import numbers

    if isinstance(num_envs, bool) or not isinstance(num_envs, numbers.Integral) or not 1 <= num_envs <= MAX_NUM_ENVS:
        raise ConfigError(f"{flag} must be an int in [1, {MAX_NUM_ENVS:,}], got {num_envs!r}")
    w = cfg.wireless
    need = estimate_env_bytes(cfg, num_envs) + (estimate_rollout_bytes(cfg, num_envs, n_steps) if n_steps else 0)
    check_memory(need, f"{flag}={int(num_envs):,} envs of K = {w.num_clients}, M = {w.num_subchannels_ms}, "
                       f"N = {w.num_subchannels_fs}" + (f" with {n_steps:,}-step rollouts" if n_steps else ""),
                 f"lower {flag}" + (", n_steps" if n_steps else "") + " or the clients / subchannels")



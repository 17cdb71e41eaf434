"""Delay model of one split-federated round (pure numpy, vectorised over clients and subchannels).

Formulas (see ../shared/SPEC.md and the README's modelling assumptions):

- rate of client k on link x: R_k = sum_{i owned by k} B_x log2(1 + p_i g_{k,i} / (N0 B_x));
- client compute: T_k^F = b FLOPs_fwd(1..c) / (f_k kappa_k (1 - load_k)), T_k^B = beta T_k^F;
- server compute: T^S = K b (1 + beta) FLOPs_fwd(c+1..L, head) / (f_s kappa_s);
- payloads: activations b n d q_a bits (+ labels b n ceil(log2 V)), gradients b n d q_a (downlink at a
  fixed rate), client LoRA q * sum over its adapted modules of r (d_in + d_out) bits, with
  q_a = min(q, bits of the compute dtype) and, at 8 bits, one 32-bit scale per token / LoRA matrix;
- T_iter = max_k(T_k^F + T_k^up) + T^S + max_k(T_k^down + T_k^B);
- T_round = I T_iter + max_k T_k^{LoRA up} + T^broadcast; T = E(r) T_round (:func:`expected_total_delay_s`).

Heterogeneous clients (``../shared/SPEC.md``, "Heterogeneous clients"; opt-in): the cut and the rank may be
(K,) arrays, one per client (:func:`client_profile`). Then client k computes blocks 1..c_k at rank r_k, the MS
runs blocks c_k+1..L of every client at one global rank r_g = max_k r_k (or ``global_rank``),
T^S = sum_k b (1 + beta) FLOPs_fwd(c_k+1..L, head; r_g) / (f_s kappa_s), client k uploads its own adapter
bits (c_k blocks at rank r_k) and the broadcast takes max_k of them; T_iter and T_round keep their form.
Scalars (or equal arrays) give the paper's numbers bit for bit: the per-client arithmetic repeats the
homogeneous operations element by element, and T^S sums the clients of one cut as ``n_c b (1 + beta) F``
(the homogeneous ``K b (1 + beta) F`` when every client shares the cut), cut by cut in ascending order
(:func:`server_flops_sum`, shared with the batched model).

Constraints of a decision (:func:`decision_violations`): one owner per subchannel, every client owns
one on each link, per-client and total power limits, a split in 1..L-1, a candidate rank, and the
client-memory limit of (split, rank) (:func:`memory_violations`; :func:`project_split_rank` is the
documented projection the action codecs apply), client by client for a per-client profile.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from fedsllm_env.config import FedsLLMConfig
from fedsllm_env.errors import InfeasibleDecisionError
from fedsllm_env.profile import DTYPE_BITS, QUANT_SCALE_BITS, ModelShape, wire_bits
from fedsllm_env.types import ChannelState, Decision, DelayBreakdown, Scenario
from fedsllm_env.units import dbm_to_watt

__all__ = [
    "POWER_TOLERANCE",
    "noise_psd_w_per_hz",
    "subchannel_rates_bps",
    "client_rates_bps",
    "payload_bits",
    "is_per_client",
    "client_profile",
    "server_rank",
    "client_payload_bits",
    "server_flops_sum",
    "client_compute_s",
    "server_compute_s",
    "upload_time_s",
    "round_delay",
    "expected_total_delay_s",
    "client_memory_bytes",
    "memory_violations",
    "client_memory_limits_bytes",
    "shared_memory_limit_bytes",
    "split_rank_feasibility",
    "project_split_rank",
    "decision_violations",
    "check_feasible",
]

POWER_TOLERANCE = 1e-9
"""Relative slack allowed on power limits (floating-point round-off of solvers)."""


def noise_psd_w_per_hz(noise_psd_dbm_per_hz: float) -> float:
    """N0 in W/Hz from dBm/Hz."""
    return float(dbm_to_watt(noise_psd_dbm_per_hz))


def subchannel_rates_bps(assign: np.ndarray, power_w: np.ndarray, gain: np.ndarray, bandwidth_hz: float,
                         n0_w_per_hz: float) -> np.ndarray:
    """(S,) Shannon rate of each subchannel for its owner: B log2(1 + p g_{owner,i} / (N0 B)), bit/s.

    Evaluated as ``B log1p(snr) / ln 2``, so an SNR below float64's epsilon (1e-16) still gives a
    positive (tiny) rate and a finite delay instead of rounding to 0 bit/s.
    """
    owner_gain = gain[assign, np.arange(assign.shape[0])]
    snr = power_w * owner_gain / (n0_w_per_hz * bandwidth_hz)
    return bandwidth_hz * np.log1p(snr) / np.log(2.0)


def client_rates_bps(assign: np.ndarray, power_w: np.ndarray, gain: np.ndarray, bandwidth_hz: float,
                     n0_w_per_hz: float) -> np.ndarray:
    """(K,) sum rate of each client over the subchannels it owns, bit/s."""
    per_sub = subchannel_rates_bps(assign, power_w, gain, bandwidth_hz, n0_w_per_hz)
    return np.bincount(assign, weights=per_sub, minlength=gain.shape[0])


@lru_cache(maxsize=4096)
def _flops(shape: ModelShape, split: int, rank: int, seq_len: int, targets: tuple[str, ...]) -> tuple[float, float]:
    """(client, server) forward FLOPs per sequence, cached: the env asks for the same few pairs."""
    return (shape.client_forward_flops(split, seq_len, rank, targets),
            shape.server_forward_flops(split, seq_len, rank, targets))


def payload_bits(shape: ModelShape, split: int, rank: int, cfg: FedsLLMConfig) -> tuple[float, float, float]:
    """(activation_bits, label_bits, lora_bits) of one client: per iteration, per iteration, per round.

    Activations (and their gradients) are sent at q_a = min(activation_bits, bits of ``model.dtype``), the
    LoRA adapters (float32) at q = activation_bits; at 8 bits every activation row (token) and every LoRA
    matrix also carries one fp32 scale (see ``fedsllm_env.splitfed.wire``).
    """
    t, m = cfg.training, cfg.model
    return _payload_bits(shape, int(split), int(rank), t.batch_size, t.seq_len, m.activation_bits,
                         wire_bits(m.activation_bits, m.dtype), m.lora_target_modules)


@lru_cache(maxsize=4096)
def _payload_bits(shape: ModelShape, split: int, rank: int, batch_size: int, seq_len: int, bits: int,
                  act_bits: int, targets: tuple[str, ...]) -> tuple[float, float, float]:
    act = float(shape.activation_elements(batch_size, seq_len) * act_bits)
    if act_bits == 8:
        act += batch_size * seq_len * QUANT_SCALE_BITS
    labels = float(batch_size * seq_len * math.ceil(math.log2(shape.vocab_size)))
    lora = float(shape.client_lora_params(split, rank, targets) * bits)
    if bits == 8:
        lora += split * 2 * len(shape.resolve_targets(tuple(targets))) * QUANT_SCALE_BITS
    return act, labels, lora


def is_per_client(split: int | np.ndarray, rank: int | np.ndarray) -> bool:
    """True when the cut or the rank is an array (one per client), False for the paper's shared scalars."""
    return np.ndim(split) > 0 or np.ndim(rank) > 0


def _integers(name: str, value: int | np.ndarray, num_clients: int) -> tuple[np.ndarray | None, list[str]]:
    """``value`` (a scalar or a (K,) array) as a (K,) int64 array, or None and the reasons it cannot be one."""
    arr = np.asarray(value)
    if arr.ndim > 1 or (arr.ndim == 1 and arr.shape != (num_clients,)):
        return None, [f"{name} must be a scalar or one per client, shape ({num_clients},), got shape {arr.shape}"]
    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        return None, [f"{name} must hold integers, got dtype {arr.dtype}: {arr.tolist()}"]
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)):
            return None, [f"{name} contains NaN/inf: {arr.tolist()}"]
        if np.any(arr != np.round(arr)):
            return None, [f"{name} must hold integers, got {arr.tolist()}"]
    return np.broadcast_to(arr.astype(np.int64), (num_clients,)), []


def _profile_violations(split: int | np.ndarray, rank: int | np.ndarray, num_clients: int, shape: ModelShape,
                        cfg: FedsLLMConfig) -> tuple[np.ndarray | None, np.ndarray | None, list[str]]:
    """(cuts, ranks, violations): the (K,) profile when its shape and values are valid (else None)."""
    cuts, out = _integers("split", split, num_clients)
    ranks, bad = _integers("rank", rank, num_clients)
    out += bad
    if cuts is not None:
        for k in np.flatnonzero((cuts < 1) | (cuts > shape.n_layer - 1)):
            out.append(f"client {int(k)}: split {int(cuts[k])} outside [1, {shape.n_layer - 1}]")
    if ranks is not None:
        for k in np.flatnonzero(~np.isin(ranks, cfg.model.ranks)):
            out.append(f"client {int(k)}: rank {int(ranks[k])} not in candidate ranks {cfg.model.ranks}")
    return cuts, ranks, out


def client_profile(split: int | np.ndarray, rank: int | np.ndarray, num_clients: int, shape: ModelShape,
                   cfg: FedsLLMConfig) -> tuple[np.ndarray, np.ndarray]:
    """((K,) cut c_k, (K,) rank r_k) of every client from scalars (the paper's shared c, r) or (K,) arrays.

    Args:
        split: cut c (blocks 1..c on the client), an int or a (K,) integer array, each in 1..L-1.
        rank: LoRA rank r, an int or a (K,) integer array, each one of ``cfg.model.ranks``.
        num_clients: K.
        shape: model dimensions (L = ``shape.n_layer``).
        cfg: env config (the candidate ranks).

    Returns:
        Two read-only (K,) int64 arrays.

    Raises:
        InfeasibleDecisionError: a wrong shape, a NaN, a non-integer, a cut outside 1..L-1 or a rank outside the
            candidate ranks (every problem listed, client by client).
    """
    cuts, ranks, violations = _profile_violations(split, rank, num_clients, shape, cfg)
    if violations:
        raise InfeasibleDecisionError(violations)
    assert cuts is not None and ranks is not None
    return cuts, ranks


def server_rank(ranks: np.ndarray, cfg: FedsLLMConfig, global_rank: int | None = None) -> int:
    """Rank r_g of the MS's one adapter per block: max_k r_k, or ``global_rank`` when configured.

    Raises:
        InfeasibleDecisionError: ``global_rank`` is not one of ``cfg.model.ranks``.
    """
    if global_rank is None:
        return int(np.max(ranks))
    if isinstance(global_rank, bool) or not isinstance(global_rank, (int, np.integer)) or \
            int(global_rank) not in cfg.model.ranks:
        raise InfeasibleDecisionError([f"global rank {global_rank!r} not in candidate ranks {cfg.model.ranks}"])
    return int(global_rank)


def client_payload_bits(shape: ModelShape, split: int | np.ndarray, rank: int | np.ndarray,
                        cfg: FedsLLMConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """((K,) activation bits, (K,) label bits, (K,) LoRA bits) of every client: :func:`payload_bits` at (c_k, r_k).

    Activation and label bits do not depend on the cut (the cut activation is b x n x d wherever it is);
    client k's LoRA upload is r_k (d_in + d_out) q bits summed over its adapted modules in blocks 1..c_k.
    ``split`` and ``rank`` are validated (1..L-1, candidate ranks) as in :func:`client_profile`, with K their
    common length (1 for two scalars).
    """
    k = max(np.size(split), np.size(rank))
    cuts, ranks = client_profile(split, rank, k, shape, cfg)
    bits = np.array([payload_bits(shape, c, r, cfg) for c, r in zip(cuts.tolist(), ranks.tolist())], dtype=float)
    return bits[:, 0].copy(), bits[:, 1].copy(), bits[:, 2].copy()


def server_flops_sum(counts: np.ndarray, server_flops: np.ndarray, batch_size: int,
                     backward_factor: float) -> np.ndarray:
    """MS FLOPs of one iteration summed over the clients, grouped by cut: sum_s (n_s b)(1 + beta) F_s.

    Args:
        counts: (..., L-1) int, clients n_s whose cut is s + 1.
        server_flops: (..., L-1) forward FLOPs per sequence of blocks s+2..L and the head at the global rank.
        batch_size: b, sequences per client and iteration.
        backward_factor: beta (backward = beta x forward).

    Returns:
        (...,) FLOPs. The sum runs over the cuts in ascending order (an empty cut adds an exact 0.0), each
        term evaluated as ``((n_s * b) * (1 + beta)) * F_s``, so a homogeneous profile gives the paper's
        ``K b (1 + beta) F`` bit for bit and the single and batched models agree bit for bit.
    """
    counts = np.asarray(counts)
    server_flops = np.asarray(server_flops, dtype=float)
    total = np.zeros(np.broadcast_shapes(counts.shape, server_flops.shape)[:-1])
    for s in range(counts.shape[-1]):
        total += counts[..., s] * batch_size * (1.0 + backward_factor) * server_flops[..., s]
    return total


def client_compute_s(shape: ModelShape, split: int | np.ndarray, rank: int | np.ndarray, scenario: Scenario,
                     load: np.ndarray, cfg: FedsLLMConfig) -> tuple[np.ndarray, np.ndarray]:
    """((K,) forward, (K,) backward) client compute time of one iteration, s.

    ``split`` and ``rank`` are the shared cut and rank (ints) or one per client ((K,) arrays, validated by
    :func:`client_profile`): T_k^F = b FLOPs_fwd(1..c_k; r_k) / (f_k kappa_k (1 - load_k)), T_k^B = beta T_k^F.
    """
    t = cfg.training
    if is_per_client(split, rank):
        cuts, ranks = client_profile(split, rank, scenario.num_clients, shape, cfg)
        flops: float | np.ndarray = np.array(
            [t.batch_size * _flops(shape, c, r, t.seq_len, cfg.model.lora_target_modules)[0]
             for c, r in zip(cuts.tolist(), ranks.tolist())], dtype=float)
    else:
        flops = t.batch_size * _flops(shape, split, rank, t.seq_len, cfg.model.lora_target_modules)[0]
    available = scenario.client_peak_flops * (1.0 - load)
    fwd = flops / available
    return fwd, cfg.compute.backward_factor * fwd


def server_compute_s(shape: ModelShape, split: int | np.ndarray, rank: int | np.ndarray, num_clients: int,
                     cfg: FedsLLMConfig, global_rank: int | None = None) -> float:
    """Main-server forward + backward time for all K micro-batches of one iteration, s.

    Shared cut and rank (ints): T^S = K b (1 + beta) FLOPs_fwd(c+1..L, head; r) / (f_s kappa_s). One per client
    ((K,) arrays) or a ``global_rank``: T^S = sum_k b (1 + beta) FLOPs_fwd(c_k+1..L, head; r_g) / (f_s kappa_s)
    with r_g from :func:`server_rank` (:func:`server_flops_sum` adds the clients cut by cut).
    """
    t, c = cfg.training, cfg.compute
    if is_per_client(split, rank) or global_rank is not None:
        cuts, ranks = client_profile(split, rank, num_clients, shape, cfg)
        r_g = server_rank(ranks, cfg, global_rank)
        per_cut = np.array([_flops(shape, s, r_g, t.seq_len, cfg.model.lora_target_modules)[1]
                            for s in range(1, shape.n_layer)])
        counts = np.bincount(cuts - 1, minlength=shape.n_layer - 1)
        total = server_flops_sum(counts, per_cut, t.batch_size, c.backward_factor)
        return float(total / (c.server_cpu_freq_hz * c.server_flops_per_cycle))
    flops = num_clients * t.batch_size * (1.0 + c.backward_factor) * \
        _flops(shape, split, rank, t.seq_len, cfg.model.lora_target_modules)[1]
    return float(flops / (c.server_cpu_freq_hz * c.server_flops_per_cycle))


def upload_time_s(bits: float, rates_bps: np.ndarray) -> np.ndarray:
    """bits / rate per client; inf where the rate is zero (no subchannel or no power)."""
    return np.divide(bits, rates_bps, out=np.full(rates_bps.shape, np.inf), where=rates_bps > 0)


def round_delay(decision: Decision, channel: ChannelState, scenario: Scenario, shape: ModelShape,
                cfg: FedsLLMConfig, global_rank: int | None = None) -> DelayBreakdown:
    """Every delay term of one round under ``decision``, s (no feasibility check: see ``check_feasible``).

    ``decision.split`` / ``decision.rank`` are the shared cut and rank (ints), or one per client ((K,) arrays,
    validated by :func:`client_profile`); then ``lora_bits`` is (K,) (client k's adapter bits), the broadcast
    sends max_k of them and the MS runs at the rank of :func:`server_rank` (``global_rank`` or max_k r_k).
    Equal per-client values give the shared case's numbers bit for bit.
    """
    if is_per_client(decision.split, decision.rank) or global_rank is not None:
        return _round_delay_per_client(decision, channel, scenario, shape, cfg, global_rank)
    w = cfg.wireless
    n0 = noise_psd_w_per_hz(w.noise_psd_dbm_per_hz)
    split, rank = int(decision.split), int(decision.rank)
    act_bits, label_bits, lora_bits = payload_bits(shape, split, rank, cfg)
    rate_ms = client_rates_bps(decision.assign_ms, decision.power_ms_w, channel.gain_ms,
                               w.subchannel_bandwidth_ms_hz, n0)
    rate_fs = client_rates_bps(decision.assign_fs, decision.power_fs_w, channel.gain_fs,
                               w.subchannel_bandwidth_fs_hz, n0)
    fwd, bwd = client_compute_s(shape, split, rank, scenario, channel.load, cfg)
    up = upload_time_s(act_bits + label_bits, rate_ms)
    down = np.full_like(fwd, act_bits / w.downlink_rate_bps)
    t_server = server_compute_s(shape, split, rank, scenario.num_clients, cfg)
    t_iter = float((fwd + up).max() + t_server + (down + bwd).max())
    lora_up = upload_time_s(lora_bits, rate_fs)
    broadcast = lora_bits / w.broadcast_rate_bps
    t_round = cfg.training.local_iterations * t_iter + float(lora_up.max()) + broadcast
    return DelayBreakdown(fwd, bwd, up, down, t_server, t_iter, lora_up, broadcast, t_round, rate_ms, rate_fs,
                          act_bits, label_bits, lora_bits)


def _round_delay_per_client(decision: Decision, channel: ChannelState, scenario: Scenario, shape: ModelShape,
                            cfg: FedsLLMConfig, global_rank: int | None) -> DelayBreakdown:
    """:func:`round_delay` with a cut and a rank per client (the same operations, client by client)."""
    w = cfg.wireless
    k = scenario.num_clients
    cuts, ranks = client_profile(decision.split, decision.rank, k, shape, cfg)
    n0 = noise_psd_w_per_hz(w.noise_psd_dbm_per_hz)
    act_bits, label_bits, lora_bits = client_payload_bits(shape, cuts, ranks, cfg)
    rate_ms = client_rates_bps(decision.assign_ms, decision.power_ms_w, channel.gain_ms,
                               w.subchannel_bandwidth_ms_hz, n0)
    rate_fs = client_rates_bps(decision.assign_fs, decision.power_fs_w, channel.gain_fs,
                               w.subchannel_bandwidth_fs_hz, n0)
    fwd, bwd = client_compute_s(shape, cuts, ranks, scenario, channel.load, cfg)
    up = upload_time_s(act_bits + label_bits, rate_ms)
    down = act_bits / w.downlink_rate_bps
    t_server = server_compute_s(shape, cuts, ranks, k, cfg, global_rank)
    t_iter = float((fwd + up).max() + t_server + (down + bwd).max())
    lora_up = upload_time_s(lora_bits, rate_fs)
    broadcast = float(lora_bits.max()) / w.broadcast_rate_bps  # the largest truncated adapter a client receives
    t_round = cfg.training.local_iterations * t_iter + float(lora_up.max()) + broadcast
    # activations and labels are b x n x d and b x n whatever the cut: one value for every client
    return DelayBreakdown(fwd, bwd, up, down, t_server, t_iter, lora_up, broadcast, t_round, rate_ms, rate_fs,
                          float(act_bits.max()), float(label_bits.max()), lora_bits)


def expected_total_delay_s(rounds_needed, round_s):
    """The paper's objective T = E * T_round, s: ``rounds_needed`` is the value E (rounds to the target,
    today E(r) of the calibration; any E(rank, split) later), ``round_s`` the round delay. Works on floats
    and on numpy arrays (broadcasting) alike."""
    return rounds_needed * round_s


def client_memory_bytes(split: int | np.ndarray, rank: int | np.ndarray, shape: ModelShape,
                        cfg: FedsLLMConfig) -> float | np.ndarray:
    """Memory a client spends on (split, rank), bytes (:meth:`ModelShape.client_memory_bytes` with the
    config's LoRA targets, batch and sequence length; frozen weights at ``model.dtype``'s bits, which the
    wire's ``activation_bits`` do not change).

    Ints give a float; (K,) arrays (a cut and a rank per client, validated by :func:`client_profile`) give a
    (K,) array, client k's bytes at (c_k, r_k)."""
    t, m = cfg.training, cfg.model
    if is_per_client(split, rank):
        k = max(np.size(split), np.size(rank))
        cuts, ranks = client_profile(split, rank, k, shape, cfg)
        return np.array([client_memory_bytes(c, r, shape, cfg) for c, r in zip(cuts.tolist(), ranks.tolist())],
                        dtype=float)
    return shape.client_memory_bytes(int(split), int(rank), m.lora_target_modules, t.batch_size, t.seq_len,
                                     DTYPE_BITS[m.dtype])


def client_memory_limits_bytes(cfg: FedsLLMConfig, num_clients: int | None = None) -> np.ndarray:
    """(K,) memory cap of each client, bytes (0 = unlimited): ``compute.device_class_memory_bytes`` of client k's
    class (``k mod len(classes)``), else ``compute.client_memory_bytes`` for every client. K defaults to
    ``wireless.num_clients``."""
    k = cfg.wireless.num_clients if num_clients is None else int(num_clients)
    classes = cfg.compute.device_class_memory_bytes
    if classes:
        return np.asarray(classes, dtype=float)[np.arange(k) % len(classes)]
    return np.full(k, float(cfg.compute.client_memory_bytes))


def shared_memory_limit_bytes(cfg: FedsLLMConfig) -> float:
    """The cap a shared (split, rank) must fit, bytes: the smallest cap of the cell's clients, 0 (unlimited)
    when no client has one. Equal to ``compute.client_memory_bytes`` without device classes."""
    limits = client_memory_limits_bytes(cfg)
    capped = limits[limits > 0]
    return float(capped.min()) if capped.size else 0.0


def _limit_source(cfg: FedsLLMConfig) -> str:
    """Where the default memory limit of a message comes from."""
    if cfg.compute.device_class_memory_bytes:
        return "the smallest device-class cap (compute.device_class_memory_bytes)"
    return "compute.client_memory_bytes"


def memory_violations(split: int | np.ndarray, rank: int | np.ndarray, shape: ModelShape, cfg: FedsLLMConfig,
                      limit_bytes: float | np.ndarray | None = None) -> list[str]:
    """The client-memory constraint of (split, rank) as readable strings (empty: fits, or no limit set).

    Args:
        split: the shared cut (int) or one per client ((K,) array).
        rank: the shared rank (int) or one per client ((K,) array).
        shape: model dimensions.
        cfg: env config.
        limit_bytes: memory limit, bytes: one for every client or (K,) one per device; None means the
            config's: for a shared (split, rank) the smallest client cap (:func:`shared_memory_limit_bytes`),
            per client each client's own (:func:`client_memory_limits_bytes`). A limit <= 0 means unlimited.
    """
    per_client = is_per_client(split, rank)
    if limit_bytes is not None:
        limit = limit_bytes
    elif per_client:
        limit = client_memory_limits_bytes(cfg, max(np.size(split), np.size(rank)))
    else:
        limit = shared_memory_limit_bytes(cfg)
    if not per_client and np.ndim(limit) == 0:
        limit = float(limit)
        if np.isnan(limit):
            raise InfeasibleDecisionError([f"memory limit must be a number of bytes, got {limit!r}"])
        if limit <= 0 or not 1 <= int(split) <= shape.n_layer - 1:
            return []
        need = client_memory_bytes(split, rank, shape, cfg)
        if need <= limit:
            return []
        source = _limit_source(cfg) if limit_bytes is None else "the memory limit"
        return [f"split {int(split)} / rank {int(rank)} needs {need:.6g} B of client memory > "
                f"{source} {limit:.6g} B"]
    k = max(np.size(split), np.size(rank)) if is_per_client(split, rank) else int(np.size(limit))
    cuts, ranks = client_profile(split, rank, k, shape, cfg)
    limits = np.asarray(limit, dtype=float)
    if limits.ndim > 1 or (limits.ndim == 1 and limits.shape != (k,)) or np.any(np.isnan(limits)):
        raise InfeasibleDecisionError([f"memory limit must be a number or one per client, shape ({k},), without "
                                       f"NaN, got {limits.tolist()}"])
    limits = np.broadcast_to(limits, (k,))
    need = client_memory_bytes(cuts, ranks, shape, cfg)
    return [f"client {j}: split {int(cuts[j])} / rank {int(ranks[j])} needs {need[j]:.6g} B of client memory > "
            f"limit {limits[j]:.6g} B" for j in range(k) if limits[j] > 0 and need[j] > limits[j]]


def split_rank_feasibility(shape: ModelShape, cfg: FedsLLMConfig,
                           limit_bytes: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """((L-1,) splits, (R,) ranks) boolean: split c fits with the smallest rank, rank r fits at split 1.

    ``limit_bytes`` (bytes, <= 0 unlimited) defaults to the cap a shared decision must fit
    (:func:`shared_memory_limit_bytes`). At least one entry of each stays True (the smallest choice), so a
    mask never empties.
    """
    limit = shared_memory_limit_bytes(cfg) if limit_bytes is None else float(limit_bytes)
    ranks = cfg.model.ranks
    splits = range(1, shape.n_layer)
    if limit <= 0:
        return np.ones(len(splits), bool), np.ones(len(ranks), bool)
    split_ok = np.array([client_memory_bytes(c, ranks[0], shape, cfg) <= limit for c in splits])
    rank_ok = np.array([client_memory_bytes(1, r, shape, cfg) <= limit for r in ranks])
    if not split_ok.any():
        split_ok[0] = True
    if not rank_ok.any():
        rank_ok[0] = True
    return split_ok, rank_ok


def project_split_rank(split: int, rank: int, shape: ModelShape, cfg: FedsLLMConfig,
                       limit_bytes: float | None = None) -> tuple[int, int]:
    """Projection onto the memory limit: the largest split, then the largest rank, not above the request
    that fits (split 1 with the smallest rank when nothing fits). ``limit_bytes`` (bytes, <= 0 unlimited)
    defaults to the cap a shared decision must fit (:func:`shared_memory_limit_bytes`); pass a client's own
    cap (:func:`client_memory_limits_bytes`) to project its (c_k, r_k)."""
    limit = shared_memory_limit_bytes(cfg) if limit_bytes is None else float(limit_bytes)
    if limit <= 0:
        return int(split), int(rank)
    for c in range(int(split), 0, -1):
        for r in [x for x in cfg.model.ranks if x <= rank][::-1]:
            if client_memory_bytes(c, r, shape, cfg) <= limit:
                return c, r
    return 1, cfg.model.ranks[0]


def decision_violations(decision: Decision, scenario: Scenario, shape: ModelShape, cfg: FedsLLMConfig) -> list[str]:
    """Every constraint ``decision`` violates, as readable strings (empty list = feasible)."""
    w = cfg.wireless
    k = scenario.num_clients
    out: list[str] = []
    links = (("MS", decision.assign_ms, decision.power_ms_w, w.num_subchannels_ms, w.total_power_ms_w),
             ("FS", decision.assign_fs, decision.power_fs_w, w.num_subchannels_fs, w.total_power_fs_w))
    for name, assign, power, n_sub, p_total in links:
        assign = np.asarray(assign)
        power = np.asarray(power, dtype=float)
        if assign.shape != (n_sub,):
            out.append(f"{name} assignment must have shape ({n_sub},) (one owner per subchannel), got {assign.shape}")
            continue
        if power.shape != (n_sub,):
            out.append(f"{name} power must have shape ({n_sub},), got {power.shape}")
            continue
        if not np.issubdtype(assign.dtype, np.integer) or np.any(assign < 0) or np.any(assign >= k):
            out.append(f"{name} assignment must hold client indices in [0, {k - 1}], got {assign.tolist()}")
            continue
        if not np.all(np.isfinite(power)):
            out.append(f"{name} power contains NaN/inf: {power.tolist()}")
            continue
        if np.any(power < 0):
            out.append(f"{name} power must be >= 0 W, got {power.tolist()}")
        missing = sorted(set(range(k)) - set(assign.tolist()))
        if missing:
            out.append(f"{name} link: clients {missing} have no subchannel")
        per_client = np.bincount(assign, weights=power, minlength=k)
        over = np.nonzero(per_client > scenario.client_max_power_w * (1 + POWER_TOLERANCE))[0]
        for c in over:
            out.append(f"{name} link: client {int(c)} power {per_client[c]:.6g} W > p_max "
                       f"{scenario.client_max_power_w[c]:.6g} W")
        if power.sum() > p_total * (1 + POWER_TOLERANCE):
            out.append(f"{name} link: total power {power.sum():.6g} W > limit {p_total:.6g} W")
    if is_per_client(decision.split, decision.rank):
        cuts, ranks, bad = _profile_violations(decision.split, decision.rank, k, shape, cfg)
        out += bad
        if not bad:
            out += memory_violations(cuts, ranks, shape, cfg)
        return out
    if not 1 <= int(decision.split) <= shape.n_layer - 1:
        out.append(f"split {decision.split} outside [1, {shape.n_layer - 1}]")
    if int(decision.rank) not in cfg.model.ranks:
        out.append(f"rank {decision.rank} not in candidate ranks {cfg.model.ranks}")
    else:
        out += memory_violations(decision.split, decision.rank, shape, cfg)
    return out


def check_feasible(decision: Decision, scenario: Scenario, shape: ModelShape, cfg: FedsLLMConfig) -> None:
    """Raise :class:`InfeasibleDecisionError` listing every violated constraint."""
    violations = decision_violations(decision, scenario, shape, cfg)
    if violations:
        raise InfeasibleDecisionError(violations)

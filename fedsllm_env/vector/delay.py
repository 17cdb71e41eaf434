"""Delay model of one round for a batch of envs: :func:`fedsllm_env.delay.round_delay` with a leading batch axis.

Every per-(split, rank) constant (payload bits, client/server FLOPs, fixed-rate transfer times, E(r)) is
tabulated once by calling the single-env functions of :mod:`fedsllm_env.delay`, so the batched
arithmetic below repeats the single env's operations element by element and gives bit-identical
results (tested). Arrays: ``B`` envs, ``K`` clients, ``M``/``N`` subchannels on the MS/FS links.

A cut and a rank per client (``split_idx`` / ``rank_idx`` of shape (B, K); the heterogeneous model of
:mod:`fedsllm_env.delay`) go through :func:`batched_round_delay_per_client`, which repeats the single model's
per-client operations and its cut-by-cut server sum (:func:`fedsllm_env.delay.server_flops_sum`), so row i
equals ``round_delay`` of env i bit for bit, and an all-equal row equals the shared-cut path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedsllm_env.config import FedsLLMConfig
from fedsllm_env.delay import client_compute_s, noise_psd_w_per_hz, payload_bits, server_compute_s, server_flops_sum
from fedsllm_env.errors import InfeasibleDecisionError
from fedsllm_env.profile import ModelShape
from fedsllm_env.types import Scenario
from fedsllm_env.vector.channel import BatchedChannel
from fedsllm_env.batched import batched_bincount, take_rows
from fedsllm_env.vector.codecs import BatchedDecisions

__all__ = ["LinkLayout", "DelayTables", "BatchedDelay", "batched_client_rates_bps", "batched_round_delay",
           "batched_round_delay_per_client", "per_client_indices"]


@dataclass(frozen=True)
class LinkLayout:
    """Per-subchannel constants of both links side by side (M MS subchannels, then N FS subchannels)."""

    stride: np.ndarray
    """(M + N,) int: owner k of subchannel i sits at ``base[i] + k * stride[i]`` of the flat gain layout."""
    base: np.ndarray
    """(M + N,) int: flat gain index of client 0 on subchannel i."""
    client_offset: np.ndarray
    """(M + N,) int: 0 on the MS link, K on the FS link (rates of both links in one (B, 2K) bincount)."""
    bandwidth_hz: np.ndarray
    """(M + N,) subchannel bandwidth, Hz."""
    noise_w: np.ndarray
    """(M + N,) noise power N0 B of the subchannel, W (each the single env's float product)."""

    @classmethod
    def build(cls, cfg: FedsLLMConfig, n0_w_per_hz: float) -> LinkLayout:
        """The layout of ``cfg.wireless`` (K clients, M / N subchannels)."""
        w = cfg.wireless
        k, m, n = w.num_clients, w.num_subchannels_ms, w.num_subchannels_fs
        bw_ms, bw_fs = w.subchannel_bandwidth_ms_hz, w.subchannel_bandwidth_fs_hz
        return cls(stride=np.array([m] * m + [n] * n, dtype=np.int64),
                   base=np.concatenate([np.arange(m), k * m + np.arange(n)]),
                   client_offset=np.array([0] * m + [k] * n, dtype=np.int64),
                   bandwidth_hz=np.array([bw_ms] * m + [bw_fs] * n, dtype=float),
                   noise_w=np.array([n0_w_per_hz * bw_ms] * m + [n0_w_per_hz * bw_fs] * n, dtype=float))


@dataclass(frozen=True)
class DelayTables:
    """Per-(split index, rank index) constants of the delay model, each an (L-1, R) array."""

    up_bits: np.ndarray
    """Activation + label bits one client uploads per iteration."""
    act_bits: np.ndarray
    """Activation bits (without labels)."""
    label_bits: np.ndarray
    """Label bits."""
    lora_bits: np.ndarray
    """Client-side LoRA bits uploaded per round."""
    client_flops: np.ndarray
    """Client forward FLOPs of one iteration (batch of b sequences)."""
    server_s: np.ndarray
    """Main-server compute of one iteration, s."""
    down_s: np.ndarray
    """Activation-gradient download at the fixed downlink rate, s."""
    broadcast_s: np.ndarray
    """FS broadcast of the averaged LoRA, s."""
    rounds_needed: np.ndarray
    """E(r, c) (inf where the calibration is censored)."""
    n0_w_per_hz: float
    """Noise PSD N0, W/Hz."""
    links: LinkLayout
    """Per-subchannel constants of both links."""
    server_flops: np.ndarray
    """Main-server forward FLOPs per sequence (blocks c+1..L and the LM head at rank r), the per-client
    server sum's F (:func:`fedsllm_env.delay.server_flops_sum`)."""

    @classmethod
    def build(cls, shape: ModelShape, cfg: FedsLLMConfig, rounds_needed) -> DelayTables:
        """Tabulate through the single-env functions (so the values are the single env's, exactly).

        Args:
            shape: model dimensions.
            cfg: env config.
            rounds_needed: callable (rank, split) -> E(r, c) (the env's ``rounds_needed``).
        """
        ranks, n_split = cfg.model.ranks, shape.n_layer - 1
        w = cfg.wireless
        unit = Scenario(np.ones(1), np.ones(1), np.ones(1))  # one client of peak 1 FLOP/s
        tab = {k: np.empty((n_split, len(ranks))) for k in
               ("up_bits", "act_bits", "label_bits", "lora_bits", "client_flops", "server_s", "down_s",
                "broadcast_s", "server_flops")}
        for s in range(n_split):
            for j, r in enumerate(ranks):
                act, label, lora = payload_bits(shape, s + 1, r, cfg)
                tab["up_bits"][s, j] = act + label
                tab["act_bits"][s, j], tab["label_bits"][s, j], tab["lora_bits"][s, j] = act, label, lora
                # flops / (1 FLOP/s * (1 - 0)) is the flop count itself, exactly
                tab["client_flops"][s, j] = client_compute_s(shape, s + 1, r, unit, np.zeros(1), cfg)[0][0]
                tab["server_s"][s, j] = server_compute_s(shape, s + 1, r, w.num_clients, cfg)
                tab["down_s"][s, j] = act / w.downlink_rate_bps
                tab["broadcast_s"][s, j] = lora / w.broadcast_rate_bps
                tab["server_flops"][s, j] = shape.server_forward_flops(s + 1, cfg.training.seq_len, r,
                                                                       cfg.model.lora_target_modules)
        e_rc = np.array([[float(rounds_needed(r, s + 1)) for r in ranks] for s in range(n_split)])
        n0 = noise_psd_w_per_hz(w.noise_psd_dbm_per_hz)
        return cls(**tab, rounds_needed=e_rc, n0_w_per_hz=n0, links=LinkLayout.build(cfg, n0))


@dataclass
class BatchedDelay:
    """The terms of :class:`~fedsllm_env.types.DelayBreakdown` for B envs (per-client arrays (B, K))."""

    client_forward_s: np.ndarray
    client_backward_s: np.ndarray
    activation_upload_s: np.ndarray
    gradient_download_s: np.ndarray
    server_compute_s: np.ndarray
    iteration_s: np.ndarray
    lora_upload_s: np.ndarray
    broadcast_s: np.ndarray
    round_s: np.ndarray
    rate_ms_bps: np.ndarray
    rate_fs_bps: np.ndarray
    activation_bits: np.ndarray
    label_bits: np.ndarray
    lora_bits: np.ndarray
    """(B,) bits of every client's adapter, or (B, K) client by client for per-client profiles."""

    client_maxima: np.ndarray | None = None
    """(4, B) max over the clients of client_forward_s, client_backward_s, activation_upload_s and lora_upload_s
    when already computed (:func:`batched_round_delay`); None otherwise."""

    def as_info(self) -> dict[str, np.ndarray]:
        """Batched :meth:`DelayBreakdown.as_info`: (B,) arrays, per-client terms by their max."""
        if self.client_maxima is None:
            fwd, bwd, up, lora = (client_max(x) for x in (self.client_forward_s, self.client_backward_s,
                                                          self.activation_upload_s, self.lora_upload_s))
        else:
            fwd, bwd, up, lora = self.client_maxima
        return {
            "client_forward_s": fwd,
            "client_backward_s": bwd,
            "activation_upload_s": up,
            "gradient_download_s": client_max(self.gradient_download_s),
            "server_compute_s": self.server_compute_s,
            "iteration_s": self.iteration_s,
            "lora_upload_s": lora,
            "broadcast_s": self.broadcast_s,
            "round_s": self.round_s,
            "activation_bits": self.activation_bits,
            "label_bits": self.label_bits,
            "lora_bits": self.lora_bits if self.lora_bits.ndim == 1 else client_max(self.lora_bits),
        }


def client_max(x: np.ndarray) -> np.ndarray:
    """(..., B) maximum over the clients (last axis) of a (..., B, K) array (a column loop: faster than
    ``max(axis=-1)`` for small K)."""
    if x.shape[-1] > 8:
        return x.max(axis=-1)
    out = x[..., 0].copy()
    for j in range(1, x.shape[-1]):
        np.maximum(out, x[..., j], out=out)
    return out


def batched_client_rates_bps(owner_gain: np.ndarray, assign: np.ndarray, power_w: np.ndarray, num_clients: int,
                             bandwidth_hz: float | np.ndarray, n0_w_per_hz: float,
                             noise_w: float | np.ndarray | None = None) -> np.ndarray:
    """(B, K) sum rate of each client over the subchannels it owns, bit/s (``delay.client_rates_bps``).

    Args:
        owner_gain: (B, S) linear gain of each subchannel's owner on it.
        assign: (B, S) owner of each subchannel.
        power_w: (B, S) transmit power, W.
        num_clients: K.
        bandwidth_hz: subchannel bandwidth, Hz (or (S,) one per subchannel).
        n0_w_per_hz: noise PSD, W/Hz.
        noise_w: ``n0_w_per_hz * bandwidth_hz`` when already at hand.
    """
    snr = power_w * owner_gain
    snr /= n0_w_per_hz * bandwidth_hz if noise_w is None else noise_w
    per_sub = np.log1p(snr, out=snr)
    per_sub *= bandwidth_hz  # bandwidth * log1p(snr), as delay.subchannel_rates_bps (multiplication commutes)
    per_sub /= np.log(2.0)
    return batched_bincount(assign, per_sub, num_clients)


def _upload_time_s(bits: np.ndarray, rates_bps: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """bits / rate where the rate is positive, inf elsewhere (into ``out`` when given), s."""
    if out is None:
        out = np.full(rates_bps.shape, np.inf)
    else:
        out.fill(np.inf)
    return np.divide(bits, rates_bps, out=out, where=rates_bps > 0)


def _link_rates(tables: DelayTables, dec: BatchedDecisions, channel: BatchedChannel) -> tuple[np.ndarray, np.ndarray]:
    """(B, K) sum rate of every client on the MS link and on the FS link, bit/s (both links in one pass)."""
    k = channel.k
    assign, power_w = dec.both_links()
    links = tables.links
    # each subchannel's owner gain: flat index of gain[b, link block + owner * S_link + i]
    owner_gain = take_rows(channel.gain, assign * links.stride + links.base)
    rates = batched_client_rates_bps(owner_gain, assign + links.client_offset, power_w, 2 * k, links.bandwidth_hz,
                                     tables.n0_w_per_hz, links.noise_w)
    return rates[:, :k], rates[:, k:]


def batched_round_delay(tables: DelayTables, cfg: FedsLLMConfig, dec: BatchedDecisions,
                        channel: BatchedChannel) -> BatchedDelay:
    """:func:`fedsllm_env.delay.round_delay` for B envs at once (no feasibility check), s.

    Args:
        tables: per-(split, rank) constants.
        cfg: env config.
        dec: the decisions (owners, powers, split and rank indices: (B,) shared by the clients of an env, or
            (B, K) one per client, then priced by :func:`batched_round_delay_per_client`).
        channel: gains, loads and device compute of every env.
    """
    if dec.split_idx.ndim != 1 or dec.rank_idx.ndim != 1:
        return batched_round_delay_per_client(tables, cfg, dec, channel)
    rate_ms, rate_fs = _link_rates(tables, dec, channel)
    cell = dec.split_idx * tables.up_bits.shape[1] + dec.rank_idx  # flat (split, rank) table index
    available = channel.peak_flops * (1.0 - channel.load)
    # the per-client terms in one block, so their maxima over the clients come from one column loop:
    # fwd + up, down + bwd, lora_up, fwd, bwd, up
    terms = np.empty((6, *available.shape))
    fwd = np.divide(tables.client_flops.ravel()[cell][:, None], available, out=terms[3])
    bwd = np.multiply(cfg.compute.backward_factor, fwd, out=terms[4])
    up = _upload_time_s(tables.up_bits.ravel()[cell][:, None], rate_ms, out=terms[5])
    down = tables.down_s.ravel()[cell][:, None]  # the same for every client: (B, 1)
    lora_bits = tables.lora_bits.ravel()[cell]
    lora_up = _upload_time_s(lora_bits[:, None], rate_fs, out=terms[2])
    np.add(fwd, up, out=terms[0])
    np.add(down, bwd, out=terms[1])
    maxima = client_max(terms)
    t_server = tables.server_s.ravel()[cell]
    t_iter = maxima[0] + t_server + maxima[1]
    broadcast = tables.broadcast_s.ravel()[cell]
    t_round = cfg.training.local_iterations * t_iter + maxima[2] + broadcast
    return BatchedDelay(fwd, bwd, up, down, t_server, t_iter, lora_up, broadcast, t_round, rate_ms, rate_fs,
                        tables.act_bits.ravel()[cell], tables.label_bits.ravel()[cell], lora_bits,
                        maxima[[3, 4, 5, 2]])


def per_client_indices(split_idx, rank_idx, num_envs: int, num_clients: int, num_splits: int,
                       num_ranks: int) -> tuple[np.ndarray, np.ndarray]:
    """(B, K) split and rank indices of every client from (B,) (shared in an env) or (B, K) index arrays.

    Raises:
        InfeasibleDecisionError: a shape other than (B,) / (B, K), a non-integer dtype, or an index outside
            0..L-2 (cuts 1..L-1) / 0..R-1 (the candidate ranks).
    """
    out = []
    for name, idx, n in (("split_idx", split_idx, num_splits), ("rank_idx", rank_idx, num_ranks)):
        idx = np.asarray(idx)
        if idx.shape not in ((num_envs,), (num_envs, num_clients)):
            raise InfeasibleDecisionError([f"{name} must have shape ({num_envs},) or ({num_envs}, {num_clients}), "
                                           f"got {idx.shape}"])
        if idx.dtype == np.bool_ or not np.issubdtype(idx.dtype, np.integer):
            raise InfeasibleDecisionError([f"{name} must hold integer indices, got dtype {idx.dtype}"])
        bad = (idx < 0) | (idx >= n)
        if bad.any():
            where = np.argwhere(bad)[:10].tolist()
            raise InfeasibleDecisionError([f"{name} must be in [0, {n - 1}], got {idx[bad][:10].tolist()} at "
                                           f"{where}"])
        out.append(np.broadcast_to(idx[:, None], (num_envs, num_clients)) if idx.ndim == 1 else idx)
    return out[0], out[1]


def batched_round_delay_per_client(tables: DelayTables, cfg: FedsLLMConfig, dec: BatchedDecisions,
                                   channel: BatchedChannel, global_rank_idx: int | None = None) -> BatchedDelay:
    """:func:`fedsllm_env.delay.round_delay` with a cut and a rank per client, for B envs (no feasibility check), s.

    Args:
        tables: per-(split, rank) constants.
        cfg: env config.
        dec: the decisions; ``split_idx`` (cut - 1) and ``rank_idx`` (index into ``cfg.model.ranks``) of shape
            (B, K), one per client, or (B,), shared by the clients of an env.
        channel: gains, loads and device compute of every env.
        global_rank_idx: index of the MS adapters' rank r_g; None: max_k r_k of each env.

    Returns:
        The delay terms; per-client arrays (B, K) (``lora_bits`` too: client k's adapter), ``server_compute_s``
        (B,) summed over the clients' cuts, ``broadcast_s`` (B,) of the largest adapter.

    Raises:
        InfeasibleDecisionError: bad index shapes, dtypes or values (:func:`per_client_indices`).
    """
    k = channel.k
    n_split, n_rank = tables.up_bits.shape
    b = dec.split_idx.shape[0]
    split_idx, rank_idx = per_client_indices(dec.split_idx, dec.rank_idx, b, k, n_split, n_rank)
    rate_ms, rate_fs = _link_rates(tables, dec, channel)
    cell = split_idx * n_rank + rank_idx  # (B, K) flat (split, rank) table index of every client
    available = channel.peak_flops * (1.0 - channel.load)
    fwd = tables.client_flops.ravel()[cell] / available
    bwd = cfg.compute.backward_factor * fwd
    act_bits = tables.act_bits.ravel()[cell]
    up = _upload_time_s(tables.up_bits.ravel()[cell], rate_ms)
    down = tables.down_s.ravel()[cell]
    lora_bits = tables.lora_bits.ravel()[cell]
    lora_up = _upload_time_s(lora_bits, rate_fs)
    if global_rank_idx is None:
        rg = client_max(rank_idx)  # ranks are sorted ascending (config rule): the largest index is max_k r_k
    else:
        if isinstance(global_rank_idx, bool) or not isinstance(global_rank_idx, (int, np.integer)) or \
                not 0 <= int(global_rank_idx) < n_rank:
            raise InfeasibleDecisionError([f"global_rank_idx must be an int in [0, {n_rank - 1}], got "
                                           f"{global_rank_idx!r}"])
        rg = np.full(b, int(global_rank_idx))
    counts = batched_bincount(split_idx, None, n_split)
    per_cut = tables.server_flops[:, rg].T  # (B, L-1): F of every cut at each env's global rank
    c = cfg.compute
    t_server = server_flops_sum(counts, per_cut, cfg.training.batch_size, c.backward_factor) / \
        (c.server_cpu_freq_hz * c.server_flops_per_cycle)
    t_iter = client_max(fwd + up) + t_server + client_max(down + bwd)
    broadcast = client_max(lora_bits) / cfg.wireless.broadcast_rate_bps
    t_round = cfg.training.local_iterations * t_iter + client_max(lora_up) + broadcast
    return BatchedDelay(fwd, bwd, up, down, t_server, t_iter, lora_up, broadcast, t_round, rate_ms, rate_fs,
                        client_max(act_bits), client_max(tables.label_bits.ravel()[cell]), lora_bits)

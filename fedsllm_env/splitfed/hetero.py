"""Heterogeneous clients in the real split-fed training: a cut c_k and a LoRA rank r_k per client (SPEC.md,
"Heterogeneous clients"; opt-in, the paper's model is the special case c_k = c, r_k = r).

* Client k runs the embeddings and blocks 1..c_k (0-based ``j < c_k``) with its own adapters at rank r_k; the
  main server (MS) runs blocks c_k+1..L of client k's micro-batch with its ONE copy of each block's adapter at
  the global rank r_g (max_k r_k, or a configured ``global_rank`` >= max_k r_k). The MS copy of block j is
  therefore trained on the micro-batches of every client with c_k <= j (0-based: ``j >= c_k``).
* End of round, per block j, the holders' copies are aggregated, weighted by data: every client with j < c_k
  (its upload, sent at ``model.activation_bits``, rank r_k) and the MS's copy (rank r_g) standing for the
  clients with c_k <= j, weighted by the sum of their data. When every holder's copy has rank r_g, both rules
  are the paper's FedAvg of A and B (so the homogeneous profile gives today's numbers bit for bit); with mixed
  ranks the rule decides (:data:`AGGREGATION_RULES`):

  - ``"zero_pad"`` (HetLoRA, arXiv:2401.06432): A_k padded with zero rows and B_k with zero columns to r_g,
    then the data-weighted average of A and of B (:func:`zero_pad_aggregate`);
  - ``"svd"`` (FlexLoRA, arXiv:2402.11505): the data-weighted sum of the full products B_k A_k, its truncated
    SVD at r_g split into B = U S / rho and A = rho V^T (:func:`svd_aggregate`; rho as in
    :func:`fedsllm_env.splitfed.lora.resize_pair`, so A keeps its scale and no direction is born dead).

  Every client then receives block j's global adapter cut to r_k (the identity at r_k = r_g), sent at
  ``activation_bits``; the MS keeps the global at r_g. How it is cut depends on the rule
  (:func:`client_copy`): under ``"svd"`` it is the best rank-r_k approximation of B A (:func:`truncate_pair`,
  as SPEC.md asks; the rule aggregates products, so how a copy is factorised does not matter to it); under
  ``"zero_pad"`` it is the first r_k components (A's first r_k rows, B's first r_k columns, :func:`prefix_pair`:
  HetLoRA's own truncation). Deviation from SPEC.md for ``"zero_pad"``: the best rank-r_k approximation hands a
  low-rank client a rotated factorisation of the global, and zero-padding then averages A's and B's written in
  different coordinate systems, so B_avg A_avg carries cross terms no client trained: measured on the profile
  c1r32.32.8.8.8 (K = 5, tiny GPT-2), the validation loss fell to 1.8 and then climbed until training diverged
  near round 50, on 2 of 2 seeds (with the prefix: 0.85 / 0.82 at round 60). The prefix keeps every copy in one
  coordinate system. After a round every copy of every block holds the global adapter (or its truncation), so a
  later change of cuts moves no tensor: only the Adam state of a block that changes hands is reset. A change
  of any rank rebuilds every adapter from the global (grown with fresh A rows and zero B columns, or
  SVD-truncated) and re-creates every optimizer, as the homogeneous engine does.
* The validation loss is the global model's: the MS copy of every block (rank r_g).
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch
from torch import nn

from fedsllm_env.errors import ConfigError
from fedsllm_env.splitfed.backbones import BackboneAdapter
from fedsllm_env.splitfed.lora import (adapter_pairs, fedavg, init_lora_, inject_lora, make_lora_config,
                                       resize_pair, resize_state, shared_base_copy)
from fedsllm_env.splitfed.split import SplitLoRAModel
from fedsllm_env.splitfed.wire import send

__all__ = ["AGGREGATION_RULES", "check_aggregation", "zero_pad_aggregate", "svd_aggregate", "truncate_pair",
           "prefix_pair", "client_copy",
           "aggregate_block", "HeteroSplitLoRAModel"]

AGGREGATION_RULES = ("zero_pad", "svd")
"""End-of-round rules for adapters of mixed ranks: HetLoRA's zero padding, FlexLoRA's SVD redistribution."""


def check_aggregation(rule: object) -> str:
    """``rule`` if it is one of :data:`AGGREGATION_RULES`, else ConfigError naming the choices."""
    if not isinstance(rule, str) or rule not in AGGREGATION_RULES:
        raise ConfigError(f"aggregation must be one of {list(AGGREGATION_RULES)}, got {rule!r}")
    return rule


def _weights(weights: Sequence[float], n: int) -> torch.Tensor:
    w = torch.as_tensor(list(weights), dtype=torch.float64)
    if n == 0 or w.numel() != n:
        raise ValueError(f"aggregation needs one weight per adapter, got {w.numel()} weights for {n} adapters")
    if torch.any(w < 0) or float(w.sum()) <= 0:
        raise ValueError(f"aggregation weights must be >= 0 with a positive sum, got {w.tolist()}")
    return w / w.sum()


def _check_pairs(pairs: Sequence[tuple[torch.Tensor, torch.Tensor]], rank: int, padded: bool) -> None:
    if int(rank) < 1:
        raise ValueError(f"the global rank must be >= 1, got {rank}")
    for i, (a, b) in enumerate(pairs):
        if b.shape[1] != a.shape[0]:
            raise ValueError(f"adapter {i}: A has rank {a.shape[0]} but B has {b.shape[1]} columns")
        if padded and a.shape[0] > rank:
            raise ValueError(f"adapter {i} has rank {a.shape[0]} > the global rank {rank}")


@torch.no_grad()
def zero_pad_aggregate(pairs: Sequence[tuple[torch.Tensor, torch.Tensor]], weights: Sequence[float],
                       rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """HetLoRA: every (A_k (r_k, d_in), B_k (d_out, r_k)) padded with zeros to rank ``rank``, then the weighted
    average of the A's and of the B's (:func:`fedsllm_env.splitfed.lora.fedavg`, float64 accumulation)."""
    _check_pairs(pairs, rank, padded=True)
    states = []
    for a, b in pairs:
        extra = rank - a.shape[0]
        if extra:
            a = torch.cat([a, a.new_zeros(extra, a.shape[1])], dim=0)
            b = torch.cat([b, b.new_zeros(b.shape[0], extra)], dim=1)
        states.append({"a": a, "b": b})
    avg = fedavg(states, weights)
    return avg["a"], avg["b"]


@torch.no_grad()
def svd_aggregate(pairs: Sequence[tuple[torch.Tensor, torch.Tensor]], weights: Sequence[float],
                  rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """FlexLoRA: W = sum_k w_k B_k A_k (weights normalised), truncated SVD W ~ U_r S_r V_r^T at ``rank``, split as
    B = U_r S_r / rho, A = rho V_r^T with rho the weighted RMS row norm of the A_k (A keeps its scale).

    B A is the best rank-``rank`` approximation of W (Eckart-Young). Computed in float64 on the CPU; results in
    the first A's / B's dtype and device. Directions beyond min(d_out, d_in) are zero. The adapters may have any
    ranks, below or above ``rank``.
    """
    _check_pairs(pairs, rank, padded=False)
    w = _weights(weights, len(pairs))
    a0, b0 = pairs[0]
    prod = torch.zeros(b0.shape[0], a0.shape[1], dtype=torch.float64)
    rho2 = 0.0
    for wk, (a, b) in zip(w, pairs):
        if wk != 0:
            a64, b64 = a.detach().to("cpu", torch.float64), b.detach().to("cpu", torch.float64)
            prod += wk * (b64 @ a64)
            rho2 += float(wk) * float(a64.pow(2).sum(dim=1).mean())
    rho = math.sqrt(rho2)
    if not rho > 0:
        rho = 1.0 / math.sqrt(3.0)  # the RMS row norm of a fresh A row (as resize_pair)
    u, s, vh = torch.linalg.svd(prod, full_matrices=False)
    n = min(int(rank), s.numel())
    b_new = torch.zeros(b0.shape[0], rank, dtype=torch.float64)
    a_new = torch.zeros(rank, a0.shape[1], dtype=torch.float64)
    b_new[:, :n] = u[:, :n] * (s[:n] / rho)
    a_new[:n] = rho * vh[:n]
    return a_new.to(a0.device, a0.dtype).contiguous(), b_new.to(b0.device, b0.dtype).contiguous()


@torch.no_grad()
def truncate_pair(a: torch.Tensor, b: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The adapter at rank ``rank`` <= its own: B' A' = the best rank-``rank`` approximation of B A (truncated
    SVD, split as :func:`fedsllm_env.splitfed.lora.resize_pair` does); a copy when the rank is already ``rank``."""
    r = a.shape[0]
    if int(rank) < 1 or int(rank) > r:
        raise ValueError(f"can only truncate a rank-{r} adapter to a rank in [1, {r}], got {rank}")
    if int(rank) == r:
        return a.clone(), b.clone()
    return resize_pair(a, b, int(rank), torch.Generator())  # shrinking draws nothing from the generator


@torch.no_grad()
def prefix_pair(a: torch.Tensor, b: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``rank`` components of an adapter: A's first rows and B's first columns (copies). For an adapter
    in SVD order (:func:`svd_aggregate`'s output) this is the best rank-``rank`` approximation of B A."""
    r = a.shape[0]
    if int(rank) < 1 or int(rank) > r:
        raise ValueError(f"can only truncate a rank-{r} adapter to a rank in [1, {r}], got {rank}")
    return a[: int(rank)].clone(), b[:, : int(rank)].clone()


def client_copy(a: torch.Tensor, b: torch.Tensor, rank: int, rule: str) -> tuple[torch.Tensor, torch.Tensor]:
    """What a client of rank ``rank`` receives of a global adapter under ``rule``: :func:`prefix_pair` for
    "zero_pad" (one coordinate system for every copy), :func:`truncate_pair` for "svd" (the best approximation)."""
    return prefix_pair(a, b, rank) if check_aggregation(rule) == "zero_pad" else truncate_pair(a, b, rank)


def _client_state(state: Mapping[str, torch.Tensor], rank: int, rule: str) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for _, (na, nb) in sorted(adapter_pairs(state).items()):
        out[na], out[nb] = client_copy(state[na], state[nb], rank, rule)
    return out


@torch.no_grad()
def aggregate_block(states: Sequence[Mapping[str, torch.Tensor]], weights: Sequence[float], rank: int,
                    rule: str) -> dict[str, torch.Tensor]:
    """Global adapter of one block at rank ``rank`` from the holders' states (name -> tensor, ranks may differ).

    When every state already has rank ``rank`` this is :func:`fedsllm_env.splitfed.lora.fedavg` (either rule);
    otherwise ``rule`` ("zero_pad" or "svd") aggregates each adapter's (A, B) pairs.
    """
    check_aggregation(rule)
    pairs = adapter_pairs(states[0])
    if all(st[na].shape[0] == rank for st in states for na, _ in pairs.values()):
        return fedavg(states, weights)
    combine = zero_pad_aggregate if rule == "zero_pad" else svd_aggregate
    out: dict[str, torch.Tensor] = {}
    for _, (na, nb) in sorted(pairs.items()):
        out[na], out[nb] = combine([(st[na], st[nb]) for st in states], weights, rank)
    return out


class HeteroSplitLoRAModel(SplitLoRAModel):
    """:class:`~fedsllm_env.splitfed.split.SplitLoRAModel` with a cut and a LoRA rank per client.

    Args:
        base: A ``*ForCausalLM`` of a supported family (frozen, shared).
        cuts: (K,) cut c_k in [1, L-1] of every client.
        ranks: (K,) LoRA rank r_k >= 1 of every client.
        global_rank: Rank r_g >= max_k r_k of the MS's adapters and of the global adapter; None: max_k r_k.
        lora_scaling, lora_dropout, targets, generator, adapter: as :class:`SplitLoRAModel`.
        aggregation: One of :data:`AGGREGATION_RULES`.

    ``rank`` is r_g and ``split`` is c_1 (client 0's cut; the validation forward is sliced there).
    """

    def __init__(self, base: nn.Module, cuts: Sequence[int], ranks: Sequence[int], global_rank: int | None,
                 lora_scaling: float, lora_dropout: float, targets: Sequence[str], generator: torch.Generator,
                 adapter: BackboneAdapter | None = None, aggregation: str = "zero_pad") -> None:
        self.aggregation = check_aggregation(aggregation)
        cuts_t, ranks_t, r_g = self._profile(cuts, ranks, global_rank)
        self.cuts, self.ranks = cuts_t, ranks_t
        super().__init__(base, len(cuts_t), r_g, cuts_t[0], lora_scaling, lora_dropout, targets, generator, adapter)
        for c in self.cuts:
            self.check_split(c)

    @staticmethod
    def _profile(cuts: Sequence[int], ranks: Sequence[int],
                 global_rank: int | None) -> tuple[tuple[int, ...], tuple[int, ...], int]:
        cuts_t = tuple(int(c) for c in cuts)
        ranks_t = tuple(int(r) for r in ranks)
        if len(cuts_t) != len(ranks_t) or not cuts_t:
            raise ValueError(f"one cut and one rank per client, got {len(cuts_t)} cuts and {len(ranks_t)} ranks")
        if min(ranks_t) < 1:
            raise ValueError(f"LoRA ranks must be >= 1, got {list(ranks_t)}")
        r_g = max(ranks_t) if global_rank is None else int(global_rank)
        if r_g < max(ranks_t):
            raise ValueError(f"global rank {r_g} < the largest client rank {max(ranks_t)}: the global adapter "
                             "must hold every client's rank")
        return cuts_t, ranks_t, r_g

    # ---- construction -----------------------------------------------------------------------------
    def _build(self, rank: int) -> None:
        """The MS's peft model at r_g = ``rank``; client k's block list at r_k (a shared-weight copy)."""
        super()._build(rank)
        by_rank: dict[int, nn.ModuleList] = {int(rank): self.server_blocks}
        ad = self.adapter
        for r in sorted(set(self.ranks)):
            if r not in by_rank:
                cfg = make_lora_config(r, self.lora_scaling, self.lora_dropout, self.targets, ad.blocks_path,
                                       ad.fan_in_fan_out)
                by_rank[r] = ad.blocks(inject_lora(self._base[0], cfg).get_base_model())
        self.client_blocks = nn.ModuleList([shared_base_copy(by_rank[r]) for r in self.ranks])

    @torch.no_grad()
    def _common_start(self, generator: torch.Generator) -> None:
        """One global adapter per block at r_g (A random, B = 0) on the MS; client k loads it cut to r_k
        (:func:`client_copy`)."""
        server = self.num_clients
        for j in range(self.n_layer):
            init_lora_(self._block(server, j), generator)
            glob = {n: p.detach() for n, p in self._block(server, j).items()}
            for k in range(self.num_clients):
                self._load(k, j, _client_state(glob, self.ranks[k], self.aggregation))

    @torch.no_grad()
    def _load(self, owner: int, j: int, state: Mapping[str, torch.Tensor]) -> None:
        params = self._block(owner, j)
        for n, value in state.items():
            params[n].copy_(value)

    def holds(self, k: int, j: int) -> bool:
        """Whether client k runs block j (0-based j < c_k)."""
        return j < self.cuts[k]

    def global_state(self) -> dict[str, torch.Tensor]:
        """The global adapters ("j/name", rank r_g): the MS copy of every block (after a round's aggregation)."""
        return {f"{j}/{n}": p.detach().clone() for j in range(self.n_layer)
                for n, p in self._block(self.num_clients, j).items()}

    def owned_state(self) -> dict[str, torch.Tensor]:
        """Same as :meth:`global_state` (every copy holds the global adapter or its truncation after a round)."""
        return self.global_state()

    def client_state(self, k: int, blocks: Sequence[int] | None = None) -> dict[str, torch.Tensor]:
        """Detached copy of client k's adapters of ``blocks`` (default: its own blocks < c_k), keyed "j/name"."""
        return super().client_state(k, range(self.cuts[k]) if blocks is None else blocks)

    def client_lora_bytes(self, k: int = 0) -> int:
        """Bytes of client k's uploaded adapters (blocks < c_k at r_k): sum of numel * element_size."""
        return sum(p.numel() * p.element_size() for j in range(self.cuts[k]) for p in self._block(k, j).values())

    # ---- aggregation --------------------------------------------------------------------------------
    @torch.no_grad()
    def fedavg_clients(self, weights: Sequence[float], bits: int = 32) -> list[int]:
        """End-of-round aggregation of every block over its holders (see the module docstring); returns the
        bytes of each client's upload (blocks < c_k at r_k, sent at ``bits``)."""
        weights = list(weights)
        sizes = [0] * self.num_clients
        server = self.num_clients
        for j in range(self.n_layer):
            states, ws = [], []
            for k in range(self.num_clients):
                if self.holds(k, j):
                    sent = {n: send(p, bits, per_row=False) for n, p in self._block(k, j).items()}
                    states.append({n: v for n, (v, _) in sent.items()})
                    ws.append(weights[k])
                    sizes[k] += sum(nb for _, nb in sent.values())
            served = [weights[k] for k in range(self.num_clients) if not self.holds(k, j)]
            if served:
                states.append({n: p.detach().clone() for n, p in self._block(server, j).items()})
                ws.append(sum(served))
            glob = aggregate_block(states, ws, self.rank, self.aggregation)
            if len(ws) > bool(served):  # some client uploaded: the global goes back over the air
                received = {n: send(v, bits, per_row=False)[0] for n, v in glob.items()}
            else:
                received = glob
            self._load(server, j, received)
            for k in range(self.num_clients):
                if self.ranks[k] == self.rank:
                    self._load(k, j, received)
                else:
                    self._load(k, j, {n: send(v, bits, per_row=False)[0]
                                      for n, v in _client_state(glob, self.ranks[k], self.aggregation).items()})
        return sizes

    # ---- profile changes ----------------------------------------------------------------------------
    @torch.no_grad()
    def set_profile(self, cuts: Sequence[int], ranks: Sequence[int], global_rank: int | None,
                    generator: torch.Generator) -> tuple[bool, list[tuple[int, int]]]:
        """Apply a new profile between rounds; returns (ranks changed, the (owner, block) pairs changing hands).

        A rank change rebuilds every adapter from the global (resized to the new r_g, then cut to each r_k by
        :func:`client_copy`; all parameter objects are new, so optimizers must be rebuilt). A cut change moves no
        tensor.
        """
        cuts_t, ranks_t, r_g = self._profile(cuts, ranks, global_rank)
        if len(cuts_t) != self.num_clients:
            raise ValueError(f"profile of {len(cuts_t)} clients for a {self.num_clients}-client model")
        for c in cuts_t:
            self.check_split(c)
        server = self.num_clients
        moved = [(k, j) for k in range(self.num_clients) for j in range(self.n_layer)
                 if (j < cuts_t[k]) != (j < self.cuts[k])]
        moved += [(server, j) for j in range(self.n_layer)
                  if any(j >= c for c in cuts_t) != any(j >= c for c in self.cuts)]
        changed = ranks_t != self.ranks or r_g != self.rank
        self.cuts, self.split = cuts_t, cuts_t[0]
        if changed:
            glob = [resize_state({n: p.detach().clone() for n, p in self._block(server, j).items()}, r_g, generator)
                    for j in range(self.n_layer)]
            self.ranks = ranks_t
            self._build(r_g)
            for j, state in enumerate(glob):
                self._load(server, j, state)
                for k in range(self.num_clients):
                    self._load(k, j, _client_state(state, ranks_t[k], self.aggregation))
        return changed, moved

    def set_split(self, split: int, weights: Sequence[float] | None = None) -> list[int]:
        raise NotImplementedError("a heterogeneous model changes cuts with set_profile")

    def set_rank(self, rank: int, generator: torch.Generator) -> bool:
        raise NotImplementedError("a heterogeneous model changes ranks with set_profile")

    # ---- computation ------------------------------------------------------------------------------
    def client_forward(self, k: int, input_ids: torch.Tensor) -> torch.Tensor:
        """Client k's part: embeddings and blocks < c_k at rank r_k; returns the cut activation (b, n, d)."""
        hidden = self.adapter.embed(self.inner, input_ids)
        return self.adapter.run_blocks(self.inner, self.client_blocks[k], hidden, range(self.cuts[k]))

    def server_logits(self, activation: torch.Tensor, select: torch.Tensor | None = None,
                      client: int = 0) -> torch.Tensor:
        """MS part for ``client``'s micro-batch: blocks >= c_k (MS copy, r_g), final norm and LM head."""
        hidden = self.adapter.run_blocks(self.inner, self.server_blocks, activation,
                                         range(self.cuts[client], self.n_layer))
        return self.adapter.head(self.inner, hidden if select is None else hidden[select])

    def forward(self, input_ids: torch.Tensor, client: int | None = 0,
                select: torch.Tensor | None = None) -> torch.Tensor:
        """Client ``client``'s logits (its copy to c_k, then the MS); ``client=None``: the global model (the MS
        copy of every block, computed in two slices at c_1 like the homogeneous engine's validation)."""
        if client is not None:
            return self.server_logits(self.client_forward(client, input_ids), select, client)
        hidden = self.adapter.embed(self.inner, input_ids)
        hidden = self.adapter.run_blocks(self.inner, self.server_blocks, hidden, range(self.cuts[0]))
        return self.server_logits(hidden, select, 0)


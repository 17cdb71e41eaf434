"""LoRA helpers: peft configuration for a block list's sub-modules, deterministic initialisation,
SVD-based rank resizing, FedAvg of adapter states, and copies that share frozen base weights.

Adapter tensors of one block are kept in a ``dict[str, Tensor]`` keyed by the parameter name inside the
block, e.g. ``"attn.c_attn.lora_A.default.weight"`` (shape (r, d_in)) and
``"attn.c_attn.lora_B.default.weight"`` (shape (d_out, r)). The adapted weight delta of a module is
``scaling * B @ A`` (transposed for GPT-2's Conv1D layout), with ``scaling = lora_alpha / r =
lora_scaling`` independent of the rank.
"""

from __future__ import annotations

import copy
import math
import re
from typing import Iterable, Mapping, Sequence

import torch
from peft import LoraConfig, get_peft_model
from torch import nn

__all__ = ["target_regex", "make_lora_config", "inject_lora", "shared_base_copy", "block_lora_params",
           "init_lora_", "adapter_pairs", "resize_pair", "resize_state", "fedavg", "delta_weight"]


def target_regex(targets: Sequence[str], blocks_path: str = "transformer.h") -> str:
    """Full-match regex on module names selecting ``<blocks_path>.<i>.<target>`` for every target suffix."""
    if not targets:
        raise ValueError("LoRA needs at least one target module suffix, got an empty list")
    alts = "|".join(re.escape(t) for t in targets)
    return rf"(.*\.)?{re.escape(blocks_path)}\.\d+\.({alts})"


def make_lora_config(rank: int, scaling: float, dropout: float, targets: Sequence[str],
                     blocks_path: str = "transformer.h", fan_in_fan_out: bool = True) -> LoraConfig:
    """peft LoraConfig: rank ``rank``, ``lora_alpha = scaling * rank`` on ``targets`` inside every block of
    ``blocks_path``; ``fan_in_fan_out`` for Conv1D layers (GPT-2)."""
    if int(rank) < 1:
        raise ValueError(f"LoRA rank must be >= 1, got {rank}")
    return LoraConfig(r=int(rank), lora_alpha=float(scaling) * int(rank), lora_dropout=float(dropout),
                      target_modules=target_regex(targets, blocks_path), fan_in_fan_out=fan_in_fan_out,
                      bias="none")


def shared_base_copy(module: nn.Module) -> nn.Module:
    """Deep copy of ``module`` in which every frozen parameter (requires_grad False) is shared, not copied."""
    memo = {id(p): p for p in module.parameters() if not p.requires_grad}
    return copy.deepcopy(module, memo)


def inject_lora(base: nn.Module, config: LoraConfig) -> nn.Module:
    """A peft model around a shared-weight copy of the frozen ``base`` (``base`` itself stays untouched).

    peft's own adapter initialisation uses the global RNG; it runs inside a forked RNG so the caller's
    global state is unchanged (the engine overwrites the adapters with :func:`init_lora_` anyway).
    """
    for p in base.parameters():
        p.requires_grad_(False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = get_peft_model(shared_base_copy(base), config)
    return model


def block_lora_params(block: nn.Module) -> dict[str, nn.Parameter]:
    """The LoRA parameters of one transformer block, by name inside the block (sorted)."""
    return {n: p for n, p in sorted(block.named_parameters()) if ".lora_A." in n or ".lora_B." in n}


def adapter_pairs(state: Mapping[str, torch.Tensor]) -> dict[str, tuple[str, str]]:
    """Map module prefix -> (name of A, name of B) for the adapters in a block state."""
    out: dict[str, tuple[str, str]] = {}
    for name in state:
        if ".lora_A." in name:
            prefix, rest = name.split(".lora_A.", 1)
            b_name = f"{prefix}.lora_B.{rest}"
            if b_name not in state:
                raise KeyError(f"LoRA state has {name!r} but no matching {b_name!r}")
            out[prefix] = (name, b_name)
    return out


def _kaiming_a(rows: int, cols: int, generator: torch.Generator) -> torch.Tensor:
    # the default nn.Linear / peft init of lora_A: kaiming_uniform(a=sqrt(5)) -> U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    bound = 1.0 / math.sqrt(cols)
    return (torch.rand(rows, cols, generator=generator) * 2 - 1) * bound


@torch.no_grad()
def init_lora_(params: Mapping[str, nn.Parameter], generator: torch.Generator) -> None:
    """Fresh adapters in place: A ~ U(-1/sqrt(d_in), 1/sqrt(d_in)) from ``generator``, B = 0 (delta = 0)."""
    for name in sorted(params):
        p = params[name]
        if ".lora_A." in name:
            p.copy_(_kaiming_a(p.shape[0], p.shape[1], generator).to(p.dtype))
        else:
            p.zero_()


@torch.no_grad()
def resize_pair(a: torch.Tensor, b: torch.Tensor, new_rank: int,
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Resize one adapter (A: (r, d_in), B: (d_out, r)) to rank ``new_rank``, keeping B @ A as close as possible.

    Shrinking: truncated SVD of B @ A = U S V^T; A' = rho V_r'^T and B' = U_r' S_r' / rho, where rho is
    the RMS row norm of the old A (A keeps its scale, B absorbs the singular values). B' @ A' is the best
    rank-r' approximation, so the Frobenius error equals sqrt(sum of the discarded S^2) (Eckart-Young).
    The usual balanced split (sqrt(S) into both factors) is deliberately NOT used: for directions with a
    zero singular value (e.g. a fresh adapter with B = 0) it makes both A-row and B-column zero, and such
    a direction receives zero gradient forever (the adapter would be dead).

    Growing: A and B are kept and padded - B with zero columns (the product is unchanged, exactly) and A with
    fresh random rows drawn like a new adapter's A, so the new directions can learn.
    """
    if int(new_rank) < 1:
        raise ValueError(f"LoRA rank must be >= 1, got {new_rank}")
    if a.device.type != "cpu" or b.device.type != "cpu":  # float64 SVD on the CPU (MPS has no float64)
        a_new, b_new = resize_pair(a.cpu(), b.cpu(), new_rank, generator)
        return a_new.to(a.device), b_new.to(b.device)
    r = a.shape[0]
    if b.shape[1] != r:
        raise ValueError(f"A has rank {r} but B has {b.shape[1]} columns")
    if new_rank == r:
        return a.clone(), b.clone()
    if new_rank > r:
        extra = new_rank - r
        a_new = torch.cat([a, _kaiming_a(extra, a.shape[1], generator).to(a.dtype)], dim=0)
        b_new = torch.cat([b, torch.zeros(b.shape[0], extra, dtype=b.dtype)], dim=1)
        return a_new, b_new
    prod = (b.double() @ a.double())
    u, s, vh = torch.linalg.svd(prod, full_matrices=False)
    rho = float(a.double().pow(2).sum(dim=1).mean().sqrt())
    if not rho > 0:
        rho = 1.0 / math.sqrt(3.0)  # the RMS row norm of a fresh U(-1/sqrt(d_in), 1/sqrt(d_in)) row
    b_new = (u[:, :new_rank] * (s[:new_rank] / rho)).to(b.dtype)
    a_new = (rho * vh[:new_rank]).to(a.dtype)
    return a_new.contiguous(), b_new.contiguous()


def resize_state(state: Mapping[str, torch.Tensor], new_rank: int,
                 generator: torch.Generator) -> dict[str, torch.Tensor]:
    """:func:`resize_pair` applied to every adapter of a block state."""
    out: dict[str, torch.Tensor] = {}
    for _, (na, nb) in sorted(adapter_pairs(state).items()):
        out[na], out[nb] = resize_pair(state[na], state[nb], new_rank, generator)
    return out


@torch.no_grad()
def fedavg(states: Sequence[Mapping[str, torch.Tensor]], weights: Iterable[float]) -> dict[str, torch.Tensor]:
    """Weighted average sum_k w_k state_k / sum_k w_k of adapter states with identical keys and shapes.

    Accumulated in float64 on the CPU (the same numbers on every device); results go back to the device and
    dtype of the first state's tensors."""
    w = torch.as_tensor(list(weights), dtype=torch.float64)
    if len(states) == 0 or w.numel() != len(states):
        raise ValueError(f"fedavg needs one weight per state, got {w.numel()} weights for {len(states)} states")
    if torch.any(w < 0) or float(w.sum()) <= 0:
        raise ValueError(f"fedavg weights must be >= 0 with a positive sum, got {w.tolist()}")
    w = w / w.sum()
    keys = list(states[0])
    out: dict[str, torch.Tensor] = {}
    for key in keys:
        ref = states[0][key]
        acc = torch.zeros(ref.shape, dtype=torch.float64)
        for wk, st in zip(w, states):
            if wk != 0:
                acc += wk * st[key].detach().to("cpu", torch.float64)
        out[key] = acc.to(ref.device, ref.dtype)
    return out


def delta_weight(a: torch.Tensor, b: torch.Tensor, scaling: float) -> torch.Tensor:
    """The adapter's weight delta scaling * B @ A, shape (d_out, d_in)."""
    return float(scaling) * (b @ a)

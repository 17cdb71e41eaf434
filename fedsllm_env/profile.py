"""Analytic per-block FLOPs, activation, parameter and LoRA sizes of a decoder-only causal LM (pure python).

One :class:`ModelShape` describes GPT-2, LLaMA-style (LLaMA, Qwen2, Mistral, SmolLM: rotary positions,
grouped-query attention, gated SiLU MLP, RMSNorm, tied or untied head) and OPT (learned positions with an
offset, optional embedding projections) decoders. A block is a list of linear sub-modules, each with a
*role* (``qkv`` fused, ``q``, ``k``, ``v``, ``o``, ``gate``, ``up``, ``down``) that fixes its (d_in, d_out);
the family's adapter (``fedsllm_env.splitfed.backbones``) names its modules, so a new family needs no change
here.

Counts are matrix-multiply FLOPs (2 per multiply-add), the convention of
``torch.utils.flop_counter.FlopCounterMode``; element-wise ops (norms, activations, softmax, rotary) are
left out, as the counter does. Tests check these numbers against the counter on real modules of every
family.

LoRA target names: a family's own module suffixes (e.g. ``"self_attn.q_proj"``), or a GPT-2 name standing
for the same role in any family (``"attn.c_attn"`` = the q/k/v projections, ``"attn.c_proj"`` = the output
projection, ``"mlp.c_fc"`` = the MLP's up (and gate) projections, ``"mlp.c_proj"`` = its down projection), or
the groups ``"attention"``, ``"mlp"``, ``"all"``. So the default targets mean "the attention projections"
for every family.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, Mapping

from fedsllm_env.errors import ConfigError

__all__ = ["ModelShape", "ROLES", "GPT2_MODULES", "TARGET_ALIASES", "LORA_MODULE_DIMS", "wire_bits",
           "DTYPE_BITS", "QUANT_SCALE_BITS"]

ROLES = ("qkv", "q", "k", "v", "o", "gate", "up", "down")
"""Roles of a block's linear sub-modules."""

GPT2_MODULES: tuple[tuple[str, str], ...] = (("attn.c_attn", "qkv"), ("attn.c_proj", "o"), ("mlp.c_fc", "up"),
                                             ("mlp.c_proj", "down"))
"""(module suffix, role) of a GPT-2 block (the default of :class:`ModelShape`)."""

LORA_MODULE_DIMS = tuple(name for name, _ in GPT2_MODULES)
"""The GPT-2 sub-module names (also accepted as role aliases by every family)."""

TARGET_ALIASES: dict[str, frozenset[str]] = {
    "attn.c_attn": frozenset({"qkv", "q", "k", "v"}),
    "attn.c_proj": frozenset({"o"}),
    "mlp.c_fc": frozenset({"gate", "up"}),
    "mlp.c_proj": frozenset({"down"}),
    "attention": frozenset({"qkv", "q", "k", "v", "o"}),
    "mlp": frozenset({"gate", "up", "down"}),
    "all": frozenset(ROLES),
}
"""LoRA target names valid for every family, mapped to the roles they select."""

DTYPE_BITS = {"float32": 32, "bfloat16": 16, "float16": 16}
"""Bits per element of the compute dtypes (``ModelConfig.dtype``)."""

QUANT_SCALE_BITS = 32
"""Bits of one absmax scale (fp32) sent with 8-bit codes: one per row (last dimension) of a tensor."""


def wire_bits(activation_bits: int, dtype: str = "float32") -> int:
    """Bits per element actually sent for cut activations / gradients: min(q, bits of the compute dtype)."""
    if dtype not in DTYPE_BITS:
        raise ValueError(f"dtype must be one of {sorted(DTYPE_BITS)}, got {dtype!r}")
    return min(int(activation_bits), DTYPE_BITS[dtype])


_LEGACY_KEYS = ("n_layer", "n_embd", "n_head", "vocab_size", "n_inner", "n_positions")


@dataclass(frozen=True)
class ModelShape:
    """The dimensions of a decoder-only LM that the delay model needs (defaults: a GPT-2 block)."""

    n_layer: int
    """L, transformer blocks."""
    n_embd: int
    """d, hidden size (the width of the cut activation)."""
    n_head: int
    """Attention (query) heads."""
    vocab_size: int
    """V, vocabulary size (rows of the token embedding and of the LM head)."""
    n_inner: int = 0
    """MLP width (0 means 4 * n_embd, GPT-2's default)."""
    n_positions: int = 1024
    """Maximum sequence length."""
    n_kv_head: int = 0
    """Key/value heads (grouped-query attention); 0 = n_head."""
    head_dim: int = 0
    """Width of one attention head; 0 = n_embd // n_head."""
    gated_mlp: bool = False
    """True for a gated MLP (down(act(gate x) * up x)), as in LLaMA."""
    position_rows: int = -1
    """Rows of a learned position table (-1 = n_positions; 0 = none, e.g. rotary positions)."""
    tied_embeddings: bool = True
    """LM head shares the token embedding's weights."""
    embed_dim: int = 0
    """Width of the token embedding (0 = n_embd); differs for OPT models with project_in/project_out."""
    qkv_bias: bool = True
    """q/k/v projections have biases."""
    o_bias: bool = True
    """Attention output projection has a bias."""
    mlp_bias: bool = True
    """MLP projections have biases."""
    norm_bias: bool = True
    """Norms have a bias (LayerNorm) or not (RMSNorm)."""
    modules: tuple[tuple[str, str], ...] = GPT2_MODULES
    """(module suffix inside a block, role) of every linear sub-module of a block."""

    def __post_init__(self) -> None:
        for name in ("n_layer", "n_embd", "n_head", "vocab_size", "n_positions"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"ModelShape.{name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("n_inner", "n_kv_head", "head_dim", "embed_dim"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"ModelShape.{name} must be >= 0, got {getattr(self, name)!r}")
        if self.n_inner == 0:
            object.__setattr__(self, "n_inner", 4 * self.n_embd)
        if self.n_kv_head == 0:
            object.__setattr__(self, "n_kv_head", self.n_head)
        if self.head_dim == 0:
            if self.n_embd % self.n_head:
                raise ValueError(f"ModelShape: n_embd={self.n_embd} is not a multiple of n_head={self.n_head}; "
                                 "give head_dim")
            object.__setattr__(self, "head_dim", self.n_embd // self.n_head)
        if self.embed_dim == 0:
            object.__setattr__(self, "embed_dim", self.n_embd)
        if self.position_rows < 0:
            object.__setattr__(self, "position_rows", self.n_positions)
        if self.n_head % self.n_kv_head:
            raise ValueError(f"ModelShape: n_head={self.n_head} must be a multiple of n_kv_head={self.n_kv_head}")
        mods = tuple((str(n), str(r)) for n, r in (self.modules.items() if isinstance(self.modules, Mapping)
                                                     else self.modules))
        bad = [r for _, r in mods if r not in ROLES]
        if not mods or bad:
            raise ValueError(f"ModelShape.modules needs (name, role) pairs with roles in {ROLES}, got {mods!r}")
        object.__setattr__(self, "modules", mods)

    @classmethod
    def from_hf_config(cls, cfg: Any) -> ModelShape:
        """Read the shape of a GPT-2 block from a transformers ``GPT2Config`` (other families: the adapters of
        :mod:`fedsllm_env.splitfed.backbones`)."""
        return cls(
            n_layer=int(cfg.n_layer),
            n_embd=int(cfg.n_embd),
            n_head=int(cfg.n_head),
            vocab_size=int(cfg.vocab_size),
            n_inner=int(getattr(cfg, "n_inner", None) or 0),
            n_positions=int(getattr(cfg, "n_positions", 1024)),
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelShape:
        """Inverse of ``to_dict``; a dict with only the six GPT-2 keys (old calibration files) is a GPT-2 shape."""
        if not isinstance(data, Mapping):
            raise TypeError(f"ModelShape.from_dict expects a dict, got {type(data).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ValueError(f"unknown ModelShape key(s) {unknown}; valid keys: {sorted(fields)}")
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            default = fields[key].default
            if key == "modules":
                kwargs[key] = tuple(value.items()) if isinstance(value, Mapping) else tuple(tuple(x) for x in value)
            elif isinstance(default, bool):
                if not isinstance(value, bool):
                    raise TypeError(f"ModelShape.{key} must be a bool, got {value!r}")
                kwargs[key] = value
            else:
                kwargs[key] = int(value)
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict: the six GPT-2 keys always, every other field only where it differs from GPT-2's."""
        out: dict[str, Any] = {k: int(getattr(self, k)) for k in _LEGACY_KEYS}
        gpt2 = {"n_kv_head": self.n_head, "head_dim": self.n_embd // self.n_head, "position_rows": self.n_positions,
                "embed_dim": self.n_embd}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in _LEGACY_KEYS or value == gpt2.get(f.name, f.default):
                continue
            out[f.name] = dict(value) if f.name == "modules" else value
        return out

    # ---- modules and LoRA targets ------------------------------------------------------------
    def role_dims(self, role: str) -> tuple[int, int]:
        """(d_in, d_out) of a sub-module with this role."""
        d, f, hd = self.n_embd, self.n_inner, self.head_dim
        q, kv = self.n_head * hd, self.n_kv_head * hd
        dims = {"qkv": (d, q + 2 * kv), "q": (d, q), "k": (d, kv), "v": (d, kv), "o": (q, d), "gate": (d, f),
                "up": (d, f), "down": (f, d)}
        return dims[role]

    def module_dims(self, name: str) -> tuple[int, int]:
        """(d_in, d_out) of a block sub-module named by its suffix, e.g. ``"attn.c_attn"``."""
        roles = dict(self.modules)
        if name not in roles:
            raise ValueError(f"unknown block module {name!r}; this model's modules: {[n for n, _ in self.modules]}")
        return self.role_dims(roles[name])

    @functools.lru_cache(maxsize=256)
    def resolve_targets(self, targets: tuple[str, ...]) -> tuple[str, ...]:
        """The block's module suffixes selected by LoRA target names (own names, GPT-2 names or groups).

        Raises:
            ConfigError: (a ValueError) no name, or a name that selects nothing in this model (the message lists the
                valid names); the names come from ``model.lora_target_modules``.
        """
        if not targets:
            raise ConfigError("LoRA needs at least one target module, got an empty list")
        chosen: set[str] = set()
        for t in targets:
            own = [n for n, _ in self.modules if n == t]
            if own:
                chosen.update(own)
                continue
            roles = TARGET_ALIASES.get(t)
            hits = [n for n, r in self.modules if roles is not None and r in roles]
            if not hits:
                raise ConfigError(f"LoRA target {t!r} matches no module of this model; valid: its modules "
                                 f"{[n for n, _ in self.modules]} or the names {sorted(TARGET_ALIASES)}")
            chosen.update(hits)
        return tuple(n for n, _ in self.modules if n in chosen)

    def lora_params_per_block(self, rank: int, targets: tuple[str, ...]) -> int:
        """LoRA parameters of one block: sum over adapted modules of r * (d_in + d_out)."""
        return sum(rank * sum(self.module_dims(t)) for t in self.resolve_targets(tuple(targets)))

    def lora_rows_per_block(self, rank: int, targets: tuple[str, ...]) -> int:
        """Rows (last-dimension vectors) of one block's LoRA tensors: A is (r, d_in), B is (d_out, r)."""
        return sum(rank + self.module_dims(t)[1] for t in self.resolve_targets(tuple(targets)))

    def client_lora_params(self, split: int, rank: int, targets: tuple[str, ...]) -> int:
        """LoRA parameters held by one client when the cut is after block ``split``."""
        self.check_split(split)
        return split * self.lora_params_per_block(rank, targets)

    def block_params(self) -> int:
        """Frozen parameters of one block (linear weights and biases, two norms)."""
        total = 0
        for _, role in self.modules:
            d_in, d_out = self.role_dims(role)
            bias = {"qkv": self.qkv_bias, "q": self.qkv_bias, "k": self.qkv_bias, "v": self.qkv_bias,
                    "o": self.o_bias}.get(role, self.mlp_bias)
            total += d_in * d_out + (d_out if bias else 0)
        return total + 2 * self.n_embd * (2 if self.norm_bias else 1)

    def client_param_count(self, split: int) -> int:
        """Frozen parameters on a client: token (+ position) embeddings, an input projection if any, blocks
        1..split."""
        self.check_split(split)
        project_in = self.embed_dim * self.n_embd if self.embed_dim != self.n_embd else 0
        return self.vocab_size * self.embed_dim + self.position_rows * self.n_embd + project_in + \
            split * self.block_params()

    def client_memory_bytes(self, split: int, rank: int, targets: tuple[str, ...], batch_size: int,
                            seq_len: int, weight_bits: int = 32) -> float:
        """Approximate client memory, bytes: frozen weights at ``weight_bits`` (the compute dtype's bits, as
        the engine holds the backbone; not the wire's ``activation_bits``) + LoRA params, grads and two
        AdamW moments in fp32 (the engine keeps adapters and optimizer state in fp32) + one fp32 saved hidden
        state per client-side block (a lower bound on activations)."""
        if isinstance(weight_bits, bool) or not hasattr(weight_bits, "__index__") or int(weight_bits) < 1:
            raise ValueError(f"weight_bits must be an int >= 1 (the bits of model.dtype, e.g. 32), got {weight_bits!r}")
        frozen = self.client_param_count(split) * weight_bits / 8
        lora = self.client_lora_params(split, rank, targets) * 4 * 4
        saved = split * self.activation_elements(batch_size, seq_len) * 4
        return float(frozen + lora + saved)

    # ---- FLOPs (per sequence of seq_len tokens) ---------------------------------------------
    def block_forward_flops(self, seq_len: int, rank: int = 0, targets: tuple[str, ...] = ()) -> float:
        """Forward FLOPs of one block for one sequence, including LoRA branches of rank ``rank``."""
        n = seq_len
        dense = 2 * n * sum(a * b for a, b in (self.role_dims(r) for _, r in self.modules))
        attention = 2 * (2 * n * n * self.n_head * self.head_dim)  # Q K^T and A V over all query heads
        lora = 2 * n * self.lora_params_per_block(rank, targets) if rank > 0 else 0
        return float(dense + attention + lora)

    def head_forward_flops(self, seq_len: int) -> float:
        """Forward FLOPs of the LM head (d -> V, after an output projection d -> embed_dim if any)."""
        project_out = 2 * seq_len * self.n_embd * self.embed_dim if self.embed_dim != self.n_embd else 0
        return float(2 * seq_len * self.embed_dim * self.vocab_size + project_out)

    def client_forward_flops(self, split: int, seq_len: int, rank: int, targets: tuple[str, ...]) -> float:
        """Forward FLOPs of the client part (embeddings + blocks 1..split) per sequence."""
        self.check_split(split)
        project_in = 2 * seq_len * self.embed_dim * self.n_embd if self.embed_dim != self.n_embd else 0
        return split * self.block_forward_flops(seq_len, rank, targets) + project_in

    def server_forward_flops(self, split: int, seq_len: int, rank: int, targets: tuple[str, ...]) -> float:
        """Forward FLOPs of the server part (blocks split+1..L + LM head) per sequence."""
        self.check_split(split)
        return (self.n_layer - split) * self.block_forward_flops(seq_len, rank, targets) + \
            self.head_forward_flops(seq_len)

    def activation_elements(self, batch_size: int, seq_len: int) -> int:
        """Elements of the cut-layer activation (and of its gradient) for one mini-batch: b * n * d."""
        return batch_size * seq_len * self.n_embd

    def check_split(self, split: int) -> None:
        """Raise ValueError unless 1 <= split <= L-1."""
        if not 1 <= int(split) <= self.n_layer - 1:
            raise ValueError(f"split must be in [1, {self.n_layer - 1}] for a {self.n_layer}-block model, got {split}")

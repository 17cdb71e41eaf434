"""Analytic per-block FLOPs, activation and LoRA sizes of a GPT-2 style causal LM (pure python).

Counts are matrix-multiply FLOPs (2 per multiply-add), the convention of
``torch.utils.flop_counter.FlopCounterMode``; element-wise ops (layer norms, GELU, softmax) are
left out, as the counter does. Tests check these numbers against the counter on real modules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ModelShape", "LORA_MODULE_DIMS"]

# (d_in, d_out) of each adaptable GPT-2 sub-module, as multiples resolved by ModelShape.module_dims
LORA_MODULE_DIMS = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")


@dataclass(frozen=True)
class ModelShape:
    """The dimensions of a GPT-2 style LM that the delay model needs."""

    n_layer: int
    """L, transformer blocks."""
    n_embd: int
    """d, hidden size."""
    n_head: int
    """Attention heads."""
    vocab_size: int
    """V, vocabulary size."""
    n_inner: int = 0
    """MLP width (0 means 4 * n_embd, GPT-2's default)."""
    n_positions: int = 1024
    """Maximum sequence length (position-embedding rows)."""

    def __post_init__(self) -> None:
        for name in ("n_layer", "n_embd", "n_head", "vocab_size", "n_positions"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"ModelShape.{name} must be >= 1, got {getattr(self, name)!r}")
        if self.n_inner == 0:
            object.__setattr__(self, "n_inner", 4 * self.n_embd)

    @classmethod
    def from_hf_config(cls, cfg: Any) -> ModelShape:
        """Read the shape from a transformers ``GPT2Config`` (or any object with the same attributes)."""
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
        """Inverse of ``to_dict``."""
        return cls(**{k: int(v) for k, v in data.items()})

    def to_dict(self) -> dict[str, int]:
        """Plain dict of the dimensions."""
        return {k: int(getattr(self, k)) for k in ("n_layer", "n_embd", "n_head", "vocab_size", "n_inner",
                                                   "n_positions")}

    # ---- sizes -------------------------------------------------------------------------------
    def module_dims(self, name: str) -> tuple[int, int]:
        """(d_in, d_out) of a block sub-module named by its suffix, e.g. ``"attn.c_attn"``."""
        d, f = self.n_embd, self.n_inner
        dims = {"attn.c_attn": (d, 3 * d), "attn.c_proj": (d, d), "mlp.c_fc": (d, f), "mlp.c_proj": (f, d)}
        if name not in dims:
            raise ValueError(f"unknown GPT-2 block module {name!r}; known: {sorted(dims)}")
        return dims[name]

    def lora_params_per_block(self, rank: int, targets: tuple[str, ...]) -> int:
        """LoRA parameters of one block: sum over adapted modules of r * (d_in + d_out)."""
        return sum(rank * sum(self.module_dims(t)) for t in targets)

    def client_lora_params(self, split: int, rank: int, targets: tuple[str, ...]) -> int:
        """LoRA parameters held by one client when the cut is after block ``split``."""
        self.check_split(split)
        return split * self.lora_params_per_block(rank, targets)

    def block_params(self) -> int:
        """Frozen parameters of one block (weights + biases of attention, MLP and two layer norms)."""
        d, f = self.n_embd, self.n_inner
        return (d * 3 * d + 3 * d) + (d * d + d) + (d * f + f) + (f * d + d) + 4 * d

    def client_param_count(self, split: int) -> int:
        """Frozen parameters on a client: token + position embeddings and blocks 1..split."""
        self.check_split(split)
        return self.vocab_size * self.n_embd + self.n_positions * self.n_embd + split * self.block_params()

    def client_memory_bytes(self, split: int, rank: int, targets: tuple[str, ...], batch_size: int,
                            seq_len: int, bits: int = 32) -> float:
        """Approximate client memory, bytes: frozen weights at ``bits`` + LoRA params, grads and two AdamW
        moments in fp32 + one saved hidden state per client-side block (a lower bound on activations)."""
        frozen = self.client_param_count(split) * bits / 8
        lora = self.client_lora_params(split, rank, targets) * 4 * 4
        saved = split * self.activation_elements(batch_size, seq_len) * 4
        return float(frozen + lora + saved)

    # ---- FLOPs (per sequence of seq_len tokens) ---------------------------------------------
    def block_forward_flops(self, seq_len: int, rank: int = 0, targets: tuple[str, ...] = ()) -> float:
        """Forward FLOPs of one block for one sequence, including LoRA branches of rank ``rank``."""
        n, d, f = seq_len, self.n_embd, self.n_inner
        dense = 2 * n * (d * 3 * d + d * d + d * f + f * d)  # c_attn, attn.c_proj, c_fc, mlp.c_proj
        attention = 2 * (2 * n * n * d)  # Q K^T and A V over all heads
        lora = 2 * n * self.lora_params_per_block(rank, targets) if rank > 0 else 0
        return float(dense + attention + lora)

    def head_forward_flops(self, seq_len: int) -> float:
        """Forward FLOPs of the LM head (d -> V) for one sequence."""
        return float(2 * seq_len * self.n_embd * self.vocab_size)

    def client_forward_flops(self, split: int, seq_len: int, rank: int, targets: tuple[str, ...]) -> float:
        """Forward FLOPs of the client part (embeddings + blocks 1..split) per sequence."""
        self.check_split(split)
        return split * self.block_forward_flops(seq_len, rank, targets)

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

"""A decoder-only causal LM split at block c, with LoRA adapters owned by blocks and per-client copies.

The architecture family is handled by a :class:`~fedsllm_env.splitfed.backbones.BackboneAdapter` (GPT-2,
LLaMA-style, OPT); this module only knows blocks, embeddings and a head.

Ownership model:
    * Client side = embeddings (token, learned positions or none, input projection, dropout) and blocks
      1..c (0-based ``blocks[:c]``). Server side = blocks c+1..L, the final norm and the LM head.
    * Every client has its own copy of *all* L blocks' adapters (a :func:`shared_base_copy` of the peft
      model's block list: frozen weights are shared, LoRA tensors are private); only blocks ``< c``
      are used and trained on the client. The server uses the peft model's own blocks ``>= c``.
    * Every copy starts from one global adapter (what the FS broadcasts before round 1), and every later
      moment where adapters appear follows the same rule: a grown rank's new rows are drawn once and given
      to every copy, a block crossing the cut takes the one global copy of the side it leaves.
    * Moving the cut transfers ownership: a block moving to the server takes the FedAvg of the client copies
      (identical after a round's FedAvg), a block moving to the clients is copied to every client. Blocks
      not owned by a side hold stale tensors that are never used.
    * Changing the rank rebuilds the adapters at the new rank (peft modules have a fixed rank) and loads
      SVD-resized tensors (:func:`fedsllm_env.splitfed.lora.resize_pair`), so the function changes as little
      as possible (not at all when growing). Rank changes happen between rounds, after FedAvg, when all client
      copies are identical; client 0's copy is resized and given to every client.

The forward pass is split into :meth:`client_forward` (to the cut) and :meth:`server_logits` (cut to logits)
exactly as the unsplit model computes it (same embeddings, causal mask, positions and blocks; each side
builds the mask and rotary tables for its own slice of blocks).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fedsllm_env.splitfed.backbones import BackboneAdapter, adapter_for
from fedsllm_env.splitfed.lora import (block_lora_params, fedavg, init_lora_, inject_lora, make_lora_config,
                                       resize_state, shared_base_copy)
from fedsllm_env.splitfed.wire import send

__all__ = ["SplitLoRAModel", "lm_loss"]


def lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Causal LM loss: cross-entropy of logits[:, t] against labels[:, t+1], mean over labels != -100."""
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), labels[:, 1:].reshape(-1),
                           ignore_index=-100)


class SplitLoRAModel(nn.Module):
    """Frozen backbone + LoRA adapters at one rank, split for ``num_clients`` clients.

    Args:
        base: A ``*ForCausalLM`` of a supported family; its weights are frozen and shared, never modified.
        num_clients: K.
        rank: Initial LoRA rank r >= 1.
        split: Initial cut index c in [1, L-1].
        lora_scaling: alpha / r.
        lora_dropout: Dropout on the LoRA input.
        targets: LoRA target names (module suffixes, GPT-2 role names or groups, see
            :meth:`fedsllm_env.profile.ModelShape.resolve_targets`), e.g. ("attn.c_attn", "attn.c_proj").
        generator: Source of the adapters' random initialisation.
        adapter: The family's adapter (default: chosen by ``base.config.model_type``).
    """

    def __init__(self, base: nn.Module, num_clients: int, rank: int, split: int, lora_scaling: float,
                 lora_dropout: float, targets: Sequence[str], generator: torch.Generator,
                 adapter: BackboneAdapter | None = None) -> None:
        super().__init__()
        self.adapter = adapter if adapter is not None else adapter_for(base.config)
        self.adapter.check(base, "SplitLoRAModel")
        if int(num_clients) < 1:
            raise ValueError(f"num_clients must be >= 1, got {num_clients}")
        for p in base.parameters():
            p.requires_grad_(False)
        self._base = [base]  # a list: keep it out of this module's parameters/state_dict
        self.n_layer = len(self.adapter.blocks(base))
        self.num_clients = int(num_clients)
        self.lora_scaling = float(lora_scaling)
        self.lora_dropout = float(lora_dropout)
        self.targets = self.adapter.shape(base).resolve_targets(tuple(targets))
        self.check_split(split)
        self.split = int(split)
        self._build(int(rank))
        self._common_start(generator)

    @torch.no_grad()
    def _common_start(self, generator: torch.Generator) -> None:
        """One global adapter (A random, B = 0), copied to every client and the server.

        FedAvg and SplitFed start from ONE global model that the FS broadcasts: drawing each copy's A on its
        own would make round 1's FedAvg average K unrelated random A's and throw away most of the clients'
        progress. Block j's adapter is drawn once (on the server copy) and every other copy loads it.
        """
        server = self.num_clients
        for j in range(self.n_layer):
            init_lora_(self._block(server, j), generator)
            for k in range(self.num_clients):
                for name, p in self._block(k, j).items():
                    p.copy_(self._block(server, j)[name])

    # ---- construction -----------------------------------------------------------------------------
    def _build(self, rank: int) -> None:
        if int(rank) < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {rank}")
        self.rank = int(rank)
        ad = self.adapter
        cfg = make_lora_config(rank, self.lora_scaling, self.lora_dropout, self.targets, ad.blocks_path,
                               ad.fan_in_fan_out)
        self.peft_model = inject_lora(self._base[0], cfg)
        self.config = self.inner.config
        self.server_blocks = ad.blocks(self.inner)
        self.client_blocks = nn.ModuleList([shared_base_copy(self.server_blocks) for _ in range(self.num_clients)])

    @property
    def inner(self) -> nn.Module:
        """The LoRA-injected ``*ForCausalLM`` (its blocks are the server copy)."""
        return self.peft_model.get_base_model()

    def check_split(self, split: int) -> None:
        """Raise ValueError unless 1 <= split <= L-1."""
        if isinstance(split, bool) or not isinstance(split, int) or not 1 <= split <= self.n_layer - 1:
            raise ValueError(f"split must be an int in [1, {self.n_layer - 1}] for this {self.n_layer}-block "
                             f"model, got {split!r}")

    # ---- adapter access ---------------------------------------------------------------------------
    def _block(self, owner: int, j: int) -> dict[str, nn.Parameter]:
        """LoRA params of block j held by ``owner`` (0..K-1 = client, K = server)."""
        blocks = self.server_blocks if owner == self.num_clients else self.client_blocks[owner]
        return block_lora_params(blocks[j])

    def client_params(self, k: int) -> list[nn.Parameter]:
        """Every LoRA parameter of client k's copy (all blocks; only blocks < split receive gradients)."""
        return [p for j in range(self.n_layer) for p in self._block(k, j).values()]

    def server_params(self) -> list[nn.Parameter]:
        """Every LoRA parameter of the server copy (only blocks >= split receive gradients)."""
        return [p for j in range(self.n_layer) for p in self._block(self.num_clients, j).values()]

    def block_params(self, owner: int, j: int) -> list[nn.Parameter]:
        """LoRA parameters of block j held by ``owner`` (client index, or K for the server)."""
        return list(self._block(owner, j).values())

    def client_state(self, k: int, blocks: Sequence[int] | None = None) -> dict[str, torch.Tensor]:
        """Detached copy of client k's adapters of ``blocks`` (default: its own blocks < split), keyed "j/name"."""
        blocks = range(self.split) if blocks is None else blocks
        return {f"{j}/{n}": p.detach().clone() for j in blocks for n, p in self._block(k, j).items()}

    def owned_state(self) -> dict[str, torch.Tensor]:
        """The global adapters: client 0's copy for blocks < split, the server's for the rest ("j/name")."""
        out = self.client_state(0)
        out.update({f"{j}/{n}": p.detach().clone() for j in range(self.split, self.n_layer)
                    for n, p in self._block(self.num_clients, j).items()})
        return out

    @torch.no_grad()
    def load_client_state(self, k: int, state: dict[str, torch.Tensor]) -> None:
        """Copy a "j/name"-keyed state into client k's adapters."""
        for key, value in state.items():
            j, name = key.split("/", 1)
            self._block(k, int(j))[name].copy_(value)

    @torch.no_grad()
    def load_server_blocks(self, state: dict[str, torch.Tensor]) -> None:
        """Copy a "j/name"-keyed state into the server copy."""
        for key, value in state.items():
            j, name = key.split("/", 1)
            self._block(self.num_clients, int(j))[name].copy_(value)

    def client_lora_bytes(self, k: int = 0) -> int:
        """Bytes of client k's uploaded adapters (blocks < split): sum of numel * element_size."""
        return sum(p.numel() * p.element_size() for j in range(self.split) for p in self._block(k, j).values())

    @torch.no_grad()
    def fedavg_clients(self, weights: Sequence[float], bits: int = 32) -> int:
        """Replace every client's adapters of blocks < split by their weighted average (FedAvg + broadcast).

        Uploads and the broadcast are sent at ``bits`` per element (:func:`fedsllm_env.splitfed.wire.send`,
        one scale per tensor at 8 bits). Returns the bytes of one client's upload.
        """
        uploads, sizes = [], []
        for k in range(self.num_clients):
            sent = {key: send(v, bits, per_row=False) for key, v in self.client_state(k).items()}
            uploads.append({key: v for key, (v, _) in sent.items()})
            sizes.append(sum(n for _, n in sent.values()))
        avg = fedavg(uploads, weights)
        avg = {key: send(v, bits, per_row=False)[0] for key, v in avg.items()}
        for k in range(self.num_clients):
            self.load_client_state(k, avg)
        return int(sizes[0])

    # ---- split / rank changes ---------------------------------------------------------------------
    @torch.no_grad()
    def set_split(self, split: int, weights: Sequence[float] | None = None) -> list[int]:
        """Move the cut, transferring block ownership; returns the indices of the blocks that moved.

        Blocks moving to the server get the (weighted) average of the client copies; blocks moving to the
        clients get the server copy on every client.
        """
        self.check_split(split)
        old = self.split
        if split == old:
            return []
        weights = [1.0] * self.num_clients if weights is None else list(weights)
        if split < old:  # blocks split..old-1 go to the server
            moved = list(range(split, old))
            avg = fedavg([self.client_state(k, moved) for k in range(self.num_clients)], weights)
            self.load_server_blocks(avg)
        else:  # blocks old..split-1 go to the clients
            moved = list(range(old, split))
            state = {f"{j}/{n}": p.detach().clone() for j in moved for n, p in self._block(self.num_clients, j).items()}
            for k in range(self.num_clients):
                self.load_client_state(k, state)
        self.split = int(split)
        return moved

    @torch.no_grad()
    def set_rank(self, rank: int, generator: torch.Generator) -> bool:
        """Rebuild the adapters at ``rank`` from SVD-resized current ones; returns True if the rank changed.

        All parameter objects are replaced, so optimizers must be rebuilt afterwards.
        """
        if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
            raise ValueError(f"LoRA rank must be an int >= 1, got {rank!r}")
        if rank == self.rank:
            return False
        # after FedAvg the client copies are identical: resize client 0's copy of a client-side block once
        resized = []
        for j in range(self.n_layer):
            owner = 0 if j < self.split else self.num_clients
            state = {n: p.detach().clone() for n, p in self._block(owner, j).items()}
            resized.append(resize_state(state, rank, generator))
        self._build(rank)
        for j, state in enumerate(resized):  # every copy (owned or stale) gets the owner's resized tensors
            for k in range(self.num_clients + 1):
                params = self._block(k, j)
                for n, value in state.items():
                    params[n].copy_(value)
        return True

    # ---- computation ------------------------------------------------------------------------------
    def client_forward(self, k: int, input_ids: torch.Tensor) -> torch.Tensor:
        """Client k's part: embeddings and blocks < split; returns the cut activation (b, n, d)."""
        hidden = self.adapter.embed(self.inner, input_ids)
        return self.adapter.run_blocks(self.inner, self.client_blocks[k], hidden, range(self.split))

    def server_logits(self, activation: torch.Tensor, select: torch.Tensor | None = None) -> torch.Tensor:
        """Server part: blocks >= split, final norm and LM head; returns logits (b, n, V), or (m, V) for the
        m positions where the boolean (b, n) mask ``select`` is True (the head runs on those only)."""
        hidden = self.adapter.run_blocks(self.inner, self.server_blocks, activation, range(self.split, self.n_layer))
        return self.adapter.head(self.inner, hidden if select is None else hidden[select])

    def forward(self, input_ids: torch.Tensor, client: int = 0, select: torch.Tensor | None = None) -> torch.Tensor:
        """Unsplit-equivalent logits through client ``client``'s copy and the server (see ``server_logits``)."""
        return self.server_logits(self.client_forward(client, input_ids), select)

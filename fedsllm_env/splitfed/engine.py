"""The real split-federated LoRA training engine used by the environment's "real" mode.

One round (SPEC.md) = I local iterations, then FedAvg:

* In each iteration every client k takes its next mini-batch (b sequences of n tokens from its own shard,
  order from a seeded ``torch.Generator``), runs its part to the cut and "sends" the cut activation — a
  detached tensor with ``requires_grad`` — and the labels to the main server (MS).
* The MS runs forward + backward of its part for each of the K micro-batches with the *same* server
  adapters (gradients accumulate), returns each client the gradient of that client's own micro-batch loss
  w.r.t. its activation, and after all K micro-batches takes ONE AdamW step on the mean loss over the K
  micro-batches (server gradients are divided by K).
* Each client finishes backward with the returned gradient and takes one AdamW step on its own adapter
  copy. Clients are processed one after another; because the server only steps after all K micro-batches,
  this is mathematically identical to running the clients in parallel.
* End of round: FedAvg of the client-side adapters weighted by client data sizes, broadcast to all.

What crosses the air goes through :func:`fedsllm_env.splitfed.wire.send` at the bits the delay model
charges (activations and gradients at min(``activation_bits``, dtype bits), LoRA at ``activation_bits``), so
training sees the same compression; the measured bytes are returned in ``RoundOutcome.measured``. The
backbone lives on ``model.device`` in ``model.dtype``; adapters and optimizer state stay float32.

Guards: a non-finite loss or adapter raises :class:`~fedsllm_env.errors.TrainingDiverged`, a mini-batch
without labelled tokens or token ids outside the vocabulary raise :class:`~fedsllm_env.errors.TrainingError`;
so no NaN reaches the env. Divergence is caught in one of three phases, whichever sees it first (the exact
floating-point path decides): a client's training step, the adapters check before FedAvg, or the validation
after the round. Every message starts with the round ("round N, ..." or "before round 1, ..."), names
where it was found (client and local iteration, the owner of the adapters, or the validation) and the likely
cause, and gives advice that fits ``model.dtype`` (lower the learning rate; a 16-bit dtype may also be told
to change dtype, float32 never is).

Optimizers (AdamW on LoRA parameters only, weight decay 0 by default, the base is frozen): one per client
(its copy of all blocks' adapters; only the blocks it owns get gradients) and one on the server. Their state
persists across rounds. When the cut moves, the Adam state of the moved blocks is reset on every side;
when the rank changes all adapters are rebuilt (SVD resize) and every optimizer is re-created (state reset; in the
heterogeneous mode only the state of owners whose rank changed is reset).
Client Adam moments are per client and are not averaged by FedAvg.

Heterogeneous clients (opt-in, SPEC.md "Heterogeneous clients"): ``reset`` and ``run_round`` given a (K,) cut
and/or rank per client (lists or arrays) use :class:`~fedsllm_env.splitfed.hetero.HeteroSplitLoRAModel`: client
k runs blocks 1..c_k at rank r_k, the MS's one adapter per block at r_g = max_k r_k (or ``global_rank``) trains
on every micro-batch it serves (one step per iteration on the mean over the K micro-batches, as above), and the
end of round aggregates each block over its holders with the ``aggregation`` rule ("zero_pad" or "svd"), each
client receiving the global adapter truncated to r_k. A profile is validated like the delay model's
(:func:`fedsllm_env.delay.client_profile`: shape (K,), cuts in 1..L-1, ranks in ``model.ranks``). The mode is
chosen at ``reset``; the homogeneous profile gives the homogeneous engine's numbers bit for bit.

Determinism: the adapters' initialisation, the data order and any dropout are driven by ``seed``; dropout
(global RNG) runs inside ``torch.random.fork_rng`` seeded per round, so the caller's global RNG state is
left unchanged and the same seed gives bit-identical losses on CPU.
"""

from __future__ import annotations

import copy
import logging
import math
import time
import warnings
from typing import Any

import numpy as np
import torch

from fedsllm_env.config import FedsLLMConfig, TrainingConfig
from fedsllm_env.delay import client_profile, is_per_client, server_rank
from fedsllm_env.errors import ConfigError, TrainingDiverged, TrainingError
from fedsllm_env.profile import wire_bits
from fedsllm_env.splitfed.backbones import adapter_for
from fedsllm_env.splitfed.devices import check_device_available
from fedsllm_env.splitfed.data import ClientSampler, EncodedSet, encode_examples, load_task, partition
from fedsllm_env.splitfed.model import load_backbone
from fedsllm_env.splitfed.hetero import HeteroSplitLoRAModel, check_aggregation
from fedsllm_env.splitfed.split import SplitLoRAModel, lm_loss
from fedsllm_env.splitfed.wire import send
from fedsllm_env.types import RoundOutcome

__all__ = ["SplitFedEngine", "resolve_device", "report_data_notes"]

logger = logging.getLogger(__name__)

BUILTIN_DATASET = "e2e-synthetic"
"""The package's own generated task data (``training.dataset`` default)."""
DEFAULT_SEQ_LEN = TrainingConfig.__dataclass_fields__["seq_len"].default
"""``training.seq_len`` by default (the length the built-in data and the shipped calibration use)."""
_NOTED: set[str] = set()


def report_data_notes(dataset: str, seq_len: int, notes: list[str]) -> None:
    """Tell the user about truncated or dropped examples (:meth:`EncodedSet.report` lines; empty ones ignored).

    A user's file, or the built-in data at another ``seq_len``, gets a ``UserWarning`` (something to act on: a
    longer ``training.seq_len`` or shorter examples). The built-in ``e2e-synthetic`` data at the default
    ``seq_len`` is the package's own, truncated by design on every real-mode command: it gets one ``INFO`` record
    of this module's logger per process (silent unless logging is configured); the counts stay in
    ``SplitFedEngine.data_report`` either way.
    """
    notes = [n for n in notes if n]
    if not notes:
        return
    text = f"dataset {dataset!r}: " + "; ".join(notes)
    if dataset == BUILTIN_DATASET and seq_len == DEFAULT_SEQ_LEN:
        if text not in _NOTED:
            _NOTED.add(text)
            logger.info("%s (the package's own data at the default training.seq_len; counts in "
                        "SplitFedEngine.data_report)", text)
        return
    warnings.warn(text, stacklevel=3)


def _seed_from(*entropy: int) -> int:
    """A 63-bit seed derived from integers (numpy SeedSequence, no global state)."""
    return int(np.random.SeedSequence([int(e) & 0xFFFFFFFF for e in entropy]).generate_state(2, np.uint64)[0] >> 1)


def resolve_device(name: str) -> torch.device:
    """``model.device`` -> a torch device: "auto" = the first of cuda, mps, cpu that is available.

    Raises:
        DeviceError: the device is not available in this torch build / machine (a ValueError).
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    check_device_available(name)  # DeviceError (a ValueError) naming the device and the fix
    return torch.device(name)


class SplitFedEngine:
    """Split-federated LoRA fine-tuning of a decoder-only LM (GPT-2, LLaMA-style, OPT) over K clients.

    Args:
        cfg: Full configuration; uses ``cfg.model`` (backbone, device, dtype, LoRA, wire bits, initial
            split/rank), ``cfg.training`` (b, n, I, learning rate, data, partition, validation) and
            ``cfg.wireless.num_clients``.
        model: Optional prebuilt causal LM (e.g. a tiny random model in tests); requires ``tokenizer``. It is
            used in place when it already has the configured device and dtype, else a converted copy is.
        tokenizer: The tokenizer matching ``model``.
        weight_decay: AdamW weight decay of the LoRA parameters.
        progress: Show a progress bar if the tiny backbone must be pre-trained.
        aggregation: Heterogeneous mode only: the rule for adapters of mixed ranks, "zero_pad" (HetLoRA) or
            "svd" (FlexLoRA) (:mod:`fedsllm_env.splitfed.hetero`); None = ``cfg.model.aggregation``.
        global_rank: Heterogeneous mode only: the rank r_g of the global and MS adapters, one of ``model.ranks``
            and >= every client's rank; None: max_k r_k of the profile.

    Raises:
        ValueError: Only one of model/tokenizer given, bad split/rank, too little data, unsupported family,
            unavailable device, token ids outside the model's vocabulary.
        FileNotFoundError: Missing dataset file or backbone.
    """

    def __init__(self, cfg: FedsLLMConfig, model: Any = None, tokenizer: Any = None, weight_decay: float = 0.0,
                 progress: bool = True, aggregation: str | None = None, global_rank: int | None = None) -> None:
        if (model is None) != (tokenizer is None):
            raise ValueError("pass both model and tokenizer, or neither (then cfg.model.backbone is loaded)")
        self.aggregation = check_aggregation(cfg.model.aggregation if aggregation is None else aggregation)
        if global_rank is not None:
            server_rank(np.ones(1, dtype=np.int64), cfg, global_rank)  # one of model.ranks, else the error
        self.global_rank = None if global_rank is None else int(global_rank)
        self.cfg = cfg
        t, m = cfg.training, cfg.model
        self.device = resolve_device(m.device)
        self.dtype = getattr(torch, m.dtype)
        owned = model is None
        if owned:
            model, tokenizer = load_backbone(m, t.seq_len, progress=progress)
        self.adapter = adapter_for(model.config)
        self.adapter.check(model, "SplitFedEngine")
        if self.adapter.max_positions() < t.seq_len:
            raise ValueError(f"model accepts at most {self.adapter.max_positions()} positions < seq_len={t.seq_len}")
        first = next(model.parameters())
        if first.device != self.device or first.dtype != self.dtype:
            model = (model if owned else copy.deepcopy(model)).to(self.device, self.dtype)  # caller's model untouched
        self.base = model.eval()
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.tokenizer = tokenizer
        self.shape = self.adapter.shape(model)
        try:  # unknown target names fail here, naming the field
            self.shape.resolve_targets(tuple(m.lora_target_modules))
        except ConfigError as e:
            raise ConfigError(f"ModelConfig.lora_target_modules={list(m.lora_target_modules)}: {e}") from None
        self.vocab_rows = int(model.get_input_embeddings().num_embeddings)
        self.wire_bits = wire_bits(m.activation_bits, m.dtype)
        self.num_clients = cfg.wireless.num_clients
        self.weight_decay = float(weight_decay)
        self._check_split(m.initial_split)
        self._check_rank(m.initial_rank)

        train, val = load_task(t.dataset, t.num_train_samples, t.num_val_samples, t.data_seed)
        self.train_set: EncodedSet = encode_examples(train, tokenizer, t.seq_len)
        val_set = encode_examples(val, tokenizer, t.seq_len)
        self.data_report = {f"{name}_{k}": getattr(enc, k) for name, enc in (("train", self.train_set),
                                                                               ("val", val_set))
                            for k in ("truncated", "dropped_prompt", "dropped_empty")}
        report_data_notes(t.dataset, t.seq_len, [self.train_set.report("training", t.seq_len),
                                                 val_set.report("validation", t.seq_len)])
        for name, enc in (("training", self.train_set), ("validation", val_set)):
            top = int(enc.input_ids.max())
            if top >= self.vocab_rows:
                raise ValueError(f"tokenizer/model mismatch: the {name} data holds token id {top} but the model's "
                                 f"embedding has {self.vocab_rows} rows (tokenizer size {len(tokenizer)}); use the "
                                 "tokenizer saved with this model")
        n_val = len(val_set) if t.val_batches == 0 else min(len(val_set), t.val_batches * t.batch_size)
        self.val_batches = [(val_set.input_ids[i:i + t.batch_size].to(self.device),
                             val_set.labels[i:i + t.batch_size].to(self.device))
                            for i in range(0, n_val, t.batch_size)]
        self.shards = partition([train[i].label for i in self.train_set.kept], self.num_clients, t.partition,
                                t.dirichlet_alpha, t.batch_size, t.data_seed)
        self.data_sizes = np.asarray([len(s) for s in self.shards], dtype=np.int64)
        self.model: SplitLoRAModel | None = None
        self._round = 0

    # ---- validation of actions ----------------------------------------------------------------------
    def _check_split(self, split: Any) -> None:
        if isinstance(split, (bool, np.bool_)) or not isinstance(split, (int, np.integer)) \
                or not 1 <= int(split) <= self.shape.n_layer - 1:
            raise ValueError(f"split must be an int in [1, {self.shape.n_layer - 1}] for this "
                             f"{self.shape.n_layer}-block model, got {split!r}")

    def _check_rank(self, rank: Any) -> None:
        if isinstance(rank, (bool, np.bool_)) or not isinstance(rank, (int, np.integer)) or int(rank) < 1:
            raise ValueError(f"LoRA rank must be an int >= 1, got {rank!r}")

    # ---- state --------------------------------------------------------------------------------------
    @property
    def current_split(self) -> int:
        """Cut index c currently in use (heterogeneous mode: client 1's cut; see ``current_profile``)."""
        return self.model.split if self.model is not None else int(self.cfg.model.initial_split)

    @property
    def current_rank(self) -> int:
        """LoRA rank currently in use (heterogeneous mode: the global rank r_g; see ``current_profile``)."""
        return self.model.rank if self.model is not None else int(self.cfg.model.initial_rank)

    @property
    def heterogeneous(self) -> bool:
        """Whether the last ``reset`` chose the heterogeneous mode (a cut and a rank per client)."""
        return isinstance(self.model, HeteroSplitLoRAModel)

    @property
    def current_profile(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """((K,) cuts, (K,) ranks) currently in use (the shared cut and rank repeated in the homogeneous mode)."""
        if isinstance(self.model, HeteroSplitLoRAModel):
            return self.model.cuts, self.model.ranks
        return (self.current_split,) * self.num_clients, (self.current_rank,) * self.num_clients

    def _profile(self, split: Any, rank: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """A validated (K,) profile (InfeasibleDecisionError, a ValueError, listing every problem)."""
        cuts, ranks = client_profile(split, rank, self.num_clients, self.shape, self.cfg)
        return tuple(int(c) for c in cuts), tuple(int(r) for r in ranks)

    def _global_rank(self, ranks: tuple[int, ...]) -> int:
        r_g = server_rank(np.asarray(ranks), self.cfg, self.global_rank)
        if r_g < max(ranks):
            raise ValueError(f"global_rank={r_g} < the largest client rank {max(ranks)} of the profile {list(ranks)}")
        return r_g

    @property
    def round_index(self) -> int:
        """Rounds run since the last reset."""
        return self._round

    def _make_optimizers(self) -> None:
        assert self.model is not None
        lr = self.cfg.training.learning_rate
        self.client_opts = [torch.optim.AdamW(self.model.client_params(k), lr=lr, weight_decay=self.weight_decay)
                            for k in range(self.num_clients)]
        self.server_opt = torch.optim.AdamW(self.model.server_params(), lr=lr, weight_decay=self.weight_decay)

    def reset(self, seed: int, split: int | None = None, rank: int | None = None) -> float:
        """Fresh adapters (B = 0: the model equals the backbone), fresh optimizers, data order from ``seed``.

        Split and rank return to ``split`` / ``rank`` when given, else ``cfg.model.initial_split`` /
        ``initial_rank`` (a fresh adapter is built directly at that rank). A (K,) sequence or array for either
        (the other may stay a scalar or None) selects the heterogeneous mode until the next reset; with
        ``cfg.heterogeneous`` every reset selects it (scalars become every client's cut and rank).

        Returns:
            The validation loss of the backbone (before round 1).

        Raises:
            TrainingDiverged: the backbone's validation loss is not finite.
        """
        m = self.cfg.model
        split = int(m.initial_split) if split is None else split
        rank = int(m.initial_rank) if rank is None else rank
        hetero = is_per_client(split, rank) or bool(self.cfg.heterogeneous)
        if hetero:
            cuts, ranks = self._profile(split, rank)
            r_g = self._global_rank(ranks)
        else:
            self._check_split(split)
            self._check_rank(rank)
        self.seed = int(seed)
        gen = torch.Generator().manual_seed(_seed_from(seed, 1))
        if hetero:
            self.model = HeteroSplitLoRAModel(self.base, cuts, ranks, r_g, m.lora_scaling, m.lora_dropout,
                                              m.lora_target_modules, gen, self.adapter, self.aggregation)
        else:
            self.model = SplitLoRAModel(self.base, self.num_clients, int(rank), int(split),
                                        m.lora_scaling, m.lora_dropout, m.lora_target_modules, gen, self.adapter)
        self._resize_gen = torch.Generator().manual_seed(_seed_from(seed, 2))
        self._round_seeds = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 3]))
        self.samplers = [ClientSampler(self.train_set, self.shards[k], self.cfg.training.batch_size,
                                       _seed_from(seed, 100 + k)) for k in range(self.num_clients)]
        self._make_optimizers()
        self._round = 0
        return self.validation_loss()

    @torch.no_grad()
    def validation_loss(self) -> float:
        """Mean token loss over the validation set (every example unless ``training.val_batches`` limits it;
        global adapters, eval mode).

        Raises:
            TrainingDiverged: the loss is not finite.
        """
        if self.model is None:
            raise RuntimeError("call reset(seed) before using the engine")
        self.model.eval()
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        count = 0
        view = None if isinstance(self.model, HeteroSplitLoRAModel) else 0  # heterogeneous: the global model
        for ids, labels in self.val_batches:
            select = torch.zeros_like(labels, dtype=torch.bool)
            select[:, :-1] = labels[:, 1:] != -100  # positions that predict a labelled token: the head runs there only
            logits = self.model(ids, client=view, select=select)
            total += torch.nn.functional.cross_entropy(logits.float(), labels[:, 1:][select[:, :-1]],
                                                       reduction="sum").double()
            count += int(logits.shape[0])
        loss = float(total) / max(count, 1)
        if not math.isfinite(loss):
            if self._round == 0:
                raise TrainingDiverged(f"before round 1, validation of the backbone (adapters are the identity): "
                                       f"validation loss is {loss}: {self._diagnose(None, trained=False)}")
            raise TrainingDiverged(f"round {self._round}, validation after FedAvg: validation loss is {loss}: "
                                   f"{self._diagnose(None)}")
        return loss

    # ---- guards -------------------------------------------------------------------------------------
    def _advice(self) -> str:
        """What to change after a divergence, fitting ``model.dtype`` (never float32 to a float32 model)."""
        lr = self.cfg.training.learning_rate
        other = {"float16": " or set model.dtype='bfloat16' (float16 overflows above 65504)",
                 "bfloat16": " or set model.dtype='float32'"}.get(self.cfg.model.dtype, "")
        return f"training diverged (training.learning_rate={lr:g}; lower it{other})"

    def _diagnose(self, client: int | None, trained: bool = True) -> str:
        """The most likely cause of a non-finite loss, from the tensors that feed it, with advice that fits
        ``model.dtype``; ``trained`` is False before round 1 (adapters are the identity, the learning rate
        played no part)."""
        assert self.model is not None
        dtype = self.cfg.model.dtype
        for k in ([client] if client is not None else []) + list(range(self.num_clients)):
            if any(not bool(torch.isfinite(p).all()) for p in self.model.client_params(k)):
                return f"client {k}'s LoRA adapters hold NaN/inf: {self._advice()}"
        if any(not bool(torch.isfinite(p).all()) for p in self.model.server_params()):
            return f"the server's LoRA adapters hold NaN/inf: {self._advice()}"
        if any(not bool(torch.isfinite(p).all()) for p in self.base.parameters()):
            return "the backbone's weights hold NaN/inf (corrupted checkpoint: delete it and rebuild or re-download)"
        if not trained:
            fix = {"float32": "the backbone's weights are finite but not a usable LM: check model.backbone"}.get(
                dtype, "set model.dtype='float32'")
            return f"the backbone's activations overflowed in {dtype} ({fix})"
        return f"the activations overflowed in {dtype} with finite adapters: {self._advice()}"

    def _check_batch(self, k: int, it: int, ids: torch.Tensor, labels: torch.Tensor) -> None:
        where = f"round {self._round + 1}, client {k}, local iteration {it + 1}"
        if int(ids.max()) >= self.vocab_rows or int(ids.min()) < 0:
            raise TrainingError(f"{where}: token id {int(ids.max())} outside the model's vocabulary of "
                                f"{self.vocab_rows} (tokenizer/vocabulary mismatch)")
        if not bool((labels[:, 1:] != -100).any()):
            raise TrainingError(f"{where}: the mini-batch has no labelled token (every label is masked: prompts "
                                "fill seq_len or the tokenizer produced no tokens)")

    def _check_adapters(self) -> None:
        """After the local updates, before FedAvg: every client's and the server's adapters are finite."""
        assert self.model is not None
        owners = [(f"client {k}", self.model.client_params(k)) for k in range(self.num_clients)]
        for who, params in owners + [("the server", self.model.server_params())]:
            if any(not bool(torch.isfinite(p).all()) for p in params):
                raise TrainingDiverged(f"round {self._round + 1}, {who}, adapters check before FedAvg: LoRA adapters "
                                       f"hold NaN/inf after the local updates: {self._advice()}")

    def _check_loss(self, k: int, it: int, loss: float, stage: str) -> None:
        if not math.isfinite(loss):
            raise TrainingDiverged(f"round {self._round + 1}, client {k}, local iteration {it + 1}: {stage} loss is "
                                   f"{loss}: {self._diagnose(k)}")

    # ---- one round ----------------------------------------------------------------------------------
    def _apply_action(self, split: int, rank: int) -> dict[str, float]:
        assert self.model is not None
        info = {"rank_changed": 0.0, "moved_blocks": 0.0}
        if int(rank) != self.model.rank:
            self.model.set_rank(int(rank), self._resize_gen)
            self._make_optimizers()  # new parameter objects: all Adam state reset
            info["rank_changed"] = 1.0
        moved = self.model.set_split(int(split), weights=self.data_sizes.tolist())
        for j in moved:  # reset Adam state of moved blocks on every side
            for owner, opt in [(k, self.client_opts[k]) for k in range(self.num_clients)] + \
                              [(self.num_clients, self.server_opt)]:
                for p in self.model.block_params(owner, j):
                    opt.state.pop(p, None)
        info["moved_blocks"] = float(len(moved))
        return info

    def _apply_profile(self, cuts: tuple[int, ...], ranks: tuple[int, ...]) -> dict[str, float]:
        """Heterogeneous mode: the new profile; Adam state of every (owner, block) changing hands is reset. A rank
        change rebuilds the adapters (new parameter objects, new optimizers); the Adam state of every owner whose
        rank did not change (the server: r_g unchanged) moves to its rebuilt parameters for the blocks it keeps,
        whose values the rebuild leaves as they were (the global, cut to the same rank)."""
        model = self.model
        assert isinstance(model, HeteroSplitLoRAModel)
        owners = range(self.num_clients + 1)
        opts = self.client_opts + [self.server_opt]
        old_ranks = [*model.ranks, model.rank]
        kept = {(o, j): [opts[o].state.get(p) for p in model.block_params(o, j)]
                for o in owners for j in range(model.n_layer)}
        changed, moved = model.set_profile(cuts, ranks, self._global_rank(ranks), self._resize_gen)
        if changed:
            self._make_optimizers()
            opts = self.client_opts + [self.server_opt]
            same_rank = [old == new for old, new in zip(old_ranks, [*model.ranks, model.rank])]
            for (o, j), states in kept.items():
                if same_rank[o] and (o, j) not in moved:
                    for p, state in zip(model.block_params(o, j), states):
                        if state is not None:
                            opts[o].state[p] = state
        else:
            for owner, j in moved:
                for p in model.block_params(owner, j):
                    opts[owner].state.pop(p, None)
        return {"rank_changed": float(changed), "moved_blocks": float(len({j for _, j in moved}))}

    def _rng_devices(self) -> list[int]:
        return [self.device.index or 0] if self.device.type == "cuda" else []

    def run_round(self, split: int | Any, rank: int | Any) -> RoundOutcome:
        """Run one split-federated round with cut ``split`` and LoRA rank ``rank``.

        In the heterogeneous mode (chosen at ``reset``) each may be a (K,) sequence or array, one per client (a
        scalar is every client's); ``measured`` then also holds ``lora_bytes_k`` of every client k (``lora_bytes``
        is the largest).

        Raises:
            RuntimeError: ``reset`` was not called.
            ValueError: ``split`` outside [1, L-1] or ``rank`` < 1; a per-client profile in the homogeneous mode;
                heterogeneous mode: a bad profile (InfeasibleDecisionError listing every problem) or a rank above
                ``global_rank``.
            TrainingDiverged: a non-finite loss or adapter (the message names the round, the client and the
                likely cause).
            TrainingError: a mini-batch without labelled tokens or token ids outside the vocabulary.
        """
        if self.model is None:
            raise RuntimeError("call reset(seed) before run_round")
        hetero = isinstance(self.model, HeteroSplitLoRAModel)
        if hetero:
            cuts, ranks = self._profile(split, rank)
            self._global_rank(ranks)
        elif is_per_client(split, rank):
            raise ValueError("a cut and a rank per client need the heterogeneous mode: call "
                             "reset(seed, split=<K cuts>, rank=<K ranks>) first")
        else:
            self._check_split(split)
            self._check_rank(rank)
        t0 = time.perf_counter()
        info = self._apply_profile(cuts, ranks) if hetero else self._apply_action(int(split), int(rank))
        t = self.cfg.training
        model = self.model
        train_s = 0.0
        losses: list[float] = []
        act_bytes = grad_bytes = label_tokens = 0
        round_seed = int(self._round_seeds.integers(0, 2**63 - 1))
        with torch.random.fork_rng(devices=self._rng_devices()):
            torch.manual_seed(round_seed)  # only dropout draws from the global RNG
            model.train()
            for it in range(t.local_iterations):
                self.server_opt.zero_grad(set_to_none=True)
                for k in range(self.num_clients):
                    ids, labels = self.samplers[k].next_batch()
                    self._check_batch(k, it, ids, labels)
                    s0 = time.perf_counter()
                    ids, labels = ids.to(self.device), labels.to(self.device)
                    # client k: forward to the cut; the activation goes over the air at wire_bits
                    act = model.client_forward(k, ids)
                    received, act_bytes = send(act, self.wire_bits)
                    sent = received.requires_grad_(True)
                    # main server: forward + backward of its part for this micro-batch
                    logits = model.server_logits(sent, client=k) if hetero else model.server_logits(sent)
                    loss = lm_loss(logits, labels)
                    loss.backward()
                    loss_value = loss.item()
                    self._check_loss(k, it, loss_value, "training")
                    grad, grad_bytes = send(sent.grad, self.wire_bits)  # returned to client k
                    # client k: finish backward, update its own adapter copy
                    opt = self.client_opts[k]
                    opt.zero_grad(set_to_none=True)
                    act.backward(grad)
                    opt.step()
                    train_s += time.perf_counter() - s0
                    losses.append(loss_value)
                    label_tokens = labels.numel()
                s0 = time.perf_counter()
                with torch.no_grad():  # one server step on the mean loss over the K micro-batches
                    for p in model.server_params():
                        if p.grad is not None:
                            p.grad.div_(self.num_clients)
                self.server_opt.step()
                train_s += time.perf_counter() - s0
        s0 = time.perf_counter()
        self._check_adapters()
        lora_bytes = model.fedavg_clients(self.data_sizes.tolist(), self.cfg.model.activation_bits)
        if hetero:
            info.update({f"lora_bytes_{k}": float(n) for k, n in enumerate(lora_bytes)})
            lora_bytes = max(lora_bytes)
        train_s += time.perf_counter() - s0
        v0 = time.perf_counter()
        self._round += 1
        val = self.validation_loss()
        measured = {"activation_bytes": float(act_bytes), "gradient_bytes": float(grad_bytes),
                    "label_tokens": float(label_tokens), "lora_bytes": float(lora_bytes),
                    "wall_s": time.perf_counter() - t0, "train_s": train_s,
                    "val_s": time.perf_counter() - v0, **info}
        train_loss = float(np.mean(losses))
        return RoundOutcome(train_loss=train_loss, val_loss=val, round_index=self._round, measured=measured)

"""Reference language models for the backbone: uniform, unigram and bigram count models, and the report that
puts the backbone's losses beside them.

The count models are fitted on token ids: an add-one unigram, and a bigram interpolated with it,
``p(w | v) = lam c(v, w) / c(v) + (1 - lam) p_uni(w)``, where ``lam`` is the value on a grid that gives the
lowest loss on the text being scored (so the bigram's number is, if anything, optimistic). Losses are mean
negative log-likelihoods in nats per predicted token; on the task only the supervised tokens count (the
sentence and its end token, as in the engine's loss) of the engine's validation examples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from fedsllm_env.config import FedsLLMConfig
from fedsllm_env.splitfed.data import EncodedSet, encode_examples, load_task

__all__ = ["CountLM", "stream_pairs", "supervised_pairs", "model_loss", "backbone_report", "LAMBDA_GRID"]

LAMBDA_GRID = tuple(float(x) for x in np.linspace(0.0, 0.99, 100))
"""Interpolation weights of the bigram tried on the scored text."""


@dataclass(frozen=True)
class CountLM:
    """Unigram (add-one) and interpolated bigram counts over a vocabulary of ``vocab_size`` ids."""

    vocab_size: int
    unigram: np.ndarray
    """(V,) add-one unigram probabilities."""
    pair_counts: dict[int, int]
    """context * V + target -> count."""
    context_counts: np.ndarray
    """(V,) how often each id is a context."""

    @classmethod
    def fit(cls, contexts: np.ndarray, targets: np.ndarray, vocab_size: int) -> "CountLM":
        """Count (context, target) pairs."""
        contexts, targets = np.asarray(contexts, np.int64), np.asarray(targets, np.int64)
        uni = np.bincount(targets, minlength=vocab_size).astype(float) + 1.0
        keys, counts = np.unique(contexts * vocab_size + targets, return_counts=True)
        return cls(int(vocab_size), uni / uni.sum(), dict(zip(keys.tolist(), counts.tolist())),
                   np.bincount(contexts, minlength=vocab_size).astype(float))

    def unigram_nll(self, targets: np.ndarray) -> float:
        """Mean -log p_uni(target), nats."""
        return float(-np.mean(np.log(self.unigram[np.asarray(targets, np.int64)])))

    def bigram_nll(self, contexts: np.ndarray, targets: np.ndarray) -> tuple[float, float]:
        """(mean -log p(target | context) at the best ``lam`` of :data:`LAMBDA_GRID`, that ``lam``)."""
        contexts, targets = np.asarray(contexts, np.int64), np.asarray(targets, np.int64)
        pair = np.array([self.pair_counts.get(k, 0) for k in (contexts * self.vocab_size + targets).tolist()], float)
        ctx = self.context_counts[contexts]
        big = np.divide(pair, ctx, out=np.zeros_like(pair), where=ctx > 0)
        uni = self.unigram[targets]
        best = min((float(-np.mean(np.log(lam * big + (1.0 - lam) * uni))), lam) for lam in LAMBDA_GRID)
        return best


def stream_pairs(ids: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(contexts, targets) of every next-token prediction in a 1-D id stream."""
    arr = ids.reshape(-1).numpy()
    return arr[:-1], arr[1:]


def supervised_pairs(data: EncodedSet) -> tuple[np.ndarray, np.ndarray]:
    """(contexts, targets) of the supervised next-token predictions of an encoded task set."""
    ctx = data.input_ids[:, :-1].reshape(-1).numpy()
    tgt = data.labels[:, 1:].reshape(-1).numpy()
    keep = tgt != -100
    return ctx[keep], tgt[keep]


@torch.no_grad()
def model_loss(model: Any, input_ids: torch.Tensor, labels: torch.Tensor, batch: int = 32) -> float:
    """Mean next-token loss of a causal LM over the positions whose label is not -100, nats."""
    total, count = 0.0, 0
    for i in range(0, input_ids.shape[0], batch):
        ids, lab = input_ids[i:i + batch], labels[i:i + batch]
        logits = model(input_ids=ids).logits[:, :-1]
        tgt = lab[:, 1:]
        total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), tgt.reshape(-1),
                                       ignore_index=-100, reduction="sum"))
        count += int((tgt != -100).sum())
    return total / max(1, count)


def backbone_report(cfg: FedsLLMConfig, model: Any, tokenizer: Any, pretrain_texts: list[str],
                    heldout_texts: list[str], chunk_len: int = 128) -> dict[str, dict[str, float]]:
    """Losses of the backbone (before any fine-tuning) and of the reference models, nats per token.

    Args:
        cfg: Config of the task (dataset, sizes, seq_len, data seed).
        model: The backbone (eval mode).
        tokenizer: Its tokenizer.
        pretrain_texts: Pre-training documents (the count models' training text).
        heldout_texts: Held-out documents of the same distribution.
        chunk_len: Packed chunk length for the backbone's held-out loss.

    Returns:
        ``{"heldout": {...}, "task": {...}}``, each with ``uniform``, ``unigram_pretrain``,
        ``bigram_pretrain`` and ``backbone``; ``task`` also has ``unigram_task`` and ``bigram_task`` (counts
        from the task's training set: what the fine-tuning data alone gives) and ``tokens``.
    """
    vocab = len(tokenizer)
    eos = tokenizer.eos_token_id

    def stream(texts: list[str]) -> torch.Tensor:
        ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
        return torch.tensor([t for d in ids for t in d + [eos]], dtype=torch.long)

    pre_ctx, pre_tgt = stream_pairs(stream(pretrain_texts))
    pre = CountLM.fit(pre_ctx, pre_tgt, vocab)
    held = stream(heldout_texts)
    h_ctx, h_tgt = stream_pairs(held)
    n = (len(held) // chunk_len) * chunk_len
    chunks = held[:n].view(-1, chunk_len)
    t = cfg.training
    train, val = load_task(t.dataset, t.num_train_samples, t.num_val_samples, t.data_seed)
    if t.val_batches > 0:  # the engine's validation set: the first val_batches * batch_size examples
        val = val[:t.val_batches * t.batch_size]
    train_set, val_set = encode_examples(train, tokenizer, t.seq_len), encode_examples(val, tokenizer, t.seq_len)
    v_ctx, v_tgt = supervised_pairs(val_set)
    task = CountLM.fit(*supervised_pairs(train_set), vocab)
    return {
        "heldout": {"uniform": math.log(vocab), "unigram_pretrain": pre.unigram_nll(h_tgt),
                    "bigram_pretrain": pre.bigram_nll(h_ctx, h_tgt)[0],
                    "backbone": model_loss(model, chunks, chunks.clone()), "tokens": float(len(h_tgt))},
        "task": {"uniform": math.log(vocab), "unigram_pretrain": pre.unigram_nll(v_tgt),
                 "bigram_pretrain": pre.bigram_nll(v_ctx, v_tgt)[0], "unigram_task": task.unigram_nll(v_tgt),
                 "bigram_task": task.bigram_nll(v_ctx, v_tgt)[0],
                 "backbone": model_loss(model, val_set.input_ids, val_set.labels), "tokens": float(len(v_tgt))},
    }

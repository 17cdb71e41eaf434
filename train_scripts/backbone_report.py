"""``fedsllm backbone-report``: how good a language model the backbone is before any fine-tuning.

Prints, in nats per predicted token, the backbone's loss on held-out pre-training text and on the
fine-tuning task's validation set (the supervised sentence tokens, as the engine scores them) beside the
uniform guess ln V, a unigram and an interpolated bigram count model fitted on the pre-training corpus, and
on the task also a unigram and a bigram fitted on the task's own training set (see
``fedsllm_env/splitfed/lm_baselines.py``). For the default ``tiny-gpt2`` the pre-training corpus is the
package's (``generate_pretrain_documents``); held-out text is the same generator with another seed. Loads
(and if needed pre-trains and caches) the backbone; writes the numbers to ``--out`` as JSON.
"""

from __future__ import annotations

import shlex
import sys
import time
from dataclasses import dataclass
from typing import Sequence

import torch
import tyro

from fedsllm_env.atomic import atomic_write_json
from fedsllm_env.config import FedsLLMConfig
from fedsllm_env.splitfed.lm_baselines import backbone_report
from fedsllm_env.splitfed.model import PRETRAIN_DOCS, PRETRAIN_SEED, PRETRAIN_SEQ_LEN, load_backbone
from fedsllm_env.presets import with_preset
from fedsllm_env.splitfed.pretrain_corpus import generate_pretrain_documents
from train_scripts.calibrate import _load_overrides

__all__ = ["Args", "main", "run", "HELDOUT_SEED"]

HELDOUT_SEED = 999
"""Seed of the held-out pre-training documents (the corpus uses ``PRETRAIN_SEED``)."""


@dataclass
class Args:
    """Losses of the backbone before fine-tuning beside uniform, unigram and bigram reference models."""

    config: str = ""
    """JSON/YAML file of nested config overrides (backbone, training.seq_len, ...)."""
    preset: str = ""
    """Scenario preset of fedsllm_env.presets ("" = none)."""
    heldout_docs: int = 2000
    """Held-out pre-training documents scored."""
    threads: int = 1
    """torch threads."""
    out: str = ""
    """JSON file for the numbers ("" = do not write)."""


def run(args: Args, command: str = "fedsllm backbone-report") -> dict:
    """Compute, print and (optionally) write the report; returns it."""
    if args.heldout_docs < 1:
        raise ValueError(f"--heldout-docs must be >= 1, got {args.heldout_docs}")
    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    cfg = FedsLLMConfig.from_dict(with_preset(args.preset, _load_overrides(args.config)))
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    model, tok = load_backbone(cfg.model, cfg.training.seq_len)
    load_s = time.perf_counter() - t0
    report = backbone_report(cfg, model, tok, generate_pretrain_documents(PRETRAIN_DOCS, PRETRAIN_SEED),
                             generate_pretrain_documents(args.heldout_docs, HELDOUT_SEED), PRETRAIN_SEQ_LEN)
    print(f"backbone {cfg.model.backbone}: vocabulary {len(tok)}, task seq_len {cfg.training.seq_len} "
          f"(loaded in {load_s:.1f} s)")
    print("| text | uniform ln V | unigram (pre-training) | bigram (pre-training) | unigram (task train) "
          "| bigram (task train) | backbone, before fine-tuning |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, label in (("heldout", "held-out pre-training text"), ("task", "task validation (sentence tokens)")):
        r = report[name]
        cells = [f"{r[k]:.2f}" if k in r else "" for k in ("uniform", "unigram_pretrain", "bigram_pretrain",
                                                           "unigram_task", "bigram_task", "backbone")]
        print(f"| {label} | " + " | ".join(cells) + " |")
    report = {"command": command, "backbone": cfg.model.backbone, "vocab_size": len(tok),
              "seq_len": cfg.training.seq_len, **report}
    if args.out:
        atomic_write_json(args.out, report)
        print(f"written to {args.out}")
    return report


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point (``fedsllm backbone-report``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = tyro.cli(Args, args=argv, prog="fedsllm backbone-report", description=__doc__)
    run(args, command=shlex.join(["fedsllm", "backbone-report", *argv]))


if __name__ == "__main__":
    from train_scripts.cli import run_as_script

    run_as_script("backbone-report")

"""``fedsllm backbone-report``: how good a language model the backbone is before any fine-tuning.

Prints, in nats per predicted token, the backbone's loss on held-out pre-training text and on the
fine-tuning task's validation set (the supervised sentence tokens, as the engine scores them) beside the
uniform guess ln V, a unigram and an interpolated bigram count model fitted on the pre-training corpus, and
on the task also a unigram and a bigram fitted on the task's own training set (see
``fedsllm_env/splitfed/lm_baselines.py``). For the default ``tiny-gpt2`` the pre-training corpus is the
package's (``generate_pretrain_documents``); held-out text is the same generator with another seed. Loads
the backbone (the shipped one for the default settings; others are pre-trained and cached once) and writes
the numbers to ``--out`` as JSON.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import tyro

from fedsllm_env.atomic import atomic_write_json
from fedsllm_env.config import FedsLLMConfig
from fedsllm_env.errors import UsageError
from fedsllm_env.presets import with_preset
from train_scripts._checks import help_description

# torch, transformers and the engine are imported by the functions that need them, so `--help` answers at once

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
    rebuild_tiny: str = ""
    """Pre-train the config's tiny-gpt2 into this new folder and compare it with the shipped one (no report)."""


def _load_overrides(path: str) -> dict:
    """Nested overrides from a JSON or YAML ``--config`` file ("" = none)."""
    from train_scripts._common import load_overrides_file

    return load_overrides_file(path)


def rebuild_tiny(cfg: FedsLLMConfig, folder: str) -> dict:
    """Pre-train the tiny GPT-2 of ``cfg.model`` into ``folder`` (one torch thread, as the shipped one was made)
    and compare its weights with the shipped ``fedsllm_env/data/tiny-gpt2``; prints and returns the comparison.

    The pre-training is bit-identical on one machine; across CPUs (other SIMD kernels) the weights may differ in
    the last bits, which is why the package ships the bytes instead of asking every user to rebuild them.
    """
    from safetensors.torch import load_file

    from fedsllm_env.splitfed.model import shipped_tiny_dir, write_tiny_folder

    out = Path(folder).expanduser()
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"--rebuild-tiny {out}: the folder exists and is not empty; name a new folder")
    out.mkdir(parents=True, exist_ok=True)
    n_positions = max(256, cfg.training.seq_len)
    info = write_tiny_folder(cfg.model, n_positions, out, progress=True)
    shipped = shipped_tiny_dir()
    ship_info = json.loads((shipped / "fedsllm_pretrain.json").read_text())
    same_settings = {k: v for k, v in ship_info["settings"].items() if k != "torch"} == \
        {k: v for k, v in info["settings"].items() if k != "torch"}
    a, b = load_file(str(shipped / "model.safetensors")), load_file(str(out / "model.safetensors"))
    max_diff = max(float((a[k].double() - b[k].double()).abs().max()) for k in a) if a.keys() == b.keys() \
        else float("nan")
    result = {"folder": str(out), "settings_match_shipped": same_settings,
              "weights_identical": info["sha256"]["model.safetensors"] == ship_info["sha256"]["model.safetensors"],
              "tokenizer_identical": info["sha256"]["tokenizer.json"] == ship_info["sha256"]["tokenizer.json"],
              "max_abs_weight_diff": max_diff, "final_pretrain_loss": info["final_pretrain_loss"],
              "shipped_final_pretrain_loss": ship_info["final_pretrain_loss"], "pretrain_s": info["pretrain_s"]}
    print(f"rebuilt tiny-gpt2 in {out} ({info['pretrain_s']:.0f} s): settings "
          f"{'match' if same_settings else 'differ from'} the shipped one; weights "
          f"{'identical (sha256)' if result['weights_identical'] else f'differ, max |dw| = {max_diff:.3g}'}; "
          f"tokenizer {'identical' if result['tokenizer_identical'] else 'differs'}; final pre-training loss "
          f"{info['final_pretrain_loss']:.4f} (shipped {ship_info['final_pretrain_loss']:.4f})")
    return result


def run(args: Args, command: str = "fedsllm backbone-report") -> dict:
    """Compute, print and (optionally) write the report; returns it."""
    import torch

    from fedsllm_env.splitfed.lm_baselines import backbone_report
    from fedsllm_env.splitfed.model import PRETRAIN_DOCS, PRETRAIN_SEED, PRETRAIN_SEQ_LEN, load_backbone
    from fedsllm_env.splitfed.pretrain_corpus import generate_pretrain_documents

    if args.rebuild_tiny:
        torch.set_num_threads(1)
        return rebuild_tiny(FedsLLMConfig.from_dict(with_preset(args.preset, _load_overrides(args.config))),
                            args.rebuild_tiny)
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
    args = tyro.cli(Args, args=argv, prog="fedsllm backbone-report", description=help_description(__doc__))
    run(args, command=shlex.join(["fedsllm", "backbone-report", *argv]))


if __name__ == "__main__":
    from train_scripts.cli import run_as_script

    run_as_script("backbone-report")

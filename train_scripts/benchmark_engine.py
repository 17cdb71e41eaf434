"""Real-engine benchmark: seconds per split-federated round and peak memory for random-weight models of
named shapes (no download), on a chosen device and dtype.

Each (shape, dtype) runs in a fresh process (so the peak RSS is its own): build the model locally, one
warm-up round, then ``--rounds`` timed rounds at the default training settings (K = 5 clients, I = 2 local
iterations, b = 8, n = 80 tokens, validation on val_batches = 8 batches of the 200 validation examples:
``fedsllm_env.config.TrainingConfig``'s defaults, recorded in the JSON). Prints a table and optionally writes JSON.

Example::

    fedsllm benchmark-engine --shapes tiny-gpt2 gpt2-small llama-100m --device cpu --out engine.json
"""

from __future__ import annotations

import json
import multiprocessing as mp
import platform
import resource
import sys
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["Args", "measure", "main"]


@dataclass
class Args:
    """Benchmark the real split-fed engine on random-weight models of named shapes."""

    shapes: tuple[str, ...] = ("tiny-gpt2", "gpt2-small", "llama-100m")
    """Named shapes (``fedsllm_env.splitfed.zoo.BENCHMARK_SHAPES``)."""
    device: str = "cpu"
    """``model.device``: auto, cpu, cuda, cuda:N or mps."""
    dtypes: tuple[str, ...] = ("float32",)
    """``model.dtype`` values to measure (float32, bfloat16, float16)."""
    rounds: int = 2
    """Timed rounds per (shape, dtype), after one warm-up round."""
    split: int = 1
    """Cut index of every round."""
    rank: int = 4
    """LoRA rank of every round."""
    activation_bits: int = 32
    """``model.activation_bits``."""
    threads: int = 0
    """torch intra-op threads (0 = torch's default)."""
    # every flag is checked before a process starts (_check): a bad one exits with status 2 and one line
    out: str = ""
    """Optional JSON output path."""


def measure(shape: str, device: str, dtype: str, rounds: int, split: int, rank: int, activation_bits: int,
            threads: int) -> dict[str, Any]:
    """One (shape, dtype) measurement in the current process."""
    import torch

    from fedsllm_env.config import FedsLLMConfig
    from fedsllm_env.splitfed import SplitFedEngine
    from fedsllm_env.splitfed.model import build_random_model
    from fedsllm_env.splitfed.tokenizer import default_word_tokenizer
    from fedsllm_env.splitfed.zoo import benchmark_config

    if threads > 0:
        torch.set_num_threads(threads)
    tok = default_word_tokenizer()
    cfg = FedsLLMConfig.from_dict({"model": {"device": device, "dtype": dtype, "initial_split": split,
                                             "activation_bits": activation_bits}})
    t0 = time.perf_counter()
    model = build_random_model(benchmark_config(shape, tok.pad_token_id, tok.eos_token_id),
                               dtype=getattr(torch, dtype))
    params = sum(p.numel() for p in model.parameters())
    eng = SplitFedEngine(cfg, model=model, tokenizer=tok, progress=False)
    del model
    dev = eng.device
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    eng.reset(0)
    setup_s = time.perf_counter() - t0
    eng.run_round(split, rank)  # warm-up
    rows = []
    for _ in range(rounds):
        out = eng.run_round(split, rank)
        m = out.measured
        rows.append((m["wall_s"], m["train_s"], m["val_s"], out.train_loss))
    wall = sum(r[0] for r in rows) / len(rows)
    train = sum(r[1] for r in rows) / len(rows)
    val = sum(r[2] for r in rows) / len(rows)
    result = {"shape": shape, "device": str(dev), "dtype": dtype, "params_m": params / 1e6,
              "n_layer": eng.shape.n_layer, "n_embd": eng.shape.n_embd, "vocab_size": eng.shape.vocab_size,
              "setup_s": setup_s, "round_s": wall, "train_s": train, "val_s": val,
              "other_s": wall - train - val, "other_share": (wall - train - val) / wall,
              "last_train_loss": rows[-1][3], "rounds": rounds, "threads": torch.get_num_threads(),
              "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if dev.type == "cuda":
        result["peak_gpu_mib"] = torch.cuda.max_memory_allocated(dev) / 2**20
        result["gpu"] = torch.cuda.get_device_name(dev)
    return result


def _round_settings() -> dict[str, Any]:
    """The default round every measurement runs (from the config, so the JSON cannot drift from the code)."""
    from fedsllm_env.config import FedsLLMConfig

    cfg = FedsLLMConfig()
    t = cfg.training
    return {"clients": cfg.wireless.num_clients, "local_iterations": t.local_iterations, "batch_size": t.batch_size,
            "seq_len": t.seq_len, "num_val_samples": t.num_val_samples, "val_batches": t.val_batches}


def _child(queue, *args) -> None:
    try:
        queue.put(measure(*args))
    except Exception as e:  # noqa: BLE001 - reported in the table, the other shapes still run
        queue.put({"shape": args[0], "dtype": args[2], "error": f"{type(e).__name__}: {e}"})


def _parse(argv: list[str] | None) -> Args:
    """Flags from the fields of :class:`Args` (argparse: this command also runs where only torch,
    transformers and peft are installed, e.g. an offline GPU box)."""
    import argparse
    import dataclasses

    parser = argparse.ArgumentParser(prog="fedsllm benchmark-engine", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in dataclasses.fields(Args):
        flag = "--" + f.name.replace("_", "-")
        if isinstance(f.default, tuple):
            parser.add_argument(flag, nargs="+", default=list(f.default), help=f"(default: {' '.join(f.default)})")
        else:
            parser.add_argument(flag, type=type(f.default), default=f.default, help=f"(default: {f.default!r})")
    ns = parser.parse_args(argv)
    args = Args(**{k: tuple(v) if isinstance(v, list) else v for k, v in vars(ns).items()})
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1, got {args.rounds}")
    _check(args)
    return args


DTYPES = ("float32", "bfloat16", "float16")
"""``--dtypes`` values (``model.dtype``)."""


def _check(args: Args) -> None:
    """Refuse a bad flag before any process starts: UsageError (or DeviceError for a device this machine lacks)
    naming the flag, the value and the choices."""
    from fedsllm_env.config import FedsLLMConfig
    from fedsllm_env.splitfed.devices import check_device_available
    from fedsllm_env.errors import ConfigError, UsageError
    from fedsllm_env.splitfed.zoo import BENCHMARK_SHAPES

    unknown = [s for s in args.shapes if s not in BENCHMARK_SHAPES]
    if unknown or not args.shapes:
        raise UsageError(f"--shapes: unknown shape(s) {unknown}; choose from {list(BENCHMARK_SHAPES)}")
    bad = [d for d in args.dtypes if d not in DTYPES]
    if bad or not args.dtypes:
        raise UsageError(f"--dtypes: unsupported dtype(s) {bad}; choose from {list(DTYPES)}")
    try:
        FedsLLMConfig.from_dict({"model": {"device": args.device, "activation_bits": args.activation_bits}})
    except ConfigError as e:
        flag = "--device" if "device" in str(e) else "--activation-bits"
        raise UsageError(f"{flag}: {e}") from None
    check_device_available(args.device, "--device")
    deepest = min(BENCHMARK_SHAPES[s]["n_layer"] for s in args.shapes) - 1
    if not 1 <= args.split <= deepest:
        raise UsageError(f"--split must be in [1, {deepest}] for the shapes {list(args.shapes)}, got {args.split}")
    if args.rank < 1:
        raise UsageError(f"--rank must be >= 1, got {args.rank}")
    if args.threads < 0:
        raise UsageError(f"--threads must be >= 0 (0 = torch's default), got {args.threads}")
    if args.out:  # written after minutes of measuring: check now that it can be
        import os
        from pathlib import Path

        out = Path(args.out)
        parent = out.parent if str(out.parent) else Path(".")
        if out.is_dir():
            raise UsageError(f"--out {args.out} is a folder; give a file path such as {out / 'engine.json'}")
        if not parent.is_dir() or not os.access(parent, os.W_OK):
            raise UsageError(f"--out {args.out}: the folder {parent} does not exist or is not writable")


def main(argv: list[str] | None = None) -> int:
    """Run every (shape, dtype) in its own process, print the table, write JSON if asked."""
    args = _parse(argv)
    ctx = mp.get_context("spawn")
    results = []
    for shape in args.shapes:
        for dtype in args.dtypes:
            queue = ctx.Queue()
            proc = ctx.Process(target=_child, args=(queue, shape, args.device, dtype, args.rounds, args.split,
                                                    args.rank, args.activation_bits, args.threads))
            proc.start()
            res = queue.get()
            proc.join()
            results.append(res)
            print(_row(res), flush=True)
    if args.out:
        import torch

        info = {"command": " ".join(["fedsllm", "benchmark-engine", *(argv if argv is not None else sys.argv[1:])]),
                "torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
                "settings": {**_round_settings(),
                             "split": args.split, "rank": args.rank, "activation_bits": args.activation_bits},
                "results": results}
        with open(args.out, "w") as f:
            json.dump(info, f, indent=1)
    return 0


def _row(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"{r['shape']:<12} {r['dtype']:<9} ERROR {r['error']}"
    mem = f"peak GPU {r['peak_gpu_mib']:.0f} MiB" if "peak_gpu_mib" in r else ""
    return (f"{r['shape']:<12} {r['dtype']:<9} {r['device']:<6} {r['params_m']:7.1f}M params  "
            f"{r['round_s']:8.3f} s/round (train {r['train_s']:.3f}, validation {r['val_s']:.3f}, other "
            f"{100 * r['other_share']:.1f}%)  peak RSS {r['peak_rss_mib']:.0f} MiB {mem}")


if __name__ == "__main__":
    raise SystemExit(main())

"""``fedsllm benchmark-engine``: measures a named shape; the engine and the command need neither gymnasium
nor tyro (they run on an offline GPU box with only torch, transformers and peft)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from train_scripts.benchmark_engine import _parse, measure

ROOT = Path(__file__).resolve().parents[1]


def test_measure_reports_round_time_breakdown_and_memory(one_torch_thread):
    r = measure("tiny-gpt2", "cpu", "float32", rounds=1, split=2, rank=2, activation_bits=16, threads=0)
    assert (r["n_layer"], r["n_embd"], r["vocab_size"]) == (6, 128, 239)
    assert r["round_s"] >= r["train_s"] + r["val_s"] > 0 and 0 <= r["other_share"] < 1
    assert r["peak_rss_mib"] > 0 and r["device"] == "cpu" and r["last_train_loss"] > 0


def test_flags_and_errors():
    args = _parse(["--shapes", "gpt2-small", "llama-100m", "--dtypes", "bfloat16", "--rounds", "3"])
    assert args.shapes == ("gpt2-small", "llama-100m") and args.dtypes == ("bfloat16",) and args.rounds == 3
    with pytest.raises(SystemExit):
        _parse(["--rounds", "0"])
    with pytest.raises(ValueError, match="unknown shape 'gpt5'"):
        measure("gpt5", "cpu", "float32", 1, 1, 2, 32, 0)


def test_engine_and_command_import_without_gymnasium_or_tyro():
    code = ("import sys; sys.modules.update(gymnasium=None, tyro=None, stable_baselines3=None);"
            "import fedsllm_env; from fedsllm_env.splitfed import SplitFedEngine;"
            "from fedsllm_env.delay import payload_bits; import train_scripts.benchmark_engine as b;"
            "b._parse(['--rounds', '1'])")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)

"""GPU-only checks of the real engine (``-m gpu``; skipped without CUDA): every family trains on the GPU with
the payloads the delay model charges, matches the CPU in float32, and runs in bfloat16."""

from __future__ import annotations

import math

import pytest
import torch

from fedsllm_env.config import FedsLLMConfig, ModelConfig, TrainingConfig, WirelessConfig
from fedsllm_env.delay import payload_bits
from fedsllm_env.splitfed import SplitFedEngine
from fedsllm_env.splitfed.model import build_random_model
from fedsllm_env.splitfed.tokenizer import default_word_tokenizer
from fedsllm_env.splitfed.zoo import TINY_FAMILIES, tiny_config

pytestmark = [pytest.mark.gpu, pytest.mark.filterwarnings("ignore:dataset "),
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

TOK = default_word_tokenizer()


def _engine(family: str, device: str, dtype: str = "float32", bits: int = 32) -> SplitFedEngine:
    cfg = FedsLLMConfig(model=ModelConfig(ranks=(2, 4), initial_rank=2, device=device, dtype=dtype,
                                          activation_bits=bits),
                        wireless=WirelessConfig(num_clients=3),
                        training=TrainingConfig(batch_size=4, seq_len=48, num_train_samples=48, num_val_samples=12))
    model = build_random_model(tiny_config(family, len(TOK), n_positions=64), seed=0)
    return SplitFedEngine(cfg, model=model, tokenizer=TOK, progress=False)


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_every_family_trains_on_cuda_with_the_modelled_payloads(family):
    eng = _engine(family, "cuda")
    assert next(eng.base.parameters()).is_cuda
    v0 = eng.reset(0)
    out = eng.run_round(2, 4)
    act_bits, _, lora_bits = payload_bits(eng.shape, 2, 4, eng.cfg)
    assert out.measured["activation_bytes"] * 8 == act_bits and out.measured["lora_bytes"] * 8 == lora_bits
    assert math.isfinite(out.train_loss) and out.val_loss != v0


@pytest.mark.parametrize("family", ["gpt2", "llama", "opt"])
def test_cuda_float32_matches_cpu(family):
    cpu, gpu = _engine(family, "cpu"), _engine(family, "cuda")
    assert gpu.reset(0) == pytest.approx(cpu.reset(0), rel=1e-4)
    a, b = cpu.run_round(1, 2), gpu.run_round(1, 2)
    assert b.train_loss == pytest.approx(a.train_loss, rel=1e-3) and b.val_loss == pytest.approx(a.val_loss, rel=1e-3)


@pytest.mark.parametrize("dtype,bits", [("bfloat16", 32), ("float16", 32), ("bfloat16", 8)])
def test_half_precision_on_cuda(dtype, bits):
    eng = _engine("llama", "cuda:0", dtype, bits)
    eng.reset(0)
    out = eng.run_round(1, 2)
    act_bits, _, _ = payload_bits(eng.shape, 1, 2, eng.cfg)
    assert out.measured["activation_bytes"] * 8 == act_bits
    assert math.isfinite(out.train_loss) and math.isfinite(out.val_loss)


def test_unknown_cuda_index_is_refused():
    with pytest.raises(ValueError, match="CUDA device"):
        _engine("gpt2", f"cuda:{torch.cuda.device_count()}")

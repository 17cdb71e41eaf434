"""The analytic FLOPs / activation sizes of ModelShape against torch's flop counter on real modules.

FlopCounterMode counts matrix-multiply FLOPs. On CPU it has no formula for the fused scaled-dot-product
attention kernel, so these checks run the blocks with eager attention, whose Q K^T and A V are ``bmm``
calls the counter sees.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from fedsllm_env.profile import ModelShape
from fedsllm_env.splitfed.model import build_random_gpt2
from fedsllm_env.splitfed.split import SplitLoRAModel
from fedsllm_env.splitfed.tokenizer import default_word_tokenizer

TARGETS = ("attn.c_attn", "attn.c_proj")


@pytest.fixture(scope="module")
def eager_model():
    model = build_random_gpt2(default_word_tokenizer(), n_layer=2, n_embd=64, n_head=4, n_positions=128, seed=3)
    model.config._attn_implementation = "eager"
    return model


def _count(fn) -> int:
    with FlopCounterMode(display=False) as fc:
        fn()
    return int(fc.get_total_flops())


@pytest.mark.parametrize("seq_len", [16, 48])
@pytest.mark.parametrize("rank", [0, 1, 8])
def test_block_forward_flops_match_counter(eager_model, seq_len, rank):
    shape = ModelShape.from_hf_config(eager_model.config)
    x = torch.randn(1, seq_len, shape.n_embd)
    sm = SplitLoRAModel(eager_model, 1, max(rank, 1), 1, 2.0, 0.0, TARGETS, torch.Generator().manual_seed(0))
    block = sm.server_blocks[1] if rank else eager_model.transformer.h[0]  # with / without LoRA
    mask, pos = sm._mask_and_positions(x)
    measured = _count(lambda: block(x, attention_mask=mask, position_ids=pos))
    analytic = shape.block_forward_flops(seq_len, rank, TARGETS if rank else ())
    assert measured == pytest.approx(analytic, rel=0.05)


def test_head_forward_flops_match_counter(eager_model):
    shape = ModelShape.from_hf_config(eager_model.config)
    h = torch.randn(1, 40, shape.n_embd)
    measured = _count(lambda: eager_model.lm_head(h))
    assert measured == pytest.approx(shape.head_forward_flops(40), rel=0.05)


def test_activation_elements_equal_real_cut_tensor(eager_model):
    shape = ModelShape.from_hf_config(eager_model.config)
    sm = SplitLoRAModel(eager_model, 2, 2, 1, 2.0, 0.0, TARGETS, torch.Generator().manual_seed(0))
    ids = torch.randint(0, shape.vocab_size, (3, 20))
    act = sm.client_forward(1, ids)
    assert act.numel() == shape.activation_elements(3, 20)
    assert tuple(act.shape) == (3, 20, shape.n_embd)

"""The analytic FLOPs / parameter / activation sizes of ModelShape against real modules of every family.

FlopCounterMode counts matrix-multiply FLOPs. On CPU it has no formula for the fused scaled-dot-product
attention kernel, so these checks run the blocks with eager attention, whose Q K^T and A V are matmuls
the counter sees.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from fedsllm_env.errors import ConfigError
from fedsllm_env.profile import ModelShape
from fedsllm_env.splitfed.backbones import adapter_for
from fedsllm_env.splitfed.model import build_random_gpt2, build_random_model
from fedsllm_env.splitfed.split import SplitLoRAModel
from fedsllm_env.splitfed.tokenizer import default_word_tokenizer
from fedsllm_env.splitfed.zoo import TINY_FAMILIES, tiny_config

TARGETS = ("attn.c_attn", "attn.c_proj")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _eager(family: str):
    cfg = tiny_config(family, 97, n_layer=2, n_embd=64, n_head=4, n_positions=128)
    cfg._attn_implementation = "eager"
    return build_random_model(cfg, seed=3)


@pytest.fixture(scope="module", params=TINY_FAMILIES)
def eager_model(request):
    return _eager(request.param)


def _count(fn) -> int:
    with FlopCounterMode(display=False) as fc:
        fn()
    return int(fc.get_total_flops())


@pytest.mark.parametrize("rank,targets", [(0, ()), (1, TARGETS), (4, ("all",))])
def test_block_forward_flops_match_counter(eager_model, rank, targets):
    adapter = adapter_for(eager_model.config)
    shape = adapter.shape(eager_model)
    sm = SplitLoRAModel(eager_model, 1, max(rank, 1), 1, 2.0, 0.0, targets or TARGETS,
                        torch.Generator().manual_seed(0))
    blocks = sm.server_blocks if rank else adapter.blocks(eager_model)  # with / without LoRA
    for seq_len in (16, 48):
        x = torch.randn(1, seq_len, shape.n_embd)
        measured = _count(lambda: sm.adapter.run_blocks(sm.inner, blocks, x, range(1, 2)))
        assert measured == pytest.approx(shape.block_forward_flops(seq_len, rank, targets), rel=1e-9)


def test_head_and_embedding_flops_match_counter(eager_model):
    adapter = adapter_for(eager_model.config)
    shape = adapter.shape(eager_model)
    h = torch.randn(1, 40, shape.n_embd)
    assert _count(lambda: adapter.head(eager_model, h)) == pytest.approx(shape.head_forward_flops(40), rel=1e-9)
    ids = torch.randint(0, shape.vocab_size, (1, 40))
    embed = _count(lambda: adapter.embed(eager_model, ids))  # OPT's project_in is a matmul; lookups are not
    assert shape.client_forward_flops(1, 40, 0, ()) == pytest.approx(shape.block_forward_flops(40) + embed, rel=1e-9)


def test_parameter_counts_equal_real_modules(eager_model):
    adapter = adapter_for(eager_model.config)
    shape = adapter.shape(eager_model)
    block = adapter.blocks(eager_model)[0]
    assert shape.block_params() == sum(p.numel() for p in block.parameters())
    client = {id(p): p for p in eager_model.get_input_embeddings().parameters()}
    for extra in ("transformer.wpe", "model.decoder.embed_positions", "model.decoder.project_in"):
        mod = eager_model.get_submodule(extra) if _has(eager_model, extra) else None
        if mod is not None:
            client.update({id(p): p for p in mod.parameters()})
    client.update({id(p): p for p in block.parameters()})
    assert shape.client_param_count(1) == sum(p.numel() for p in client.values())
    sm = SplitLoRAModel(eager_model, 1, 3, 1, 2.0, 0.0, ("all",), torch.Generator().manual_seed(0))
    assert sum(p.numel() for p in sm.server_params()) == shape.n_layer * shape.lora_params_per_block(3, ("all",))
    assert ModelShape.from_dict(shape.to_dict()) == shape


def _has(model, path: str) -> bool:
    try:
        return model.get_submodule(path) is not None
    except AttributeError:
        return False


def test_activation_elements_equal_real_cut_tensor(eager_model):
    shape = adapter_for(eager_model.config).shape(eager_model)
    sm = SplitLoRAModel(eager_model, 2, 2, 1, 2.0, 0.0, TARGETS, torch.Generator().manual_seed(0))
    ids = torch.randint(0, shape.vocab_size, (3, 20))
    act = sm.client_forward(1, ids)
    assert act.numel() == shape.activation_elements(3, 20)
    assert tuple(act.shape) == (3, 20, shape.n_embd)


def test_gpt2_shape_json_unchanged_and_old_files_load():
    """The shipped calibration's six-key GPT-2 dict still loads, and a GPT-2 shape writes the same six keys."""
    model = build_random_gpt2(default_word_tokenizer(), n_layer=2, n_embd=64, n_head=4, n_positions=128, seed=3)
    shape = adapter_for(model.config).shape(model)
    old = {"n_layer": 2, "n_embd": 64, "n_head": 4, "vocab_size": len(default_word_tokenizer()), "n_inner": 256,
           "n_positions": 128}
    assert shape.to_dict() == old and ModelShape.from_dict(old) == shape == ModelShape.from_hf_config(model.config)
    llama = _eager("llama")
    d = adapter_for(llama.config).shape(llama).to_dict()
    assert d["gated_mlp"] is True and d["position_rows"] == 0 and d["n_kv_head"] == 2 and "modules" in d


def test_target_names_resolve_per_family():
    llama = adapter_for(tiny_config("llama", 50)).shape(_eager("llama"))
    assert llama.resolve_targets(TARGETS) == ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                              "self_attn.o_proj")
    assert llama.resolve_targets(("mlp",)) == ("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
    assert llama.resolve_targets(("self_attn.v_proj",)) == ("self_attn.v_proj",)
    # bad names are a configuration error (model.lora_target_modules), which the commands print as one line
    with pytest.raises(ConfigError, match="LoRA target 'attn.qkv' matches no module"):
        llama.resolve_targets(("attn.qkv",))
    with pytest.raises(ConfigError, match="at least one target module"):
        llama.resolve_targets(())

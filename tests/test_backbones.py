"""Every backbone family (GPT-2, LLaMA-style incl. Qwen2 / Mistral / tied heads, OPT incl. projections):
split == unsplit for every cut, measured payloads == the delay model, local save / load, dtypes and the wire
quantisation."""

from __future__ import annotations

import math

import pytest
import torch

from fedsllm_env.config import FedsLLMConfig, ModelConfig, TrainingConfig, WirelessConfig
from fedsllm_env.delay import payload_bits
from fedsllm_env.splitfed import SplitFedEngine
from fedsllm_env.splitfed.model import build_random_model, load_backbone
from fedsllm_env.splitfed.split import SplitLoRAModel, lm_loss
from fedsllm_env.splitfed.tokenizer import default_word_tokenizer
from fedsllm_env.splitfed.wire import send
from fedsllm_env.splitfed.zoo import TINY_FAMILIES, tiny_config

pytestmark = [pytest.mark.filterwarnings("ignore:dataset 'e2e-synthetic'"),
              pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(scope="module")
def tok():
    return default_word_tokenizer()


def tiny(family: str, tok, seed: int = 0, n_layer: int = 3):
    return build_random_model(tiny_config(family, len(tok), n_layer=n_layer, pad_id=tok.pad_token_id,
                                          eos_id=tok.eos_token_id), seed=seed)


def engine_cfg(k: int = 2, **model) -> FedsLLMConfig:
    m = dict(ranks=(1, 2, 4), initial_rank=2, initial_split=1, device="cpu")
    m.update(model)
    return FedsLLMConfig(model=ModelConfig(**m), wireless=WirelessConfig(num_clients=k),
                         training=TrainingConfig(batch_size=4, seq_len=40, local_iterations=1, learning_rate=5e-3,
                                                 num_train_samples=24, num_val_samples=6))


def randomise_lora(sm: SplitLoRAModel, seed: int = 0) -> None:
    """Give every copy of every adapter the same random non-zero values (as after FedAvg)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for j in range(sm.n_layer):
            server = sm.block_params(sm.num_clients, j)
            for p in server:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
            for k in range(sm.num_clients):
                for p, q in zip(sm.block_params(k, j), server):
                    p.copy_(q)


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_split_forward_backward_equals_unsplit_for_every_cut(family, tok):
    base = tiny(family, tok, seed=7)
    n_layer = base.config.num_hidden_layers
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(0, len(tok), (3, 16), generator=gen)
    labels = ids.clone()
    labels[:, :4] = -100
    for split in range(1, n_layer):
        sm = SplitLoRAModel(base, 2, 4, split, 2.0, 0.0, ("all",), torch.Generator().manual_seed(0))
        randomise_lora(sm)
        sm.eval()
        # unsplit peft model (its own blocks are the server copy, which holds every block's adapters here)
        full_loss = lm_loss(sm.peft_model(input_ids=ids).logits, labels)
        full_loss.backward()
        full_grads = {(j, i): p.grad.clone() for j in range(n_layer)
                      for i, p in enumerate(sm.block_params(sm.num_clients, j))}
        for p in sm.server_params():
            p.grad = None
        act = sm.client_forward(1, ids)
        sent = act.detach().requires_grad_(True)
        loss = lm_loss(sm.server_logits(sent), labels)
        loss.backward()
        act.backward(sent.grad)
        assert loss.item() == pytest.approx(full_loss.item(), abs=1e-6)
        n_grads = 0
        for j in range(n_layer):
            owner = 1 if j < split else sm.num_clients
            for i, p in enumerate(sm.block_params(owner, j)):
                torch.testing.assert_close(p.grad, full_grads[(j, i)], atol=1e-6, rtol=1e-5)
                n_grads += 1
        assert n_grads == len(full_grads) and all(g.abs().sum() > 0 for g in full_grads.values())
        assert all(p.grad is None for j in range(split) for p in sm.block_params(0, j))  # client 0 untouched


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_engine_round_measured_bytes_equal_delay_model(family, tok):
    eng = SplitFedEngine(engine_cfg(), model=tiny(family, tok), tokenizer=tok, progress=False)
    v0 = eng.reset(0)
    out = eng.run_round(2, 4)
    act_bits, label_bits, lora_bits = payload_bits(eng.shape, 2, 4, eng.cfg)
    m = out.measured
    assert m["activation_bytes"] * 8 == act_bits == m["gradient_bytes"] * 8
    assert m["lora_bytes"] * 8 == lora_bits
    assert m["label_tokens"] * math.ceil(math.log2(eng.shape.vocab_size)) == label_bits
    assert math.isfinite(out.train_loss) and out.val_loss != v0


@pytest.mark.parametrize("family", ["gpt2", "llama", "opt"])
def test_saved_folder_loads_by_path_with_its_tokenizer(family, tok, tmp_path):
    model = tiny(family, tok, seed=3)
    model.save_pretrained(tmp_path / family)
    tok.save_pretrained(tmp_path / family)
    loaded, loaded_tok = load_backbone(ModelConfig(backbone=str(tmp_path / family)), 32, progress=False)
    assert type(loaded) is type(model)
    text = "name[The Eagle] | eatType[pub] => The Eagle is a pub ."
    assert loaded_tok(text, add_special_tokens=False)["input_ids"] == tok(text, add_special_tokens=False)["input_ids"]
    ids = torch.randint(0, len(tok), (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=ids).logits, model(input_ids=ids).logits, atol=0, rtol=0)


@pytest.mark.parametrize("dtype,bits,expected_bits", [("bfloat16", 32, 16), ("float16", 32, 16),
                                                      ("float32", 16, 16), ("float32", 8, 8),
                                                      ("bfloat16", 8, 8)])
def test_dtype_and_activation_bits_set_the_bytes_sent(tok, dtype, bits, expected_bits):
    cfg = engine_cfg(dtype=dtype, activation_bits=bits)
    base = tiny("llama", tok)
    eng = SplitFedEngine(cfg, model=base, tokenizer=tok, progress=False)
    assert next(base.parameters()).dtype == torch.float32  # the caller's model is not converted in place
    assert next(eng.base.parameters()).dtype == getattr(torch, dtype) and eng.wire_bits == expected_bits
    eng.reset(0)
    out = eng.run_round(1, 2)
    act_bits, _, lora_bits = payload_bits(eng.shape, 1, 2, cfg)
    b, n, d = cfg.training.batch_size, cfg.training.seq_len, eng.shape.n_embd
    scales = b * n * 32 if expected_bits == 8 else 0
    assert out.measured["activation_bytes"] * 8 == act_bits == b * n * d * expected_bits + scales
    assert out.measured["gradient_bytes"] == out.measured["activation_bytes"]
    assert out.measured["lora_bytes"] * 8 == lora_bits
    assert math.isfinite(out.train_loss) and math.isfinite(out.val_loss)


def test_wire_send_quantises_like_the_payload_says():
    x = torch.randn(4, 6, 32, generator=torch.Generator().manual_seed(0)) * torch.linspace(0.01, 10, 32)
    same, n32 = send(x, 32)
    assert same is not None and torch.equal(same, x) and n32 == x.numel() * 4
    half, n16 = send(x, 16)
    assert n16 == x.numel() * 2 and torch.equal(half, x.to(torch.bfloat16).float()) and not torch.equal(half, x)
    q8, n8 = send(x, 8)
    assert n8 == x.numel() + 4 * 6 * 4  # int8 codes + one fp32 scale per token
    step = x.abs().amax(-1, keepdim=True) / 127
    assert bool(((q8 - x).abs() <= step / 2 + 1e-6).all()) and not torch.equal(q8, x)
    assert len(torch.unique(torch.round(q8[0, 0] / step[0, 0]))) > 10
    _, per_tensor = send(x, 8, per_row=False)
    assert per_tensor == x.numel() + 4


def test_quantised_cut_changes_training_but_stays_deterministic(tok):
    base = tiny("gpt2", tok)

    def one_round(bits: int) -> tuple[float, float]:
        eng = SplitFedEngine(engine_cfg(activation_bits=bits), model=base, tokenizer=tok, progress=False)
        eng.reset(0)
        out = eng.run_round(1, 2)
        return out.train_loss, out.val_loss

    full, q8, q8_again = one_round(32), one_round(8), one_round(8)
    assert q8 == q8_again  # same seed, same result
    assert q8[0] != full[0] and q8[1] != full[1]  # the server trained on the dequantised activations


def test_hub_name_is_read_from_the_hugging_face_cache_when_offline(tok, tmp_path, monkeypatch):
    from huggingface_hub import constants

    repo = tmp_path / "hub" / "models--local-org--tiny-llama"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abcd")
    snapshot = repo / "snapshots" / "0123abcd"
    model = tiny("llama", tok, seed=5)
    model.save_pretrained(snapshot)
    tok.save_pretrained(snapshot)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded, _ = load_backbone(ModelConfig(backbone="local-org/tiny-llama"), 32, progress=False)
    ids = torch.randint(0, len(tok), (1, 10), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=ids).logits, model(input_ids=ids).logits, atol=0, rtol=0)

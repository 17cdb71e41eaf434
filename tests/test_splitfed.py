"""Split-federated LoRA engine: split equivalence, FedAvg, ownership moves, rank resize, payloads, determinism."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from fedsllm_env.config import FedsLLMConfig, ModelConfig, TrainingConfig, WirelessConfig
from fedsllm_env.delay import payload_bits
from fedsllm_env.splitfed import SplitFedEngine
from fedsllm_env.splitfed.lora import fedavg, resize_pair
from fedsllm_env.splitfed.model import build_random_gpt2, load_backbone
from fedsllm_env.splitfed.tokenizer import default_word_tokenizer

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.filterwarnings("ignore:dataset ")]


def tiny_cfg(k: int = 3, **training) -> FedsLLMConfig:
    t = dict(batch_size=4, seq_len=32, local_iterations=2, learning_rate=5e-3, num_train_samples=160,
             num_val_samples=16, val_batches=2)
    t.update(training)
    return FedsLLMConfig(model=ModelConfig(ranks=(1, 2, 4), initial_rank=2, initial_split=1),
                         training=TrainingConfig(**t), wireless=WirelessConfig(num_clients=k))


@pytest.fixture(scope="module")
def tok():
    return default_word_tokenizer()


@pytest.fixture(scope="module")
def base(tok):
    return build_random_gpt2(tok, n_layer=3, n_embd=32, n_head=4, n_positions=64, seed=7)


def make_engine(base, tok, k: int = 3, **training) -> SplitFedEngine:
    return SplitFedEngine(tiny_cfg(k, **training), model=base, tokenizer=tok)


def test_fresh_lora_leaves_logits_unchanged(base, tok):
    eng = make_engine(base, tok)
    eng.reset(0)
    ids = eng.val_batches[0][0]
    with torch.no_grad():
        torch.testing.assert_close(eng.model(ids), base(input_ids=ids).logits, atol=1e-6, rtol=0)
    assert all(int(torch.count_nonzero(p)) == 0 for n, p in eng.model.client_blocks[0].named_parameters()
               if "lora_B" in n)


def _all_copies(model, j):
    """Every copy of block j's adapter: the K clients' and the server's, as lists of tensors by name."""
    return [{n: p.detach().clone() for n, p in model._block(owner, j).items()}
            for owner in range(model.num_clients + 1)]


def _assert_common(model):
    for j in range(model.n_layer):
        copies = _all_copies(model, j)
        for other in copies[1:]:
            for name, value in copies[0].items():
                assert torch.equal(other[name], value), f"block {j} {name} differs between copies"


def test_every_copy_starts_from_one_global_adapter(base, tok):
    """FedAvg broadcasts ONE initial model: after reset every client and the server hold the same adapters
    (A random and not zero, B = 0), at any cut and rank, and the client copies stay equal after each FedAvg."""
    eng = make_engine(base, tok)
    for split, rank in [(1, 2), (2, 4)]:
        eng.reset(3, split=split, rank=rank)
        _assert_common(eng.model)
        a = [p for n, p in eng.model.client_blocks[0].named_parameters() if "lora_A" in n]
        assert a and all(float(p.abs().sum()) > 0 for p in a)
    eng.reset(3, split=1, rank=2)
    for split, rank in [(1, 2), (2, 2), (2, 4), (1, 1)]:
        eng.run_round(split, rank)
        for j in range(split):  # client-side blocks: equal on every client after FedAvg
            clients = _all_copies(eng.model, j)[:-1]
            for other in clients[1:]:
                for name, value in clients[0].items():
                    assert torch.equal(other[name], value)


def test_common_start_keeps_split_equal_to_unsplit(base, tok):
    """The common start does not change the model's function: a fresh adapter (B = 0) is the backbone at every
    cut, and after a round the split forward through any client equals the unsplit peft model."""
    eng = make_engine(base, tok)
    eng.reset(0, split=2, rank=2)
    eng.run_round(2, 2)
    ids = eng.val_batches[0][0]
    owned = eng.model.owned_state()
    eng.model.load_server_blocks(owned)  # the server copy now holds the global adapters of every block
    with torch.no_grad():
        unsplit = eng.model.inner(input_ids=ids).logits
        for k in range(eng.num_clients):
            torch.testing.assert_close(eng.model(ids, client=k), unsplit, atol=1e-5, rtol=1e-5)


# ---- FedAvg -----------------------------------------------------------------------------------------------
def test_fedavg_identity_and_one_hot_weights():
    gen = torch.Generator().manual_seed(0)
    s1 = {"a": torch.randn(3, 4, generator=gen), "b": torch.randn(5, generator=gen)}
    s2 = {k: torch.randn(v.shape, generator=gen) for k, v in s1.items()}
    same = fedavg([s1, s1, s1], [3, 1, 7])
    for k in s1:
        torch.testing.assert_close(same[k], s1[k], atol=1e-7, rtol=0)
    first = fedavg([s1, s2], [1, 0])
    for k in s1:
        assert torch.equal(first[k], s1[k])
    mean = fedavg([s1, s2], [1, 3])
    torch.testing.assert_close(mean["a"], 0.25 * s1["a"] + 0.75 * s2["a"])
    with pytest.raises(ValueError, match="weights"):
        fedavg([s1, s2], [1, -1])
    with pytest.raises(ValueError, match="one weight per state"):
        fedavg([s1, s2], [1])


# ---- payloads -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("split,rank", [(1, 1), (2, 4)])
def test_measured_payloads_equal_delay_model(base, tok, split, rank):
    eng = make_engine(base, tok, local_iterations=1)
    eng.reset(0)
    out = eng.run_round(split, rank)
    act_bits, label_bits, lora_bits = payload_bits(eng.shape, split, rank, eng.cfg)
    m = out.measured
    assert m["activation_bytes"] * 8 == act_bits
    assert m["gradient_bytes"] == m["activation_bytes"]
    assert m["lora_bytes"] * 8 == lora_bits
    assert m["label_tokens"] * math.ceil(math.log2(eng.shape.vocab_size)) == label_bits
    assert m["label_tokens"] == eng.cfg.training.batch_size * eng.cfg.training.seq_len
    assert m["wall_s"] >= m["train_s"] > 0
    assert out.round_index == 1 and eng.current_split == split and eng.current_rank == rank


# ---- split / rank changes ---------------------------------------------------------------------------------
def test_split_change_keeps_function(base, tok):
    eng = make_engine(base, tok)
    eng.reset(0, split=1, rank=2)
    eng.run_round(1, 2)
    eng.run_round(2, 2)  # blocks move to the clients, train there
    ids = eng.val_batches[0][0]
    eng.model.eval()
    with torch.no_grad():
        before = eng.model(ids)
        assert eng.model.set_split(1, eng.data_sizes.tolist()) == [1]
        after_down = eng.model(ids)
        assert eng.model.set_split(2, eng.data_sizes.tolist()) == [1]
        after_up = [eng.model(ids, client=k) for k in range(eng.num_clients)]
    torch.testing.assert_close(after_down, before, atol=1e-6, rtol=1e-5)
    for logits in after_up:
        torch.testing.assert_close(logits, before, atol=1e-6, rtol=1e-5)


def test_resize_grow_exact_and_shrink_eckart_young():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(6, 20, generator=gen, dtype=torch.float64), torch.randn(30, 6, generator=gen,
                                                                                dtype=torch.float64)
    prod = b @ a
    a2, b2 = resize_pair(a, b, 9, gen)
    assert a2.shape == (9, 20) and b2.shape == (30, 9)
    torch.testing.assert_close(b2 @ a2, prod, atol=1e-12, rtol=0)
    assert float(a2[6:].abs().min()) > 0  # fresh random rows: the new directions can learn
    assert torch.equal(b2[:, 6:], torch.zeros(30, 3, dtype=b2.dtype)) and torch.equal(a2[:6], a)
    s = torch.linalg.svdvals(prod)
    for r in (1, 3, 5):
        a3, b3 = resize_pair(a, b, r, gen)
        assert a3.shape == (r, 20) and b3.shape == (30, r)
        err = torch.linalg.norm(prod - b3 @ a3)
        assert float(err) == pytest.approx(float(s[r:].pow(2).sum().sqrt()), rel=1e-9)
        scaling = 2.0  # the delta scaling * B @ A: error scales with the rank-independent scaling
        assert float(torch.linalg.norm(scaling * (prod - b3 @ a3))) == pytest.approx(2.0 * float(err))
    with pytest.raises(ValueError, match="rank must be >= 1"):
        resize_pair(a, b, 0, gen)


def test_rank_change_in_engine(base, tok):
    eng = make_engine(base, tok)
    eng.reset(0, split=1, rank=2)
    eng.run_round(1, 2)
    ids = eng.val_batches[0][0]
    eng.model.eval()
    with torch.no_grad():
        before = eng.model(ids)
        eng.model.set_rank(4, torch.Generator().manual_seed(5))  # growing keeps the function
        torch.testing.assert_close(eng.model(ids), before, atol=1e-6, rtol=1e-5)
    assert eng.model.rank == 4
    # shrinking a fresh (B = 0) adapter must not kill it: training still changes the loss
    eng.reset(0, split=1, rank=4)
    v0 = eng.validation_loss()
    out = eng.run_round(1, 1)
    assert out.measured["rank_changed"] == 1.0 and eng.current_rank == 1
    assert out.val_loss != v0
    b_norm = sum(float(p.detach().abs().sum()) for n, p in eng.model.client_blocks[0].named_parameters() if "lora_B" in n)
    assert b_norm > 0


# ---- determinism ---------------------------------------------------------------------------------------------
def _losses(eng: SplitFedEngine, seed: int) -> list[float]:
    out = [eng.reset(seed)]
    for split, rank in [(1, 2), (2, 2), (2, 4), (1, 1)]:
        o = eng.run_round(split, rank)
        out += [o.train_loss, o.val_loss]
    return out


def test_same_seed_bit_identical_and_global_rng_untouched(base, tok):
    state = torch.random.get_rng_state()
    a = _losses(make_engine(base, tok), seed=3)
    b = _losses(make_engine(base, tok), seed=3)
    c = _losses(make_engine(base, tok), seed=4)
    assert a == b
    assert a[0] == c[0]  # the backbone's loss does not depend on the seed
    assert a[1:] != c[1:]
    assert torch.equal(torch.random.get_rng_state(), state)


# ---- errors ----------------------------------------------------------------------------------------------------
def test_bad_split_rank_and_usage_errors(base, tok):
    eng = make_engine(base, tok)
    with pytest.raises(RuntimeError, match="reset"):
        eng.run_round(1, 2)
    eng.reset(0)
    for bad in (0, 3, -1, True, 1.5):
        with pytest.raises(ValueError, match=r"split must be an int in \[1, 2\]"):
            eng.run_round(bad, 2)
    for bad in (0, -2, False):
        with pytest.raises(ValueError, match="rank must be an int >= 1"):
            eng.run_round(1, bad)
    with pytest.raises(ValueError, match="both model and tokenizer"):
        SplitFedEngine(tiny_cfg(), model=base)


def test_missing_backbone_and_data_file(tmp_path, base, tok):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_backbone(ModelConfig(backbone=str(tmp_path / "no-such-model")), 32)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        make_engine(base, tok, dataset=str(tmp_path / "missing.jsonl"))


def test_engine_on_local_jsonl(tmp_path, base, tok):
    from fedsllm_env.splitfed.data import generate_e2e

    path = tmp_path / "e2e.jsonl"
    rows = [{"mr": e.prompt[:-3], "ref": e.text[len(e.prompt) + 1:]} for e in generate_e2e(80, 5)]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    with pytest.warns(UserWarning, match=r"dataset '.*e2e\.jsonl': training examples: .*dropped: the prompt alone "
                                         r"fills seq_len=32"):  # a user's file: something to act on, a warning
        eng = make_engine(base, tok, dataset=str(path), num_train_samples=60)
    # 80 examples: validation 80 // 5 = 16, training capped at 60, less those whose prompt fills seq_len=32
    assert eng.data_report["train_dropped_prompt"] > 0
    assert int(eng.data_sizes.sum()) == 60 - eng.data_report["train_dropped_prompt"]
    assert sum(len(ids) for ids, _ in eng.val_batches) == 8  # val_batches=2 of b=4
    assert np.isfinite(eng.reset(0))


def test_data_notes_warn_for_user_files_and_stay_quiet_for_the_builtin_data(caplog, monkeypatch):
    """Truncated examples of the package's own data at the default seq_len are one INFO record per process (no
    warning on every real-mode command); a user's file, or the built-in data at another seq_len, warns."""
    import warnings

    from fedsllm_env.splitfed import engine

    monkeypatch.setattr(engine, "_NOTED", set())
    note = "training examples: 11 truncated at seq_len=80 (1989 kept)"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails
        with caplog.at_level("INFO", logger="fedsllm_env.splitfed.engine"):
            engine.report_data_notes("e2e-synthetic", engine.DEFAULT_SEQ_LEN, [note, ""])
            engine.report_data_notes("e2e-synthetic", engine.DEFAULT_SEQ_LEN, [note])
            engine.report_data_notes("e2e-synthetic", engine.DEFAULT_SEQ_LEN, ["", ""])
    assert [r.getMessage().split(" (the package")[0] for r in caplog.records] == [f"dataset 'e2e-synthetic': {note}"]
    with pytest.warns(UserWarning, match=r"dataset 'my\.jsonl': training examples: 11 truncated"):
        engine.report_data_notes("my.jsonl", engine.DEFAULT_SEQ_LEN, [note])
    with pytest.warns(UserWarning, match=r"dataset 'e2e-synthetic': training examples: 3 truncated at seq_len=24"):
        engine.report_data_notes("e2e-synthetic", 24, ["training examples: 3 truncated at seq_len=24 (9 kept)"])


# ---- training --------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_five_clients_three_rounds_validation_loss_decreases(tok):
    model = build_random_gpt2(tok, n_layer=2, n_embd=32, n_head=4, n_positions=64, seed=11)
    eng = SplitFedEngine(tiny_cfg(5, learning_rate=1e-2, num_train_samples=200, partition="dirichlet"),
                         model=model, tokenizer=tok)
    vals = [eng.reset(0)] + [eng.run_round(1, 4).val_loss for _ in range(3)]
    assert all(b < a for a, b in zip(vals, vals[1:])), vals


@pytest.mark.slow
def test_tiny_backbone_pretrained_once_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("FEDSLLM_CACHE_DIR", str(tmp_path))
    m = ModelConfig(tiny_n_layer=2, tiny_n_embd=32, tiny_n_head=2, tiny_pretrain_steps=2)
    model, tok = load_backbone(m, 32, progress=False)
    dirs = [p for p in tmp_path.iterdir()]
    assert len(dirs) == 1 and dirs[0].name.startswith("tiny-gpt2-") and (dirs[0] / "config.json").is_file()
    assert model.config.n_layer == 2 and model.config.vocab_size == len(tok)
    stamp = (dirs[0] / "config.json").stat().st_mtime_ns
    model2, _ = load_backbone(m, 32, progress=False)  # reused, not rebuilt
    assert (dirs[0] / "config.json").stat().st_mtime_ns == stamp
    for p, q in zip(model.parameters(), model2.parameters()):
        assert torch.equal(p, q)

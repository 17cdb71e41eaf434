"""Heterogeneous clients in the real split-fed engine (issue 21, step 1): a cut c_k and a LoRA rank r_k per
client. The homogeneous profile is bit-identical to the homogeneous engine; split == unsplit for each client of a
mixed profile in every tiny family; the aggregation rules (HetLoRA zero padding, FlexLoRA SVD) and the truncation
against hand computations; the end-of-round aggregation over every block's holders; errors for bad profiles."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from fedsllm_env.config import FedsLLMConfig, ModelConfig, TrainingConfig, WirelessConfig
from fedsllm_env.delay import payload_bits
from fedsllm_env.errors import ConfigError, InfeasibleDecisionError
from fedsllm_env.splitfed import SplitFedEngine
from fedsllm_env.splitfed.hetero import (HeteroSplitLoRAModel, aggregate_block, check_aggregation, svd_aggregate,
                                         truncate_pair, zero_pad_aggregate)
from fedsllm_env.splitfed.lora import block_lora_params, inject_lora, make_lora_config
from fedsllm_env.splitfed.model import build_random_gpt2, build_random_model
from fedsllm_env.splitfed.split import lm_loss
from fedsllm_env.splitfed.tokenizer import default_word_tokenizer
from fedsllm_env.splitfed.zoo import TINY_FAMILIES, tiny_config

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.filterwarnings("ignore:dataset ")]

K = 3


@pytest.fixture(scope="module")
def tok():
    return default_word_tokenizer()


@pytest.fixture(scope="module")
def base(tok):
    return build_random_gpt2(tok, n_layer=4, n_embd=32, n_head=4, n_positions=64, seed=7)


def cfg(bits: int = 32, dropout: float = 0.1, **training) -> FedsLLMConfig:
    t = dict(batch_size=4, seq_len=32, local_iterations=2, learning_rate=5e-3, num_train_samples=160,
             num_val_samples=16, val_batches=2, partition="dirichlet", dirichlet_alpha=0.5)
    t.update(training)
    return FedsLLMConfig(model=ModelConfig(ranks=(1, 2, 4), initial_rank=2, initial_split=1, activation_bits=bits,
                                           lora_dropout=dropout),
                         training=TrainingConfig(**t), wireless=WirelessConfig(num_clients=K))


def engine(base, tok, bits: int = 32, dropout: float = 0.1, **kwargs) -> SplitFedEngine:
    return SplitFedEngine(cfg(bits, dropout), model=base, tokenizer=tok, **kwargs)


# ---- the homogeneous profile through the heterogeneous path ----------------------------------------------------
@pytest.mark.parametrize("rule,bits", [("zero_pad", 32), ("svd", 8)])
def test_homogeneous_profile_is_bit_identical_to_the_homogeneous_engine(base, tok, rule, bits):
    """Same losses, same global adapters and same client copies, round after round (dropout on, 8-bit wire)."""
    old = engine(base, tok, bits)
    new = engine(base, tok, bits, aggregation=rule)
    assert old.reset(5, split=2, rank=2) == new.reset(5, split=[2] * K, rank=[2] * K)
    assert new.heterogeneous and not old.heterogeneous
    for _ in range(2):
        a, b = old.run_round(2, 2), new.run_round([2] * K, np.array([2] * K))
        assert (a.train_loss, a.val_loss, a.round_index) == (b.train_loss, b.val_loss, b.round_index)
        for key in ("activation_bytes", "gradient_bytes", "lora_bytes", "rank_changed", "moved_blocks"):
            assert a.measured[key] == b.measured[key], key
        assert [b.measured[f"lora_bytes_{k}"] for k in range(K)] == [a.measured["lora_bytes"]] * K
        glob_old, glob_new = old.model.owned_state(), new.model.global_state()
        assert glob_old.keys() == glob_new.keys()
        assert all(torch.equal(glob_old[key], glob_new[key]) for key in glob_old)
        for k in range(K):
            c_old, c_new = old.model.client_state(k), new.model.client_state(k)
            assert c_old.keys() == c_new.keys() and all(torch.equal(c_old[x], c_new[x]) for x in c_old)
    assert new.current_profile == ((2,) * K, (2,) * K) == old.current_profile


# ---- split == unsplit for each client of a mixed profile, every family -------------------------------------------
def _randomise_every_copy(sm: HeteroSplitLoRAModel, seed: int) -> None:
    """Different random adapters on every client and on the MS (as in the middle of a round)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for owner in range(sm.num_clients + 1):
            for j in range(sm.n_layer):
                for p in sm.block_params(owner, j):
                    p.copy_(torch.randn(p.shape, generator=gen) * 0.1)


def _unsplit_reference(sm: HeteroSplitLoRAModel, base, k: int):
    """One whole peft model with client k's ranks: blocks < c_k at r_k holding client k's adapters, the others at
    r_g holding the MS's (peft's rank_pattern)."""
    ad = sm.adapter
    cfg = make_lora_config(sm.rank, sm.lora_scaling, 0.0, sm.targets, ad.blocks_path, ad.fan_in_fan_out)
    names = [f"{ad.blocks_path}.{j}.{t}" for j in range(sm.cuts[k]) for t in sm.targets]
    cfg.rank_pattern = {re.escape(n): sm.ranks[k] for n in names}
    cfg.alpha_pattern = {re.escape(n): sm.lora_scaling * sm.ranks[k] for n in names}
    ref = inject_lora(base, cfg)
    blocks = ad.blocks(ref.get_base_model())
    with torch.no_grad():
        for j in range(sm.n_layer):
            owner = k if j < sm.cuts[k] else sm.num_clients
            mine, theirs = sm._block(owner, j), block_lora_params(blocks[j])
            assert mine.keys() == theirs.keys()
            for n, p in theirs.items():
                assert p.shape == mine[n].shape, (j, n)
                p.copy_(mine[n])
    return ref, blocks


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_split_equals_unsplit_for_each_client_of_a_mixed_profile(family, tok):
    base = build_random_model(tiny_config(family, len(tok), n_layer=4, pad_id=tok.pad_token_id,
                                          eos_id=tok.eos_token_id), seed=7)
    cuts, ranks = (1, 3, 2), (1, 4, 2)
    sm = HeteroSplitLoRAModel(base, cuts, ranks, None, 2.0, 0.0, ("all",), torch.Generator().manual_seed(0))
    assert sm.rank == 4 and [sm.block_params(k, 0)[0].shape[0] for k in range(K)] == list(ranks)
    _randomise_every_copy(sm, 1)
    sm.eval()
    gen = torch.Generator().manual_seed(2)
    ids = torch.randint(0, len(tok), (3, 16), generator=gen)
    labels = ids.clone()
    labels[:, :4] = -100
    for k in range(K):
        ref, ref_blocks = _unsplit_reference(sm, base, k)
        full = lm_loss(ref(input_ids=ids).logits, labels)
        full.backward()
        for p in list(sm.parameters()):
            p.grad = None
        act = sm.client_forward(k, ids)
        sent = act.detach().requires_grad_(True)
        loss = lm_loss(sm.server_logits(sent, client=k), labels)
        loss.backward()
        act.backward(sent.grad)
        assert loss.item() == pytest.approx(full.item(), abs=1e-6)
        for j in range(sm.n_layer):
            owner = k if j < cuts[k] else K
            want = block_lora_params(ref_blocks[j])
            for n, p in sm._block(owner, j).items():
                assert want[n].grad is not None and float(want[n].grad.abs().sum()) > 0
                torch.testing.assert_close(p.grad, want[n].grad, atol=1e-6, rtol=1e-5)
        for other in range(K):  # nobody else's copy was touched
            blocks = range(sm.n_layer) if other != k else range(cuts[k], sm.n_layer)
            assert all(p.grad is None for j in blocks for p in sm.block_params(other, j))
        assert all(p.grad is None for j in range(cuts[k]) for p in sm.block_params(K, j))


# ---- aggregation rules by hand ------------------------------------------------------------------------------------
def _pairs():
    a1 = torch.tensor([[1.0, 2.0, 0.0]])                           # rank 1, d_in = 3
    b1 = torch.tensor([[1.0], [0.0], [2.0], [-1.0]])               # d_out = 4
    a2 = torch.tensor([[0.0, 1.0, 1.0], [2.0, 0.0, -1.0]])          # rank 2
    b2 = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 2.0]])
    return [(a1, b1), (a2, b2)]


def test_zero_pad_rule_by_hand():
    (a1, b1), (a2, b2) = _pairs()
    a, b = zero_pad_aggregate([(a1, b1), (a2, b2)], [1, 3], 2)
    # client 1 padded: A1 = [[1, 2, 0], [0, 0, 0]], B1 = [[1, 0], [0, 0], [2, 0], [-1, 0]]; weights 1/4, 3/4
    want_a = torch.tensor([[0.25 * 1 + 0.75 * 0, 0.25 * 2 + 0.75 * 1, 0.75 * 1],
                           [0.75 * 2, 0.0, 0.75 * -1]])
    want_b = torch.tensor([[0.25 + 0.75, 0.0], [0.0, 0.75], [0.5 + 0.75, 0.75], [-0.25, 1.5]])
    torch.testing.assert_close(a, want_a, atol=1e-7, rtol=0)
    torch.testing.assert_close(b, want_b, atol=1e-7, rtol=0)
    a3, b3 = zero_pad_aggregate([(a1, b1), (a2, b2)], [1, 3], 4)  # a global rank above every client's
    assert a3.shape == (4, 3) and b3.shape == (4, 4)
    torch.testing.assert_close(a3[:2], want_a, atol=1e-7, rtol=0)
    torch.testing.assert_close(b3[:, :2], want_b, atol=1e-7, rtol=0)
    assert not a3[2:].any() and not b3[:, 2:].any()


def test_svd_rule_by_hand():
    (a1, b1), (a2, b2) = _pairs()
    w = np.array([1.0, 3.0]) / 4.0
    prod = w[0] * (b1.double() @ a1.double()).numpy() + w[1] * (b2.double() @ a2.double()).numpy()
    u, s, vh = np.linalg.svd(prod)
    rho = np.sqrt(w[0] * 5.0 + w[1] * (2.0 + 5.0) / 2.0)  # weighted mean squared row norm of the A's
    for rank in (1, 2):
        a, b = svd_aggregate([(a1, b1), (a2, b2)], [1, 3], rank)
        assert a.shape == (rank, 3) and b.shape == (4, rank) and a.dtype == torch.float32
        best = (u[:, :rank] * s[:rank]) @ vh[:rank]
        np.testing.assert_allclose((b.double() @ a.double()).numpy(), best, atol=1e-6)
        np.testing.assert_allclose(np.linalg.norm(a.double().numpy(), axis=1), np.full(rank, rho), rtol=1e-6)
        np.testing.assert_allclose(np.linalg.norm(b.double().numpy(), axis=0), s[:rank] / rho, rtol=1e-6)
    # rank 3 = min(d_out, d_in): the weighted sum of products itself (rank 3 here)
    a, b = svd_aggregate([(a1, b1), (a2, b2)], [1, 3], 3)
    np.testing.assert_allclose((b.double() @ a.double()).numpy(), prod, atol=1e-6)
    # the SVD rule keeps the sum of products; zero padding averages A and B apart (not the same thing)
    za, zb = zero_pad_aggregate([(a1, b1), (a2, b2)], [1, 3], 2)
    assert not np.allclose((zb.double() @ za.double()).numpy(), prod, atol=1e-3)


def test_truncation_is_the_best_rank_r_approximation():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(4, 7, generator=gen, dtype=torch.float64), torch.randn(9, 4, generator=gen,
                                                                               dtype=torch.float64)
    prod = (b @ a).numpy()
    u, s, vh = np.linalg.svd(prod)
    for r in (1, 2, 3):
        ar, br = truncate_pair(a, b, r)
        assert ar.shape == (r, 7) and br.shape == (9, r)
        np.testing.assert_allclose((br @ ar).numpy(), (u[:, :r] * s[:r]) @ vh[:r], atol=1e-10)
        err = np.linalg.norm(prod - (br @ ar).numpy())
        assert err == pytest.approx(np.sqrt((s[r:] ** 2).sum()), rel=1e-9)  # Eckart-Young
        for _ in range(5):  # no other rank-r product does better
            x, y = torch.randn(9, r, generator=gen, dtype=torch.float64), torch.randn(r, 7, generator=gen,
                                                                                     dtype=torch.float64)
            assert np.linalg.norm(prod - (x @ y).numpy()) > err
    a4, b4 = truncate_pair(a, b, 4)
    assert torch.equal(a4, a) and torch.equal(b4, b)
    with pytest.raises(ValueError, match=r"truncate a rank-4 adapter to a rank in \[1, 4\]"):
        truncate_pair(a, b, 5)


def test_same_ranks_aggregate_by_plain_fedavg_under_either_rule():
    (a1, b1), _ = _pairs()
    s1 = {"m.lora_A.default.weight": a1, "m.lora_B.default.weight": b1}
    s2 = {"m.lora_A.default.weight": 3 * a1 + 1, "m.lora_B.default.weight": -b1}
    for rule in ("zero_pad", "svd"):
        out = aggregate_block([s1, s2], [1, 1], 1, rule)
        torch.testing.assert_close(out["m.lora_A.default.weight"], 2 * a1 + 0.5)
        assert not out["m.lora_B.default.weight"].any()
    with pytest.raises(ConfigError, match=r"aggregation must be one of \['zero_pad', 'svd'\], got 'mean'"):
        check_aggregation("mean")


# ---- the engine's end of round: holders, weights, truncation ------------------------------------------------------
@pytest.mark.parametrize("rule", ["zero_pad", "svd"])
def test_engine_aggregates_every_block_over_its_holders(base, tok, rule):
    """Block j's global = the rule over the clients with j < c_k (weight n_k) and the MS copy (weight: the data of
    the clients with c_k <= j); every client then holds the global cut to r_k: its first r_k components under
    "zero_pad" (HetLoRA), its best rank-r_k approximation under "svd"."""
    eng = engine(base, tok, dropout=0.0, aggregation=rule)
    cuts, ranks = [1, 3, 2], [2, 1, 4]
    eng.reset(0, split=cuts, rank=ranks)
    sm = eng.model
    n = eng.data_sizes.astype(float)
    captured = {}
    original = sm.fedavg_clients

    def spy(weights, *args, **kwargs):
        captured["copies"] = [{j: {p: t.detach().double().clone() for p, t in sm._block(o, j).items()}
                               for j in range(sm.n_layer)} for o in range(K + 1)]
        return original(weights, *args, **kwargs)

    sm.fedavg_clients = spy
    out = eng.run_round(cuts, ranks)
    copies = captured["copies"]
    glob = sm.global_state()
    for j in range(sm.n_layer):
        holders = [k for k in range(K) if j < cuts[k]]
        served = [k for k in range(K) if j >= cuts[k]]
        states = [copies[k][j] for k in holders] + ([copies[K][j]] if served else [])
        w = np.array([n[k] for k in holders] + ([n[served].sum()] if served else []))
        w = w / w.sum()
        for prefix in sorted({p.split(".lora_")[0] for p in states[0]}):
            an, bn = f"{prefix}.lora_A.default.weight", f"{prefix}.lora_B.default.weight"
            got_a, got_b = glob[f"{j}/{an}"].double(), glob[f"{j}/{bn}"].double()
            if all(st[an].shape[0] == 4 for st in states):  # all at r_g: plain FedAvg of A and of B
                want_a = sum(wi * st[an] for wi, st in zip(w, states))
                want_b = sum(wi * st[bn] for wi, st in zip(w, states))
                torch.testing.assert_close(got_a, want_a, atol=1e-6, rtol=1e-5)
                torch.testing.assert_close(got_b, want_b, atol=1e-6, rtol=1e-5)
            elif rule == "zero_pad":
                pad_a = [torch.cat([st[an], st[an].new_zeros(4 - st[an].shape[0], st[an].shape[1])]) for st in states]
                pad_b = [torch.cat([st[bn], st[bn].new_zeros(st[bn].shape[0], 4 - st[bn].shape[1])], 1)
                         for st in states]
                torch.testing.assert_close(got_a, sum(wi * x for wi, x in zip(w, pad_a)), atol=1e-6, rtol=1e-5)
                torch.testing.assert_close(got_b, sum(wi * x for wi, x in zip(w, pad_b)), atol=1e-6, rtol=1e-5)
            else:
                prod = sum(wi * (st[bn] @ st[an]) for wi, st in zip(w, states)).numpy()
                u, s, vh = np.linalg.svd(prod)
                np.testing.assert_allclose((got_b @ got_a).numpy(), (u[:, :4] * s[:4]) @ vh[:4], atol=1e-6)
            for k in range(K):  # zero_pad: the global's first r_k components; svd: its best rank-r_k approximation
                ca, cb = sm._block(k, j)[an].detach().double(), sm._block(k, j)[bn].detach().double()
                r = ranks[k]
                assert ca.shape[0] == r
                if rule == "zero_pad":
                    torch.testing.assert_close(ca, got_a[:r], atol=1e-6, rtol=1e-5)
                    torch.testing.assert_close(cb, got_b[:, :r], atol=1e-6, rtol=1e-5)
                else:
                    gu, gs, gvh = np.linalg.svd((got_b @ got_a).numpy())
                    np.testing.assert_allclose((cb @ ca).numpy(), (gu[:, :r] * gs[:r]) @ gvh[:r], atol=1e-6)
    for k in range(K):  # the upload of client k is its blocks < c_k at r_k, as the delay model charges it
        assert out.measured[f"lora_bytes_{k}"] * 8 == payload_bits(eng.shape, cuts[k], ranks[k], eng.cfg)[2]
    assert out.measured["lora_bytes"] == max(out.measured[f"lora_bytes_{k}"] for k in range(K))


def test_profile_changes_keep_the_global_model(base, tok):
    """A cut change moves no tensor (the global model is unchanged); a larger global rank keeps it exactly."""
    eng = engine(base, tok, dropout=0.0, aggregation="svd")
    eng.reset(1, split=[1, 2, 3], rank=[1, 2, 2])
    eng.run_round([1, 2, 3], [1, 2, 2])
    ids = eng.val_batches[0][0]
    with torch.no_grad():
        before = eng.model(ids, client=None)
        info = eng._apply_profile((3, 1, 2), (1, 2, 2))
        assert info == {"rank_changed": 0.0, "moved_blocks": 2.0}
        assert torch.equal(eng.model(ids, client=None), before)
        info = eng._apply_profile((3, 1, 2), (1, 4, 2))  # r_g grows 2 -> 4: zero B columns, the same function
        assert info["rank_changed"] == 1.0 and eng.current_rank == 4
        torch.testing.assert_close(eng.model(ids, client=None), before, atol=1e-6, rtol=1e-5)
    out = eng.run_round((3, 1, 2), (1, 4, 2))
    assert np.isfinite(out.val_loss) and eng.current_profile == ((3, 1, 2), (1, 4, 2))


def test_a_rank_change_resets_only_the_adam_state_of_owners_whose_rank_changed(base, tok):
    eng = engine(base, tok, dropout=0.0)
    eng.reset(1, split=[1, 2, 3], rank=[1, 2, 2])
    eng.run_round([1, 2, 3], [1, 2, 2])
    opts = eng.client_opts + [eng.server_opt]

    def adam(owner):
        return {j: [{k: v.clone() for k, v in opts[owner].state[p].items()} if p in opts[owner].state else None
                    for p in eng.model.block_params(owner, j)] for j in range(4)}

    before = [adam(o) for o in range(K + 1)]
    values = [[p.detach().clone() for p in eng.model.client_params(k)] for k in range(K)]
    info = eng._apply_profile((1, 2, 3), (1, 2, 1))  # client 2: 2 -> 1; r_g stays 2
    assert info["rank_changed"] == 1.0
    opts = eng.client_opts + [eng.server_opt]
    after = [adam(o) for o in range(K + 1)]
    for owner, held in [(0, [0]), (1, [0, 1]), (K, [1, 2, 3])]:  # rank kept: state carried to the new parameters
        for j in held:
            assert all(s is not None for s in before[owner][j])
            for s_old, s_new in zip(before[owner][j], after[owner][j]):
                assert s_new is not None and all(torch.equal(s_old[k], s_new[k]) for k in s_old)
    assert all(s is None for j in range(4) for s in after[2][j])  # client 2 changed rank: fresh Adam
    for k in (0, 1):  # and the kept owners' adapters are the same numbers
        assert all(torch.equal(a, b) for a, b in zip(values[k], eng.model.client_params(k)))
    out = eng.run_round((1, 2, 3), (1, 2, 1))
    assert np.isfinite(out.val_loss)


def test_mixed_profile_is_deterministic_and_leaves_the_global_rng(base, tok):
    def run(seed):
        eng = engine(base, tok, aggregation="svd")
        out = [eng.reset(seed, split=[1, 3, 2], rank=[1, 4, 2])]
        for cuts, ranks in [([1, 3, 2], [1, 4, 2]), ([2, 2, 1], [1, 4, 2]), ([2, 2, 1], [2, 2, 1])]:
            o = eng.run_round(cuts, ranks)
            out += [o.train_loss, o.val_loss]
        return out

    state = torch.random.get_rng_state()
    a, b, c = run(3), run(3), run(4)
    assert a == b and a[1:] != c[1:] and all(np.isfinite(a))
    assert a[2] < a[0] and a[4] < a[2] and a[6] < a[4]  # the validation loss falls round after round
    assert torch.equal(torch.random.get_rng_state(), state)


@pytest.mark.parametrize("family", ["llama", "opt"])
def test_engine_round_with_a_mixed_profile_for_other_families(family, tok):
    """A full round of each other family: finite losses, the validation loss moves, uploads as the delay model."""
    model = build_random_model(tiny_config(family, len(tok), n_layer=4, pad_id=tok.pad_token_id,
                                           eos_id=tok.eos_token_id), seed=3)
    eng = SplitFedEngine(cfg(dropout=0.0, local_iterations=1, num_train_samples=48, num_val_samples=8),
                         model=model, tokenizer=tok, progress=False, aggregation="svd")
    cuts, ranks = [3, 1, 2], [2, 4, 1]
    v0 = eng.reset(0, split=cuts, rank=ranks)
    out = eng.run_round(cuts, ranks)
    assert np.isfinite(out.train_loss) and np.isfinite(out.val_loss) and out.val_loss != v0
    for k in range(K):
        assert out.measured[f"lora_bytes_{k}"] * 8 == payload_bits(eng.shape, cuts[k], ranks[k], eng.cfg)[2]


# ---- errors -------------------------------------------------------------------------------------------------------
def test_bad_profiles_and_rules_raise_clear_errors(base, tok):
    with pytest.raises(ConfigError, match=r"aggregation must be one of \['zero_pad', 'svd'\], got 'flex'"):
        engine(base, tok, aggregation="flex")
    with pytest.raises(InfeasibleDecisionError, match=r"global rank 3 not in candidate ranks \(1, 2, 4\)"):
        engine(base, tok, global_rank=3)
    eng = engine(base, tok)
    cases = [(([1, 2], [1, 2, 2]), r"split must be a scalar or one per client, shape \(3,\), got shape \(2,\)"),
             (([1, 2, 2], [1, 2, 3]), r"client 2: rank 3 not in candidate ranks \(1, 2, 4\)"),
             (([0, 2, 4], [1, 2, 2]), r"client 0: split 0 outside \[1, 3\]; client 2: split 4 outside \[1, 3\]"),
             (([1.5, 2, 2], 2), r"split must hold integers")]
    for (cuts, ranks), msg in cases:
        with pytest.raises(InfeasibleDecisionError, match=msg):
            eng.reset(0, split=cuts, rank=ranks)
    eng.reset(0, split=2, rank=2)
    with pytest.raises(ValueError, match="need the heterogeneous mode: call reset"):
        eng.run_round([2, 2, 2], 2)
    eng.reset(0, split=[1, 2, 3], rank=2)
    for (cuts, ranks), msg in cases:
        with pytest.raises(InfeasibleDecisionError, match=msg):
            eng.run_round(cuts, ranks)
    capped = engine(base, tok, global_rank=2)
    with pytest.raises(ValueError, match=r"global_rank=2 < the largest client rank 4 of the profile \[1, 4, 2\]"):
        capped.reset(0, split=[1, 2, 3], rank=[1, 4, 2])
    capped.reset(0, split=[1, 2, 3], rank=[1, 1, 2])
    assert capped.current_rank == 2
    with pytest.raises(ValueError, match="global_rank=2 < the largest client rank 4"):
        capped.run_round([1, 2, 3], [4, 1, 1])

"""Guards on the split-federated engine's round: FedAvg, optimizer wiring, per-client data and steps.

Each test catches a plausible one-line bug that the end-to-end tests let through (checked by making
the change locally): FedAvg replaced by a copy of client 0 or unweighted, one optimizer shared by the
clients, the server stepping per micro-batch or on the summed (not mean) gradient, a learning rate or
weight decay not wired, every client drawing from the same shard.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedsllm_env.config import FedsLLMConfig, ModelConfig, TrainingConfig, WirelessConfig
from fedsllm_env.splitfed import SplitFedEngine
from fedsllm_env.splitfed.model import build_random_gpt2
from fedsllm_env.splitfed.tokenizer import default_word_tokenizer

K = 3


@pytest.fixture(scope="module")
def parts():
    tok = default_word_tokenizer()
    return build_random_gpt2(tok, n_layer=3, n_embd=32, n_head=4, n_positions=64, seed=7), tok


def _engine(parts, **training) -> SplitFedEngine:
    t = dict(batch_size=4, seq_len=32, local_iterations=2, learning_rate=3e-3, num_train_samples=200,
             num_val_samples=16, val_batches=1, partition="dirichlet", dirichlet_alpha=0.3)
    t.update(training)
    cfg = FedsLLMConfig(model=ModelConfig(ranks=(1, 2, 4), initial_rank=2, initial_split=2),
                        training=TrainingConfig(**t), wireless=WirelessConfig(num_clients=K))
    model, tok = parts
    return SplitFedEngine(cfg, model=model, tokenizer=tok, weight_decay=0.01)


def test_round_ends_with_the_data_weighted_fedavg_of_the_client_adapters(parts, one_torch_thread):
    """Catches: FedAvg replaced by client 0's copy, unweighted averaging, no broadcast."""
    eng = _engine(parts)
    eng.reset(0)
    sizes = eng.data_sizes.astype(float)
    assert len(set(sizes.tolist())) > 1  # unequal shards: weighted and plain means differ
    model = eng.model
    captured = []
    original = model.fedavg_clients

    def spy(weights, *args, **kwargs):
        captured.append(([model.client_state(k) for k in range(K)], list(weights)))
        return original(weights, *args, **kwargs)

    model.fedavg_clients = spy
    eng.run_round(2, 2)
    assert len(captured) == 1
    states, _ = captured[0]
    keys = list(states[0])
    assert any(not torch.equal(states[0][key], states[1][key]) for key in keys)  # clients trained apart
    w = sizes / sizes.sum()
    for key in keys:
        expected = sum(wk * st[key].double() for wk, st in zip(w, states)).float()
        for k in range(K):
            torch.testing.assert_close(model.client_state(k)[key], expected, atol=1e-6, rtol=1e-5)


def test_each_client_and_the_server_own_one_optimizer_with_the_configured_hyperparameters(parts, one_torch_thread):
    """Catches: one optimizer shared by the clients, a client optimizer over another client's adapters,
    the learning rate or weight decay not wired, server steps per micro-batch instead of per iteration."""
    eng = _engine(parts, local_iterations=3)
    eng.reset(1)
    model = eng.model
    ids = lambda params: {id(p) for p in params}  # noqa: E731
    assert len({id(o) for o in eng.client_opts}) == K and eng.server_opt not in eng.client_opts
    for k, opt in enumerate(eng.client_opts):
        group = opt.param_groups[0]
        assert ids(group["params"]) == ids(model.client_params(k))
        assert group["lr"] == pytest.approx(3e-3) and group["weight_decay"] == pytest.approx(0.01)
    server = eng.server_opt.param_groups[0]
    assert ids(server["params"]) == ids(model.server_params())
    assert server["lr"] == pytest.approx(3e-3) and server["weight_decay"] == pytest.approx(0.01)
    eng.run_round(2, 2)
    for k, opt in enumerate(eng.client_opts):
        own = [p for j in range(2) for p in model.block_params(k, j)]
        steps = {int(opt.state[p]["step"]) for p in own}
        assert steps == {3}  # one step per local iteration, on this client's own blocks
    server_own = [p for p in model.block_params(K, 2)]
    assert {int(eng.server_opt.state[p]["step"]) for p in server_own} == {3}


def test_server_steps_on_the_mean_gradient_over_the_clients(parts, one_torch_thread):
    """Catches: the server's accumulated gradient not divided by K (AdamW hides it in the losses)."""
    eng = _engine(parts, local_iterations=1)
    eng.reset(2)
    model = eng.model
    server_own = model.block_params(K, 2)
    summed, stepped = [], []
    last_client = eng.client_opts[K - 1]
    client_step, server_step = last_client.step, eng.server_opt.step

    def after_last_client(*a, **kw):
        summed.append([p.grad.clone() for p in server_own])
        return client_step(*a, **kw)

    def at_server_step(*a, **kw):
        stepped.append([p.grad.clone() for p in server_own])
        return server_step(*a, **kw)

    last_client.step = after_last_client
    eng.server_opt.step = at_server_step
    eng.run_round(2, 2)
    assert len(summed) == 1 and len(stepped) == 1
    assert sum(float(t.abs().sum()) for t in summed[0]) > 0  # (lora_A gets no gradient while B = 0)
    for total, used in zip(summed[0], stepped[0]):
        torch.testing.assert_close(used, total / K)


def test_every_client_trains_on_its_own_shard(parts):
    """Catches: every client sampling client 0's shard (or the whole training set)."""
    eng = _engine(parts)
    eng.reset(3)
    shards = [set(np.asarray(s).tolist()) for s in eng.shards]
    assert all(a.isdisjoint(b) for i, a in enumerate(shards) for b in shards[i + 1:])
    for k, sampler in enumerate(eng.samplers):
        assert set(sampler.indices.tolist()) == shards[k]
        assert sampler.batch_size == eng.cfg.training.batch_size

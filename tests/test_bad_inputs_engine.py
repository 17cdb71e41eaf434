"""Bad inputs of the real engine, table-driven: (input, expected error type, message fragment).

Backbones (unknown family, missing / offline hub names, folders without config, tokenizer or weights,
truncated weights, tokenizer larger than the vocabulary), devices and dtypes, LoRA targets, data files
(encodings, fields, prompts that fill seq_len) and the guards of every real round (non-finite loss, NaN
weights, mini-batches without labelled tokens, token ids outside the vocabulary).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable

import pytest
import torch
from transformers import BertConfig

from fedsllm_env.config import FedsLLMConfig, ModelConfig, TrainingConfig, WirelessConfig
from fedsllm_env.errors import BackboneError, BackboneNotFoundError, ConfigError, TrainingDiverged, TrainingError
from fedsllm_env.splitfed import SplitFedEngine
from fedsllm_env.splitfed.data import encode_examples, generate_e2e, load_examples
from fedsllm_env.splitfed.model import build_random_model, load_backbone
from fedsllm_env.splitfed.tokenizer import default_word_tokenizer
from fedsllm_env.splitfed.zoo import tiny_config

pytestmark = [pytest.mark.filterwarnings("ignore:dataset 'e2e-synthetic'"), pytest.mark.usefixtures("one_torch_thread")]

TOK = default_word_tokenizer()


def _cfg(**sections) -> FedsLLMConfig:
    model = dict(ranks=(1, 2), initial_rank=2, initial_split=1, device="cpu")
    model.update(sections.pop("model", {}))
    training = dict(batch_size=4, seq_len=32, local_iterations=1, num_train_samples=24, num_val_samples=4)
    training.update(sections.pop("training", {}))
    return FedsLLMConfig(model=ModelConfig(**model), training=TrainingConfig(**training),
                         wireless=WirelessConfig(num_clients=2))


def _tiny(family: str = "gpt2", vocab: int | None = None):
    return build_random_model(tiny_config(family, vocab or len(TOK)), seed=0)


def _engine(net=None, **sections) -> SplitFedEngine:
    return SplitFedEngine(_cfg(**sections), model=net if net is not None else _tiny(), tokenizer=TOK,
                          progress=False)


def _saved(tmp: Path, family: str = "gpt2", tokenizer: bool = True) -> Path:
    folder = tmp / family
    _tiny(family).save_pretrained(folder)
    if tokenizer:
        TOK.save_pretrained(folder)
    return folder


def _load(backbone: str | Path, seq_len: int = 32):
    return load_backbone(ModelConfig(backbone=str(backbone)), seq_len, progress=False)


# ---- one function per bad input: build it under tmp, then trigger the error -----------------------------
def unknown_family(tmp: Path):
    BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
               intermediate_size=32).save_pretrained(tmp / "bert")
    _load(tmp / "bert")


def offline_hub_name(tmp: Path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp / "hf"))
    _load("no-such-org/no-such-model-123")


class _UnreachableHub:
    """A hub session whose every request fails as with no network; counts the requests."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float]] = []

    def head(self, url: str, timeout: float = 0.0, **kwargs):
        self.calls.append((url, timeout))
        raise ConnectionError("[Errno -2] Name or service not known")


def _online_but_unreachable(tmp: Path, monkeypatch) -> _UnreachableHub:
    from huggingface_hub import constants

    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HOME", str(tmp / "hf"))
    session = _UnreachableHub()
    monkeypatch.setattr("huggingface_hub.utils.get_session", lambda: session)
    return session


def unreachable_hub_name(tmp: Path, monkeypatch):
    _online_but_unreachable(tmp, monkeypatch)
    _load("no-such-org/no-such-model-123")


def missing_local_path(tmp: Path):
    _load(tmp / "nowhere" / "model")


def folder_without_config(tmp: Path):
    (tmp / "empty").mkdir()
    _load(tmp / "empty")


def folder_without_tokenizer(tmp: Path):
    _load(_saved(tmp, tokenizer=False))


def truncated_weights(tmp: Path):
    folder = _saved(tmp)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    _load(folder)


def weights_of_another_architecture(tmp: Path):
    folder = _saved(tmp, "gpt2")
    json_cfg = json.loads((_saved(tmp, "llama") / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(json_cfg))
    _load(folder)


def context_shorter_than_seq_len(tmp: Path):
    _load(_saved(tmp), seq_len=4096)


def tokenizer_larger_than_vocab(tmp: Path):
    _engine(_tiny(vocab=50))


def cuda_without_cuda(tmp: Path):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    _engine(model={"device": "cuda"})


def non_utf8_dataset(tmp: Path):
    path = tmp / "latin1.txt"
    path.write_bytes("café => a nice café .\n".encode("latin-1"))
    load_examples(path)


def csv_without_known_columns(tmp: Path):
    path = tmp / "d.csv"
    path.write_text("meaning,sentence\nname[A],A is nice .\n")
    load_examples(path)


def jsonl_line_not_an_object(tmp: Path):
    path = tmp / "d.jsonl"
    path.write_text('["mr", "ref"]\n')
    load_examples(path)


def every_prompt_fills_seq_len(tmp: Path):
    encode_examples(generate_e2e(5, 0), TOK, 8)


def diverging_learning_rate(tmp: Path):
    eng = _engine(training={"learning_rate": 1e4, "local_iterations": 2})
    eng.reset(0)
    for _ in range(6):
        eng.run_round(1, 2)


def nan_backbone_weights(tmp: Path):
    model = _tiny()
    with torch.no_grad():
        model.transformer.h[1].mlp.c_fc.weight[0, 0] = float("nan")
    _engine(model).reset(0)


def inf_server_adapter(tmp: Path):
    eng = _engine()
    eng.reset(0)
    with torch.no_grad():
        eng.model.server_params()[-1].fill_(float("inf"))
    eng.run_round(1, 2)


def batch_without_labels(tmp: Path):
    eng = _engine()
    eng.reset(0)
    eng.train_set.labels.fill_(-100)
    eng.run_round(1, 2)


def token_ids_outside_vocab(tmp: Path):
    eng = _engine()
    eng.reset(0)
    eng.train_set.input_ids[:, 3] = 10_000
    eng.run_round(1, 2)


CASES: list[tuple[str, Callable, type[BaseException], str]] = [
    ("unknown model_type", unknown_family, ValueError, "model_type 'bert' is not supported; supported: ['gpt2', "),
    ("hub name while offline", offline_hub_name, BackboneNotFoundError, "set model.backbone to that folder"),
    ("hub name while offline: the hf command", offline_hub_name, BackboneNotFoundError,
     "(e.g. `hf download no-such-org/no-such-model-123 --local-dir DIR`)"),
    ("hub name, hub unreachable", unreachable_hub_name, BackboneNotFoundError,
     "the hub (https://huggingface.co) cannot be reached: ConnectionError: [Errno -2] Name or service not known"),
    ("missing local path", missing_local_path, BackboneNotFoundError, "does not exist"),
    ("folder without config.json", folder_without_config, BackboneNotFoundError, "has no config.json"),
    ("folder without tokenizer files", folder_without_tokenizer, ValueError, "the tokenizer is empty"),
    ("truncated safetensors", truncated_weights, BackboneError, "truncated or corrupted: delete it"),
    ("config and weights of different families", weights_of_another_architecture, BackboneError,
     "missing from the checkpoint"),
    ("context shorter than seq_len", context_shorter_than_seq_len, ValueError, "accepts at most 64 positions"),
    ("tokenizer larger than the vocabulary", tokenizer_larger_than_vocab, ValueError,
     "embedding has 50 rows (tokenizer size 239)"),
    ("model.device cuda without CUDA", cuda_without_cuda, ValueError, "CUDA is not available"),
    ("model.device typo", lambda tmp: ModelConfig(device="gpu"), ConfigError, "ModelConfig.device"),
    ("model.dtype float64", lambda tmp: ModelConfig(dtype="float64"), ConfigError, "ModelConfig.dtype"),
    ("LoRA target not in the family", lambda tmp: _engine(model={"lora_target_modules": ("self_attn.q_proj",)}),
     ConfigError, "ModelConfig.lora_target_modules=['self_attn.q_proj']: LoRA target 'self_attn.q_proj' matches no "
     "module of this model"),
    ("val_batches < 0", lambda tmp: TrainingConfig(val_batches=-1), ConfigError, "val_batches"),
    ("dataset not UTF-8", non_utf8_dataset, ValueError, "is not UTF-8 text (byte 0xe9"),
    ("CSV without mr/ref columns", csv_without_known_columns, ValueError, "found fields ['meaning', 'sentence']"),
    ("JSONL line not an object", jsonl_line_not_an_object, ValueError, "must be an object, got list"),
    ("every prompt fills seq_len", every_prompt_fills_seq_len, ValueError, "have a prompt that fills seq_len=8"),
    ("learning rate 1e4", diverging_learning_rate, TrainingDiverged,
     "training diverged (training.learning_rate=10000; lower it)"),
    ("NaN in the backbone", nan_backbone_weights, TrainingError, "the backbone's weights hold NaN/inf"),
    ("inf in the server's adapters", inf_server_adapter, TrainingError,
     "round 1, client 0, local iteration 1: training loss is nan: the server's LoRA adapters hold NaN/inf"),
    ("mini-batch without labelled tokens", batch_without_labels, TrainingError,
     "round 1, client 0, local iteration 1: the mini-batch has no labelled token"),
    ("token ids outside the vocabulary", token_ids_outside_vocab, TrainingError,
     "token id 10000 outside the model's vocabulary of 239"),
]


@pytest.mark.parametrize("name,make,error,fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_a_clear_error(tmp_path, monkeypatch, name, make, error, fragment):
    with pytest.raises(error) as info:
        make(tmp_path, monkeypatch) if "monkeypatch" in make.__code__.co_varnames else make(tmp_path)
    assert fragment in str(info.value), str(info.value)


def test_unreachable_hub_fails_at_once_after_one_probe(tmp_path, monkeypatch, capfd):
    """Not cached and the hub unreachable: one short probe, then one error (no download with retries), and the
    advice names the installed hub client's command (`hf download`), not the retired `huggingface-cli`."""
    session = _online_but_unreachable(tmp_path, monkeypatch)
    downloads = []
    monkeypatch.setattr("fedsllm_env.splitfed.model.AutoConfig.from_pretrained",
                        lambda *a, **k: downloads.append(a) or (_ for _ in ()).throw(OSError("retrying")))
    with pytest.raises(BackboneNotFoundError) as info:
        _load("no-such-org/no-such-model-123")
    assert len(session.calls) == 1 and 0 < session.calls[0][1] <= 10, session.calls
    assert downloads == []
    msg = str(info.value)
    assert "`hf download no-such-org/no-such-model-123 --local-dir DIR`" in msg and "huggingface-cli" not in msg
    assert "Retrying" not in capfd.readouterr().err


PHASES = (r"round [1-6], client \d+, local iteration [12]: training loss is (nan|inf): ",
          r"round [1-6], (client \d+|the server), adapters check before FedAvg: LoRA adapters hold NaN/inf ",
          r"round [1-6], validation after FedAvg: validation loss is (nan|inf): ")
"""The three phases that may catch a divergence first (which one depends on the floating-point path)."""


def test_divergence_error_names_round_client_and_the_fix():
    """Whichever phase catches the NaN first, the message names the round and where, and the advice fits
    float32 (lower the learning rate; never 'use float32')."""
    with pytest.raises(TrainingDiverged) as info:
        diverging_learning_rate(Path("."))
    msg = str(info.value)
    assert any(re.match(p, msg) for p in PHASES), msg
    assert msg.endswith("training diverged (training.learning_rate=10000; lower it)"), msg
    assert "model.dtype" not in msg, msg


def _huge_after_fedavg(eng: SplitFedEngine, monkeypatch, value: float = 1e30) -> None:
    """Make FedAvg leave finite but huge client adapters, so the NaN first shows in the validation."""
    fedavg = eng.model.fedavg_clients

    def poisoned(*args, **kwargs):
        out = fedavg(*args, **kwargs)
        with torch.no_grad():
            for p in eng.model.client_params(0):
                p.fill_(value)
        return out

    monkeypatch.setattr(eng.model, "fedavg_clients", poisoned)


@pytest.mark.parametrize("dtype,advice", [
    ("float32", "training diverged (training.learning_rate=0.001; lower it)"),
    ("bfloat16", "training diverged (training.learning_rate=0.001; lower it or set model.dtype='float32')"),
    ("float16", "training diverged (training.learning_rate=0.001; lower it or set model.dtype='bfloat16'"),
])
def test_divergence_in_validation_names_the_round_and_fits_the_dtype(monkeypatch, dtype, advice):
    eng = _engine(model={"dtype": dtype}, training={"learning_rate": 1e-3})
    eng.reset(0)
    _huge_after_fedavg(eng, monkeypatch)
    with pytest.raises(TrainingDiverged) as info:
        eng.run_round(1, 2)
    msg = str(info.value)
    assert re.match(PHASES[2], msg), msg
    assert f"the activations overflowed in {dtype} with finite adapters: {advice}" in msg, msg
    assert ("model.dtype='float32'" in msg) == (dtype == "bfloat16"), msg


def test_divergence_in_the_adapters_check_names_the_owner(monkeypatch):
    eng = _engine(training={"learning_rate": 1e-3})
    eng.reset(0)
    step = eng.client_opts[1].step

    def nan_step(*args, **kwargs):  # client 1's update turns its adapters NaN after its (finite) loss
        out = step(*args, **kwargs)
        with torch.no_grad():
            eng.model.client_params(1)[0].fill_(float("nan"))
        return out

    monkeypatch.setattr(eng.client_opts[1], "step", nan_step)
    with pytest.raises(TrainingDiverged) as info:
        eng.run_round(1, 2)
    assert str(info.value) == ("round 1, client 1, adapters check before FedAvg: LoRA adapters hold NaN/inf after "
                               "the local updates: training diverged (training.learning_rate=0.001; lower it)")


def test_backbone_overflow_before_round_1_blames_the_backbone_not_the_learning_rate():
    net = _tiny()
    with torch.no_grad():
        net.transformer.wte.weight.fill_(3e38)
    with pytest.raises(TrainingDiverged) as info:
        _engine(net).reset(0)
    msg = str(info.value)
    assert msg.startswith("before round 1, validation of the backbone (adapters are the identity): validation loss "
                          "is nan: the backbone's activations overflowed in float32"), msg
    assert "learning_rate" not in msg and "model.dtype" not in msg, msg


def test_env_step_raises_instead_of_returning_nan(calibration_path):
    import warnings

    import numpy as np

    from fedsllm_env.env import FedsLLMEnv

    cfg = _cfg(training={"learning_rate": 1e4, "local_iterations": 2}).replace(
        mode="real", calibration_path=calibration_path,
        wireless=WirelessConfig(num_clients=2, num_subchannels_ms=2, num_subchannels_fs=2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = FedsLLMEnv(cfg, backend=SplitFedEngine(cfg, model=_tiny(), tokenizer=TOK, progress=False))
    obs, _ = env.reset(seed=0)
    assert np.isfinite(obs).all()
    with pytest.raises(TrainingDiverged, match=r"^round [1-6], .*training diverged \(training.learning_rate=10000; "
                                                r"lower it\)$"):
        for _ in range(6):
            obs, reward, *_ = env.step(env.action_space.sample())
            assert np.isfinite(obs).all() and np.isfinite(reward)

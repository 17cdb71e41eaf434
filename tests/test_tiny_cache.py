"""The cached pre-trained tiny GPT-2: the same bytes whatever the caller's torch thread count, a partial
folder repairs itself, truncated or corrupted weights give an error naming the file and the fix."""

from __future__ import annotations

import json

import pytest
import torch

from fedsllm_env.config import ModelConfig
from fedsllm_env.errors import BackboneError
from fedsllm_env.splitfed.model import load_backbone

SMALL = ModelConfig(tiny_n_layer=2, tiny_n_embd=32, tiny_n_head=2, tiny_pretrain_steps=3)


def _build(root, monkeypatch, threads: int):
    monkeypatch.setenv("FEDSLLM_CACHE_DIR", str(root))
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model, _ = load_backbone(SMALL, 32, progress=False)
        assert torch.get_num_threads() == threads  # the caller's thread count is restored
    finally:
        torch.set_num_threads(before)
    (folder,) = [p for p in root.iterdir() if p.is_dir()]
    return model, folder


def test_cached_bytes_do_not_depend_on_the_callers_threads_and_partial_folders_repair(tmp_path, monkeypatch):
    _, one = _build(tmp_path / "a", monkeypatch, 1)
    _, two = _build(tmp_path / "b", monkeypatch, 2)
    weights = (one / "model.safetensors").read_bytes()
    assert weights == (two / "model.safetensors").read_bytes()
    assert json.loads((one / "fedsllm_pretrain.json").read_text())["settings"]["threads"] == 1
    (two / "config.json").unlink()  # a partial folder (e.g. an interrupted copy)
    model, again = _build(tmp_path / "b", monkeypatch, 2)
    assert again == two and (two / "config.json").is_file()
    assert (two / "model.safetensors").read_bytes() == weights
    assert model.config.n_layer == 2


@pytest.mark.parametrize("damage,fragment", [
    (lambda b: b[: len(b) // 2], "corrupted"),                                   # truncated
    (lambda b: b[:-100] + bytes(x ^ 0xFF for x in b[-100:]), "checksum differs"),  # flipped bytes, same size
])
def test_damaged_cached_weights_name_the_file_and_the_fix(tmp_path, monkeypatch, damage, fragment):
    _, folder = _build(tmp_path, monkeypatch, 1)
    weights = folder / "model.safetensors"
    weights.write_bytes(damage(weights.read_bytes()))
    with pytest.raises(BackboneError, match=fragment) as err:
        load_backbone(SMALL, 32, progress=False)
    assert str(weights) in str(err.value) and f"delete the folder {folder}" in str(err.value)


def test_default_backbone_is_the_shipped_one_and_nothing_is_pretrained(tmp_path, monkeypatch):
    """The default tiny-gpt2 comes from the package (the same bytes on every machine): no cache folder is made,
    and its weights are the shipped file's, whose checksum is recorded beside it."""
    import hashlib

    from safetensors.torch import load_file

    from fedsllm_env.splitfed.model import shipped_tiny_dir, shipped_tiny_matches

    monkeypatch.setenv("FEDSLLM_CACHE_DIR", str(tmp_path / "cache"))
    folder = shipped_tiny_dir()
    info = json.loads((folder / "fedsllm_pretrain.json").read_text())
    assert hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest() == info["sha256"]["model.safetensors"]
    assert shipped_tiny_matches(ModelConfig(), 256) and not shipped_tiny_matches(SMALL, 256)
    model, tok = load_backbone(ModelConfig(), 80, progress=False)
    assert not (tmp_path / "cache").exists()
    shipped = load_file(str(folder / "model.safetensors"))
    assert torch.equal(model.transformer.h[3].attn.c_attn.weight, shipped["transformer.h.3.attn.c_attn.weight"])
    assert len(tok) == ModelConfig().tiny_vocab_size == model.config.vocab_size


def test_damaged_shipped_backbone_names_the_file_and_reinstall(tmp_path, monkeypatch):
    import shutil

    from fedsllm_env.splitfed import model as model_mod

    copy = tmp_path / "tiny-gpt2"
    shutil.copytree(model_mod.shipped_tiny_dir(), copy)
    tok = copy / "tokenizer.json"
    tok.write_bytes(tok.read_bytes().replace(b"\"", b"'", 1))
    monkeypatch.setattr(model_mod, "shipped_tiny_dir", lambda: copy)
    with pytest.raises(BackboneError, match="reinstall fedsllm-env") as err:
        load_backbone(ModelConfig(), 80, progress=False)
    assert str(tok) in str(err.value)

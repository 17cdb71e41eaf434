"""Backbones: the locally built and pre-trained tiny GPT-2 (cached on disk), tiny random GPT-2s for tests,
and any locally available GPT-2 style Hugging Face model."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import GPT2Config, GPT2LMHeadModel

from fedsllm_env.config import ModelConfig
from fedsllm_env.splitfed.data import GENERATOR_VERSION, generate_pretrain_corpus
from fedsllm_env.splitfed.tokenizer import default_word_tokenizer, load_pretrained_tokenizer

__all__ = ["TINY_BACKBONE", "tiny_gpt2_config", "build_random_gpt2", "cache_root", "tiny_cache_dir",
           "pretrain_tiny_gpt2", "load_backbone", "check_gpt2_style"]

TINY_BACKBONE = "tiny-gpt2"
PRETRAIN_SEED = 1234
"""Seed of the pre-training corpus, initial weights and batch order of the tiny GPT-2."""
PRETRAIN_BATCH = 16
PRETRAIN_SEQ_LEN = 64
PRETRAIN_LR = 3e-3
PRETRAIN_SENTENCES = 20000


def tiny_gpt2_config(vocab_size: int, n_layer: int, n_embd: int, n_head: int, n_positions: int = 256,
                     pad_id: int = 0, eos_id: int = 1) -> GPT2Config:
    """GPT2Config of a tiny model; dropout is 0 (deterministic, the LoRA dropout is configured separately)."""
    return GPT2Config(vocab_size=vocab_size, n_layer=n_layer, n_embd=n_embd, n_head=n_head,
                      n_positions=n_positions, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                      bos_token_id=eos_id, eos_token_id=eos_id, pad_token_id=pad_id)


def build_random_gpt2(tokenizer, n_layer: int = 2, n_embd: int = 32, n_head: int = 4, n_positions: int = 128,
                      seed: int = 0) -> GPT2LMHeadModel:
    """A randomly initialised tiny GPT-2 matching ``tokenizer`` (for tests); global RNG left untouched."""
    cfg = tiny_gpt2_config(len(tokenizer), n_layer, n_embd, n_head, n_positions, tokenizer.pad_token_id,
                           tokenizer.eos_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(cfg)
    return model.eval()


def cache_root() -> Path:
    """``$FEDSLLM_CACHE_DIR`` or ``~/.cache/fedsllm_env``."""
    env = os.environ.get("FEDSLLM_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "fedsllm_env"


def _tiny_settings(m: ModelConfig, n_positions: int) -> dict:
    return {"generator_version": GENERATOR_VERSION, "n_layer": m.tiny_n_layer, "n_embd": m.tiny_n_embd,
            "n_head": m.tiny_n_head, "pretrain_steps": m.tiny_pretrain_steps, "n_positions": n_positions,
            "seed": PRETRAIN_SEED, "batch": PRETRAIN_BATCH, "seq_len": PRETRAIN_SEQ_LEN, "lr": PRETRAIN_LR,
            "sentences": PRETRAIN_SENTENCES, "torch": torch.__version__.split("+")[0]}


def tiny_cache_dir(m: ModelConfig, n_positions: int) -> Path:
    """Cache folder of the pre-trained tiny GPT-2: ``<cache_root>/tiny-gpt2-<hash of its settings>``."""
    digest = hashlib.sha256(json.dumps(_tiny_settings(m, n_positions), sort_keys=True).encode()).hexdigest()[:12]
    return cache_root() / f"{TINY_BACKBONE}-{digest}"


def pretrain_tiny_gpt2(m: ModelConfig, n_positions: int, progress: bool = True) -> tuple[GPT2LMHeadModel, float]:
    """Build the tiny GPT-2 and pre-train it on the plain-sentence corpus (packed 64-token chunks).

    Deterministic (fixed seeds through a forked RNG); AdamW with linear warm-up and decay.

    Returns:
        (model in eval mode, mean loss of the last 20 steps).
    """
    tok = default_word_tokenizer()
    model = build_random_gpt2(tok, m.tiny_n_layer, m.tiny_n_embd, m.tiny_n_head, n_positions, seed=PRETRAIN_SEED)
    text = generate_pretrain_corpus(PRETRAIN_SENTENCES, PRETRAIN_SEED)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    stream = torch.tensor([t for sent in ids for t in sent + [tok.eos_token_id]], dtype=torch.long)
    n_chunks = len(stream) // PRETRAIN_SEQ_LEN
    chunks = stream[:n_chunks * PRETRAIN_SEQ_LEN].view(n_chunks, PRETRAIN_SEQ_LEN)
    gen = torch.Generator().manual_seed(PRETRAIN_SEED)
    steps = m.tiny_pretrain_steps
    opt = torch.optim.AdamW(model.parameters(), lr=PRETRAIN_LR, weight_decay=0.01)
    warm = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.05, (steps - s) / max(1, steps - warm))))
    losses: list[float] = []
    model.train()
    from fedsllm_env.progress import progress_bar

    bar = progress_bar(range(steps), desc="pre-training tiny-gpt2", enabled=progress)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(PRETRAIN_SEED)
        for _ in bar:
            batch = chunks[torch.randint(0, n_chunks, (PRETRAIN_BATCH,), generator=gen)]
            logits = model(input_ids=batch).logits
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    model.eval()
    tail = losses[-20:] if losses else [math.nan]
    return model, float(sum(tail) / len(tail))


def _load_tiny(m: ModelConfig, seq_len: int, progress: bool) -> tuple[GPT2LMHeadModel, object]:
    n_positions = max(256, seq_len)
    path = tiny_cache_dir(m, n_positions)
    if not (path / "config.json").is_file():
        t0 = time.perf_counter()
        model, final_loss = pretrain_tiny_gpt2(m, n_positions, progress)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=path.name + ".tmp-", dir=path.parent))
        try:
            model.save_pretrained(tmp)
            default_word_tokenizer().save_pretrained(tmp)
            info = {"settings": _tiny_settings(m, n_positions), "final_pretrain_loss": final_loss,
                    "pretrain_s": time.perf_counter() - t0}
            (tmp / "fedsllm_pretrain.json").write_text(json.dumps(info, indent=1))
            try:
                os.rename(tmp, path)  # atomic; fails if a concurrent process finished first
            except OSError:
                if not (path / "config.json").is_file():
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    model = GPT2LMHeadModel.from_pretrained(path)
    return model.eval(), default_word_tokenizer()


def check_gpt2_style(model, where: str) -> None:
    """Raise TypeError unless ``model`` has ``.transformer.h`` blocks, ``wte``, ``wpe``, ``ln_f`` and ``lm_head``."""
    tr = getattr(model, "transformer", None)
    ok = tr is not None and all(hasattr(tr, a) for a in ("wte", "wpe", "drop", "h", "ln_f")) and \
        hasattr(model, "lm_head")
    if not ok:
        raise TypeError(f"{where}: {type(model).__name__} is not a GPT-2 style causal LM (needs .transformer.wte/"
                        ".wpe/.drop/.h/.ln_f and .lm_head)")


def load_backbone(m: ModelConfig, seq_len: int, progress: bool = True):
    """(model, tokenizer) for ``m.backbone``: "tiny-gpt2" (pre-trained once, cached) or a local HF model.

    Raises:
        FileNotFoundError: A non-tiny backbone is not available locally.
        TypeError: The model is not GPT-2 style.
        ValueError: The model's context is shorter than ``seq_len``.
    """
    if m.backbone == TINY_BACKBONE:
        return _load_tiny(m, seq_len, progress)
    tok = load_pretrained_tokenizer(m.backbone)
    try:
        model = GPT2LMHeadModel.from_pretrained(m.backbone, local_files_only=True)
    except (OSError, ValueError) as e:
        raise FileNotFoundError(
            f"backbone {m.backbone!r}: no GPT-2 style model found locally (directory or Hugging Face cache); "
            f"this project never downloads models ({type(e).__name__}: {e})") from e
    check_gpt2_style(model, f"backbone {m.backbone!r}")
    if model.config.n_positions < seq_len:
        raise ValueError(f"backbone {m.backbone!r} has n_positions={model.config.n_positions} < seq_len={seq_len}")
    return model.eval(), tok

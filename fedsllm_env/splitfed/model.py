"""Backbones: the tiny GPT-2 pre-trained by this package, tiny random models of every supported family for
tests and benchmarks, and any Hugging Face causal LM of a supported family by local path or hub name.

The default tiny GPT-2 (``tiny-gpt2`` with the default ``model.tiny_*`` settings) is shipped inside the package
(``fedsllm_env/data/tiny-gpt2``: weights, tokenizer and a marker with their SHA-256 and the settings that made
them), so every machine fine-tunes the same bytes: pre-training is bit-identical on one machine but not across
CPUs (other SIMD kernels round differently), and the shipped calibration was measured on these bytes.
``fedsllm backbone-report --rebuild-tiny DIR`` re-makes it with :func:`write_tiny_folder` and compares. Other
``tiny_*`` settings are pre-trained locally once and cached under :func:`cache_root`.

Hub names: a ``model.backbone`` that is not an existing path is looked up in the Hugging Face cache first
(``HF_HOME`` / ``HF_HUB_CACHE``), then downloaded with ``from_pretrained`` unless the hub is offline
(``HF_HUB_OFFLINE=1``) or unreachable; then one :class:`~fedsllm_env.errors.BackboneNotFoundError` says
what was not found and how to point to a local copy.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from transformers import AutoConfig, AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel

from fedsllm_env.config import ModelConfig
from fedsllm_env.errors import BackboneError, BackboneNotFoundError
from fedsllm_env.splitfed.backbones import adapter_for
from fedsllm_env.splitfed.pretrain_corpus import CORPUS_VERSION, generate_pretrain_documents
from fedsllm_env.splitfed.tokenizer import build_bpe_tokenizer, load_pretrained_tokenizer

__all__ = ["TINY_BACKBONE", "tiny_gpt2_config", "build_random_gpt2", "build_random_model", "cache_root",
           "tiny_cache_dir", "tiny_tokenizer", "pretrain_tiny_gpt2", "load_backbone", "check_gpt2_style", "fixed_threads",
           "hub_offline", "check_finite_weights", "PRETRAIN_THREADS", "shipped_tiny_dir", "shipped_tiny_matches",
           "write_tiny_folder"]

TINY_BACKBONE = "tiny-gpt2"
PRETRAIN_SEED = 1234
"""Seed of the pre-training corpus, initial weights and batch order of the tiny GPT-2."""
PRETRAIN_BATCH = 8
"""Packed chunks per pre-training step."""
PRETRAIN_SEQ_LEN = 128
"""Tokens per packed chunk: every position a task sequence can use (n <= 128) is trained."""
PRETRAIN_LR = 3e-3
"""Peak AdamW learning rate (linear warm-up over 10 % of the steps, then cosine decay to 0)."""
PRETRAIN_DOCS = 20000
"""Documents of the pre-training corpus (about 0.85 M tokens; 600 steps read about 0.6 M)."""
PRETRAIN_DROPOUT = 0.1
"""Dropout of the pre-training (GPT-2's); the cached model has dropout 0 (deterministic fine-tuning)."""
PRETRAIN_THREADS = 1
"""torch intra-op threads of the pre-training (fixed: the cached bytes must not depend on the process)."""
_WEIGHTS = "model.safetensors"
_MARKER = "fedsllm_pretrain.json"
SHIPPED_TINY = "tiny-gpt2"
"""Folder name, inside ``fedsllm_env/data``, of the default tiny GPT-2 shipped with the package."""


@contextlib.contextmanager
def fixed_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads, then restore the caller's count."""
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


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
    return build_random_model(cfg, seed)


def build_random_model(config: Any, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """A randomly initialised ``AutoModelForCausalLM`` of ``config`` in eval mode (global RNG untouched).

    Raises:
        ValueError: ``config.model_type`` has no backbone adapter.
    """
    adapter_for(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    return model.eval()


def cache_root() -> Path:
    """``$FEDSLLM_CACHE_DIR`` or ``~/.cache/fedsllm_env``."""
    env = os.environ.get("FEDSLLM_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "fedsllm_env"


def _tiny_settings(m: ModelConfig, n_positions: int) -> dict:
    return {"corpus_version": CORPUS_VERSION, "n_layer": m.tiny_n_layer, "n_embd": m.tiny_n_embd,
            "n_head": m.tiny_n_head, "vocab_size": m.tiny_vocab_size, "pretrain_steps": m.tiny_pretrain_steps,
            "n_positions": n_positions, "seed": PRETRAIN_SEED, "batch": PRETRAIN_BATCH, "seq_len": PRETRAIN_SEQ_LEN,
            "lr": PRETRAIN_LR, "docs": PRETRAIN_DOCS, "dropout": PRETRAIN_DROPOUT, "threads": PRETRAIN_THREADS,
            "tokenizer": "byte-level-bpe", "torch": torch.__version__.split("+")[0]}


def tiny_cache_dir(m: ModelConfig, n_positions: int) -> Path:
    """Cache folder of the pre-trained tiny GPT-2: ``<cache_root>/tiny-gpt2-<hash of its settings>``."""
    digest = hashlib.sha256(json.dumps(_tiny_settings(m, n_positions), sort_keys=True).encode()).hexdigest()[:12]
    return cache_root() / f"{TINY_BACKBONE}-{digest}"


@functools.lru_cache(maxsize=4)
def tiny_tokenizer(vocab_size: int):
    """The tiny GPT-2's byte-level BPE tokenizer, trained on its pre-training corpus (deterministic)."""
    return build_bpe_tokenizer(generate_pretrain_documents(PRETRAIN_DOCS, PRETRAIN_SEED), vocab_size)


def _pretrain_chunks(tok) -> torch.Tensor:
    """The pre-training corpus as packed (n_chunks, PRETRAIN_SEQ_LEN) token ids, documents separated by eos."""
    ids = tok(generate_pretrain_documents(PRETRAIN_DOCS, PRETRAIN_SEED), add_special_tokens=False)["input_ids"]
    stream = torch.tensor([t for doc in ids for t in doc + [tok.eos_token_id]], dtype=torch.long)
    n_chunks = len(stream) // PRETRAIN_SEQ_LEN
    return stream[:n_chunks * PRETRAIN_SEQ_LEN].view(n_chunks, PRETRAIN_SEQ_LEN)


def _set_dropout(model: torch.nn.Module, p: float) -> None:
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = p
    for key in ("resid_pdrop", "embd_pdrop", "attn_pdrop"):
        setattr(model.config, key, p)


def pretrain_tiny_gpt2(m: ModelConfig, n_positions: int, progress: bool = True) -> tuple[GPT2LMHeadModel, float]:
    """Build the tiny GPT-2 and pre-train it on :func:`generate_pretrain_documents` (packed 128-token chunks).

    Deterministic whoever calls it: fixed seeds through a forked RNG and :data:`PRETRAIN_THREADS` torch
    threads (the caller's thread count is restored); AdamW with linear warm-up and cosine decay; dropout
    :data:`PRETRAIN_DROPOUT` while pre-training, 0 in the returned model.

    Returns:
        (model in eval mode, mean loss of the last 20 steps).
    """
    tok = tiny_tokenizer(m.tiny_vocab_size)
    model = build_random_gpt2(tok, m.tiny_n_layer, m.tiny_n_embd, m.tiny_n_head, n_positions, seed=PRETRAIN_SEED)
    chunks = _pretrain_chunks(tok)
    n_chunks = chunks.shape[0]
    gen = torch.Generator().manual_seed(PRETRAIN_SEED)
    steps = m.tiny_pretrain_steps
    opt = torch.optim.AdamW(model.parameters(), lr=PRETRAIN_LR, weight_decay=0.01)
    warm = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, 0.5 * (1.0 + math.cos(math.pi * max(0, s - warm) / max(1, steps - warm)))))
    losses: list[float] = []
    _set_dropout(model, PRETRAIN_DROPOUT)
    model.train()
    from fedsllm_env.progress import progress_bar

    bar = progress_bar(range(steps), desc="pre-training tiny-gpt2", enabled=progress)
    with torch.random.fork_rng(devices=[]), fixed_threads(PRETRAIN_THREADS):
        torch.manual_seed(PRETRAIN_SEED)  # initial weights above, dropout masks here
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
    _set_dropout(model, 0.0)
    model.eval()
    tail = losses[-20:] if losses else [math.nan]
    return model, float(sum(tail) / len(tail))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _cache_complete(path: Path) -> bool:
    """True when the folder has its marker (written last) and the files the marker lists."""
    try:
        info = json.loads((path / _MARKER).read_text())
        return all((path / name).is_file() for name in info["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _remove_stale(path: Path) -> None:
    """Move an incomplete cache folder aside and delete it (another process may be reading it)."""
    aside = path.with_name(f"{path.name}.stale-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(path, aside)
    except OSError:
        return  # already moved or replaced by a concurrent process
    shutil.rmtree(aside, ignore_errors=True)


def write_tiny_folder(m: ModelConfig, n_positions: int, folder: Path, progress: bool = True) -> dict:
    """Pre-train the tiny GPT-2 (:func:`pretrain_tiny_gpt2`) and save it with its tokenizer into ``folder``.

    The marker file (written last) records the settings, the final pre-training loss, the wall time and the
    SHA-256 of the weights and of the tokenizer, which every later load checks. Returns the marker's dict.
    """
    t0 = time.perf_counter()
    model, final_loss = pretrain_tiny_gpt2(m, n_positions, progress)
    model.save_pretrained(folder)
    tiny_tokenizer(m.tiny_vocab_size).save_pretrained(folder)
    files = sorted(p.name for p in folder.iterdir())
    info = {"settings": _tiny_settings(m, n_positions), "final_pretrain_loss": final_loss,
            "pretrain_s": time.perf_counter() - t0, "files": files,
            "sha256": {name: _sha256(folder / name) for name in (_WEIGHTS, "tokenizer.json")}}
    (folder / _MARKER).write_text(json.dumps(info, indent=1))  # written last: marks the folder complete
    return info


def _build_tiny_cache(m: ModelConfig, n_positions: int, path: Path, progress: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=path.name + ".tmp-", dir=path.parent))
    try:
        write_tiny_folder(m, n_positions, tmp, progress)
        if path.exists() and not _cache_complete(path):
            _remove_stale(path)
        try:
            os.rename(tmp, path)  # atomic; fails if a concurrent process finished first
        except OSError:
            if not _cache_complete(path):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def shipped_tiny_dir() -> Path:
    """Folder of the tiny GPT-2 shipped inside the package (``fedsllm_env/data/tiny-gpt2``)."""
    return Path(__file__).resolve().parent.parent / "data" / SHIPPED_TINY


def _comparable(settings: dict) -> dict:
    """Pre-training settings that decide the weights (the torch version that built them is informative)."""
    return {k: v for k, v in settings.items() if k != "torch"}


def shipped_tiny_matches(m: ModelConfig, n_positions: int) -> bool:
    """True when the package ships the tiny GPT-2 of these settings (the defaults), so nothing is pre-trained."""
    try:
        info = json.loads((shipped_tiny_dir() / _MARKER).read_text())
    except (OSError, ValueError):
        return False
    return _comparable(info.get("settings", {})) == _comparable(_tiny_settings(m, n_positions))


def _verified_tiny(path: Path, fix: str) -> tuple[GPT2LMHeadModel, object]:
    """Load a tiny GPT-2 folder after checking its recorded checksums; ``fix`` ends the corruption error."""
    info = json.loads((path / _MARKER).read_text())
    for name, expected in sorted(info.get("sha256", {}).items()):
        f = path / name
        if not f.is_file() or _sha256(f) != expected:
            size = f"size {f.stat().st_size} bytes, " if f.is_file() else "missing, "
            raise BackboneError(f"tiny-gpt2 file {f} is corrupted ({size}checksum differs from the one recorded "
                                f"when it was built); {fix}")
    weights = path / _WEIGHTS
    model = _from_pretrained_checked(GPT2LMHeadModel, path, str(weights))
    check_finite_weights(model, str(weights))
    return model.eval(), load_pretrained_tokenizer(str(path), display_name=TINY_BACKBONE)


def _load_tiny(m: ModelConfig, seq_len: int, progress: bool) -> tuple[GPT2LMHeadModel, object]:
    n_positions = max(256, seq_len)
    if shipped_tiny_matches(m, n_positions):  # the default: the same bytes on every machine
        return _verified_tiny(shipped_tiny_dir(), "reinstall fedsllm-env (pip install --force-reinstall) or rebuild "
                                                  "it with `fedsllm backbone-report --rebuild-tiny DIR`")
    path = tiny_cache_dir(m, n_positions)
    if not _cache_complete(path):  # missing or partial (e.g. a deleted file): rebuild in place
        _build_tiny_cache(m, n_positions, path, progress)
    return _verified_tiny(path, f"delete the folder {path} and it is rebuilt on the next run")


def check_gpt2_style(model, where: str) -> None:
    """Raise TypeError unless ``model`` is a GPT-2 style LM (``.transformer.{wte,wpe,drop,h,ln_f}``, ``.lm_head``)."""
    adapter_for(GPT2Config()).check(model, where)


def check_finite_weights(model: torch.nn.Module, where: str) -> None:
    """Raise BackboneError naming the first parameter holding NaN/inf."""
    for name, p in model.named_parameters():
        if not bool(torch.isfinite(p).all()):
            raise BackboneError(f"backbone weights {where}: parameter {name!r} contains NaN/inf (a corrupted or "
                                "diverged checkpoint); replace the file")


def hub_offline() -> bool:
    """True when the Hugging Face hub must not be contacted (``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE``)."""
    env = [os.environ.get(k, "") for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")]
    if any(v.strip().lower() in ("1", "true", "yes", "on") for v in env):
        return True
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except (ImportError, AttributeError):  # pragma: no cover - depends on the installed hub client
        return False


def _not_found(name: str, reason: str) -> BackboneNotFoundError:
    return BackboneNotFoundError(
        f"backbone {name!r} not found: it is not a local folder and not in the Hugging Face cache, and {reason}. "
        f"Download it where there is network (e.g. `huggingface-cli download {name} --local-dir DIR`) and set "
        f"model.backbone to that folder (or copy the hub cache into $HF_HOME); 'tiny-gpt2' needs no download")


def resolve_backbone_source(name: str) -> str:
    """A local folder holding ``name`` (the path itself, or its Hugging Face cache snapshot), or ``name``
    itself when it must be downloaded (hub online).

    Raises:
        BackboneNotFoundError: a path-like name that does not exist, or a hub name that is not cached while
            the hub is offline.
    """
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise BackboneNotFoundError(f"backbone folder {str(path)!r} has no config.json (expected a folder "
                                        "written by save_pretrained, with config, weights and tokenizer files)")
        return str(path)
    looks_local = name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name
    if looks_local:
        raise BackboneNotFoundError(f"backbone folder {str(path)!r} does not exist (a hub name is 'org/model'; "
                                    "a local path must exist)")
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(name, local_files_only=True)
    except Exception:  # noqa: BLE001 - any failure means "not cached"; the online path reports its own reason
        pass
    if hub_offline():
        raise _not_found(name, "the hub is offline (HF_HUB_OFFLINE=1)")
    return name


def _from_pretrained_checked(cls: Any, source: str | Path, where: str, **kwargs: Any):
    """``cls.from_pretrained`` whose load failures name the file and the fix, and missing weights are errors."""
    try:
        model, info = cls.from_pretrained(source, output_loading_info=True, **kwargs)
    except (OSError, ValueError, RuntimeError, SafetensorError) as e:
        if isinstance(e, OSError) and not Path(str(source)).exists():
            raise _not_found(str(source), f"the download failed ({type(e).__name__}: {str(e)[:200]})") from e
        raise BackboneError(f"cannot load backbone weights from {where}: {type(e).__name__}: {e}. The file is "
                            "truncated or corrupted: delete it and download / rebuild it") from e
    missing = [k for k in info.get("missing_keys", []) if "lm_head" not in k]
    if missing:
        raise BackboneError(f"backbone {where}: {len(missing)} weight(s) missing from the checkpoint, e.g. "
                            f"{missing[:3]}; the files do not match the config's architecture")
    return model


def load_backbone(m: ModelConfig, seq_len: int, progress: bool = True):
    """(model, tokenizer) for ``m.backbone`` in ``m.dtype`` on the CPU.

    "tiny-gpt2" is the shipped model for the default settings (pre-trained once and cached for others); anything else is a local folder or a hub name of a
    supported family (``fedsllm_env.splitfed.backbones.REGISTRY``).

    Raises:
        BackboneNotFoundError: not a local folder, not cached and not downloadable.
        BackboneError: truncated / corrupted weights, weights missing from the checkpoint, NaN weights.
        ValueError: unsupported model_type; context shorter than ``seq_len``; unusable tokenizer.
    """
    dtype = getattr(torch, m.dtype)
    if m.backbone == TINY_BACKBONE:
        model, tok = _load_tiny(m, seq_len, progress)
        return model.to(dtype), tok
    source = resolve_backbone_source(m.backbone)
    try:
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as e:
        if source == m.backbone and not Path(source).exists():
            raise _not_found(m.backbone, f"the download failed ({type(e).__name__}: {str(e)[:200]})") from e
        raise BackboneError(f"backbone {m.backbone!r}: cannot read its config.json ({type(e).__name__}: {e})") from e
    adapter = adapter_for(config)  # unsupported families fail before any weight is read
    if adapter.max_positions() < seq_len:
        raise ValueError(f"backbone {m.backbone!r} accepts at most {adapter.max_positions()} positions < "
                         f"training.seq_len={seq_len}")
    tok = load_pretrained_tokenizer(source, display_name=m.backbone)
    model = _from_pretrained_checked(AutoModelForCausalLM, source, f"{m.backbone!r} ({source})", dtype=dtype)
    check_finite_weights(model, repr(m.backbone))
    return model.eval(), tok

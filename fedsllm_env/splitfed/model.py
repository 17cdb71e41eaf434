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

from fedsllm_env.config import ModelConfig, check_memory
from fedsllm_env.errors import BackboneError, BackboneNotFoundError
from fedsllm_env.splitfed.backbones import adapter_for
from fedsllm_env.splitfed.pretrain_corpus import CORPUS_VERSION, generate_pretrain_documents
from fedsllm_env.splitfed.tokenizer import build_bpe_tokenizer, load_pretrained_tokenizer

__all__ = ["TINY_BACKBONE", "tiny_gpt2_config", "build_random_gpt2", "build_random_model", "cache_root",
           "tiny_cache_dir", "tiny_tokenizer", "pretrain_tiny_gpt2", "load_backbone", "check_gpt2_style", "fixed_threads",
           "hub_offline", "check_finite_weights", "check_config_matches_weights", "PRETRAIN_THREADS",
           "shipped_tiny_dir", "shipped_tiny_matches", "write_tiny_folder", "backbone_fingerprint"]

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


def backbone_fingerprint(m: ModelConfig, seq_len: int) -> dict:
    """What identifies the backbone's bytes, recorded in calibrations: for tiny-gpt2 where its weights come from
    (``shipped`` or ``cache``) and their SHA-256 from the marker; for other backbones their name only."""
    if m.backbone != TINY_BACKBONE:
        return {"backbone": m.backbone}
    n_positions = max(256, seq_len)
    shipped = shipped_tiny_matches(m, n_positions)
    path = shipped_tiny_dir() if shipped else tiny_cache_dir(m, n_positions)
    try:
        sha = json.loads((path / _MARKER).read_text())["sha256"][_WEIGHTS]
    except (OSError, ValueError, KeyError):
        sha = None
    return {"backbone": TINY_BACKBONE, "source": "shipped" if shipped else "cache", "weights_sha256": sha}


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
        f"Download it where there is network (e.g. `hf download {name} --local-dir DIR`) and set "
        f"model.backbone to that folder (or copy the hub cache into $HF_HOME); 'tiny-gpt2' needs no download")


def resolve_backbone_source(name: str) -> str:
    """A local folder holding ``name`` (the path itself, or its Hugging Face cache snapshot), or ``name``
    itself when it must be downloaded (hub online).

    Raises:
        BackboneNotFoundError: a path-like name that does not exist, or a hub name that is not cached while
            the hub is offline or cannot be reached (one probe of the hub's endpoint, at most
            ``HF_HUB_ETAG_TIMEOUT`` and 10 s, instead of the download's retries).
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
    # one short probe of the hub before any download: unreachable, the download would retry with back-off for
    # half a minute and print a line per try; here it is one error at once (HF_HUB_ETAG_TIMEOUT bounds the wait)
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    endpoint = str(getattr(constants, "ENDPOINT", "https://huggingface.co"))
    timeout = min(float(getattr(constants, "HF_HUB_ETAG_TIMEOUT", 10) or 10), 10.0)
    try:
        get_session().head(endpoint, timeout=timeout)
    except Exception as e:  # noqa: BLE001 - any transport failure: the hub cannot be reached from here
        raise _not_found(name, f"the hub ({endpoint}) cannot be reached: {type(e).__name__}: {str(e)[:160]}") from None
    return name


_BUFFER_SUFFIXES = (".attn.bias", ".attn.masked_bias", "rotary_emb.inv_freq")
"""Non-parameter tensors some checkpoints carry (GPT-2's causal mask, rotary tables): never a mismatch."""


def _is_buffer(name: str) -> bool:
    return name.endswith(_BUFFER_SUFFIXES)


def _checkpoint_shapes(folder: Path, where: str) -> dict[str, tuple[int, ...]] | None:
    """Tensor name -> shape of the safetensors weights in ``folder``, read from the file headers only (nothing is
    allocated); None when the folder has no safetensors weights (e.g. ``pytorch_model.bin``).

    Raises:
        BackboneError: a header cannot be read (a truncated or corrupted file).
    """
    from safetensors import safe_open

    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise BackboneError(f"backbone {where}: cannot read {index} ({type(e).__name__}: {e}); the index is "
                                "corrupted: download it again") from e
    elif (folder / _WEIGHTS).is_file():
        files = [_WEIGHTS]
    else:
        return None
    shapes: dict[str, tuple[int, ...]] = {}
    for name in files:
        path = folder / name
        try:
            with safe_open(str(path), framework="pt") as f:
                for key in f.keys():
                    shapes[key] = tuple(f.get_slice(key).get_shape())
        except (OSError, SafetensorError, ValueError, RuntimeError) as e:
            raise BackboneError(f"cannot load backbone weights from {where}: {path} cannot be read "
                                f"({type(e).__name__}: {e}). The file is truncated or corrupted: delete it and "
                                "download / rebuild it") from e
    return shapes


def _layers(config: Any) -> int:
    return int(getattr(config, "num_hidden_layers", 0) or getattr(config, "n_layer", 0) or 0)


def _config_fields(config: Any) -> str:
    """The size fields of a config.json, for messages."""
    names = ("model_type", "n_layer", "num_hidden_layers", "n_embd", "hidden_size", "n_head", "num_attention_heads",
             "num_key_value_heads", "vocab_size", "n_positions", "max_position_embeddings", "intermediate_size",
             "ffn_dim", "n_inner")
    raw = config.to_diff_dict() if hasattr(config, "to_diff_dict") else {}
    return ", ".join(f"{n}: {raw[n]}" for n in names if raw.get(n) is not None)


def _estimated_params(config: Any) -> float:
    """Parameters a config.json asks for, from its sizes alone (q/k/v/o + MLP per block, embeddings and head)."""
    d = float(getattr(config, "hidden_size", 0) or getattr(config, "n_embd", 0) or 0)
    ff = float(getattr(config, "intermediate_size", 0) or getattr(config, "ffn_dim", 0) or getattr(config, "n_inner", 0)
               or 4 * d)
    vocab = float(getattr(config, "vocab_size", 0) or 0)
    positions = float(getattr(config, "max_position_embeddings", 0) or getattr(config, "n_positions", 0) or 0)
    return _layers(config) * (4 * d * d + 3 * d * ff) + 2 * vocab * d + positions * d


def _skeleton_shapes(config: Any, where: str) -> tuple[dict[str, tuple[int, ...]], str]:
    """(name -> shape of every parameter, block prefix such as ``transformer.h``) of a one-block model of
    ``config``, built on the meta device (nothing is allocated, whatever the config's sizes).

    Raises:
        BackboneError: the config.json is inconsistent (e.g. n_embd not a multiple of n_head).
    """
    small = config.__class__.from_dict(config.to_dict())
    for attr in ("num_hidden_layers", "n_layer"):
        if hasattr(small, attr):
            with contextlib.suppress(AttributeError, TypeError):
                setattr(small, attr, 1)
    try:
        with torch.device("meta"):
            skeleton = AutoModelForCausalLM.from_config(small)
    except (ValueError, TypeError, AssertionError, RuntimeError) as e:
        raise BackboneError(f"backbone {where}: its config.json is inconsistent ({_config_fields(config)}): "
                            f"{type(e).__name__}: {e}; fix config.json (the weights are not at fault)") from e
    shapes = {k: tuple(v.shape) for k, v in skeleton.state_dict().items() if not _is_buffer(k)}
    block = next((k for k in shapes if ".0." in k), "")
    return shapes, block.split(".0.", 1)[0]


def check_config_matches_weights(config: Any, folder: Path, where: str, dtype: torch.dtype = torch.float32) -> None:
    """Before any weight is loaded: the folder's config.json describes the architecture its weights hold, and
    the model fits in memory. Read from the safetensors headers and a meta-device skeleton (no allocation).

    Raises:
        BackboneError: a config/weights mismatch (another architecture, another number of blocks, a tensor of
            another shape: the message names the tensor, both shapes and the config.json fields; the weights are
            not corrupted, fix config.json), a config.json that is inconsistent, or a backbone of fewer than 2
            blocks (nothing to split). A header that cannot be read is reported as corruption.
        MemoryLimitError: the model the config.json describes needs more memory than is free.
    """
    fields = _config_fields(config)
    file_shapes = _checkpoint_shapes(folder, where)
    expected, prefix = _skeleton_shapes(config, where)
    n_layer = _layers(config)
    if file_shapes is not None and prefix:
        blocks = [k for k in file_shapes if k.startswith(prefix + ".")]
        if not blocks:
            sample = sorted(k for k in file_shapes if not _is_buffer(k))[:3]
            raise BackboneError(f"backbone {where}: config.json says model_type {config.model_type!r} (blocks named "
                                f"'{prefix}.N.*'), but the weights hold tensors such as {sample}: another "
                                "architecture, so every weight config.json needs is missing from the checkpoint; "
                                "make config.json match the weights (they are not corrupted, do not delete them)")
        held = 1 + max(int(k[len(prefix) + 1:].split(".", 1)[0]) for k in blocks)
        if held != n_layer:
            raise BackboneError(f"backbone {where}: config.json says {n_layer} block(s) (n_layer / "
                                f"num_hidden_layers) but the weights hold {held}; set it to {held} in "
                                f"{folder / 'config.json'} (the weights are not corrupted)")
        for name, shape in expected.items():
            held_shape = file_shapes.get(name)
            if held_shape is not None and held_shape != shape:
                raise BackboneError(f"backbone {where}: tensor {name!r} is {list(held_shape)} in the weights but "
                                    f"config.json ({fields}) makes it {list(shape)}: config.json does not match the "
                                    "weights (fix its sizes; the weights are not corrupted, do not delete them)")
    if n_layer < 2:
        raise BackboneError(f"backbone {where}: {n_layer} block(s); split learning needs at least 2 (a cut between "
                            "the clients' blocks and the server's)")
    need = _estimated_params(config) * torch.finfo(dtype).bits / 8
    check_memory(need, f"backbone {where} ({fields})", "check its config.json (does it match the weights?) or use a "
                 "smaller model")


@contextlib.contextmanager
def _quiet_loading() -> Iterator[None]:
    """transformers' per-tensor "Loading weights" bar off while a backbone loads (a tiny model loads in
    milliseconds; the bar was noise on every real-mode command), restored afterwards."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if bars:
            hf_logging.enable_progress_bar()


def _from_pretrained_checked(cls: Any, source: str | Path, where: str, **kwargs: Any):
    """``cls.from_pretrained`` whose load failures name the file and the fix: a shape mismatch is a config/weights
    mismatch (fix config.json), an unreadable file is corruption (delete it); missing or unexpected weights are
    errors."""
    try:
        with _quiet_loading():
            model, info = cls.from_pretrained(source, output_loading_info=True, **kwargs)
    except (OSError, ValueError, RuntimeError, SafetensorError) as e:
        if isinstance(e, OSError) and not Path(str(source)).exists():
            raise _not_found(str(source), f"the download failed ({type(e).__name__}: {str(e)[:200]})") from e
        if "size mismatch" in str(e) and not isinstance(e, (OSError, SafetensorError)):
            raise BackboneError(f"backbone {where}: config.json does not match the weights ({type(e).__name__}: "
                                f"{str(e)[:400]}); fix config.json (the weights are not corrupted)") from e
        raise BackboneError(f"cannot load backbone weights from {where}: {type(e).__name__}: {e}. The file is "
                            "truncated or corrupted: delete it and download / rebuild it") from e
    missing = [k for k in info.get("missing_keys", []) if "lm_head" not in k]
    if missing:
        raise BackboneError(f"backbone {where}: {len(missing)} weight(s) missing from the checkpoint, e.g. "
                            f"{missing[:3]}; the files do not match the config's architecture")
    unexpected = [k for k in info.get("unexpected_keys", []) if not _is_buffer(k)]
    if unexpected:
        raise BackboneError(f"backbone {where}: the checkpoint holds {len(unexpected)} weight(s) the config's "
                            f"architecture has no place for, e.g. {sorted(unexpected)[:3]}; config.json does not "
                            "match the weights (e.g. n_layer too small)")
    mismatched = info.get("mismatched_keys") or []
    if mismatched:
        raise BackboneError(f"backbone {where}: {len(mismatched)} weight(s) have another shape than config.json "
                            f"makes them, e.g. {list(mismatched)[:2]}; fix config.json (the weights are not corrupted)")
    return model


def load_backbone(m: ModelConfig, seq_len: int, progress: bool = True):
    """(model, tokenizer) for ``m.backbone`` in ``m.dtype`` on the CPU.

    "tiny-gpt2" is the shipped model for the default settings (pre-trained once and cached for others); anything else is a local folder or a hub name of a
    supported family (``fedsllm_env.splitfed.backbones.REGISTRY``).

    Raises:
        BackboneNotFoundError: not a local folder, not cached and not downloadable.
        BackboneError: truncated / corrupted weights (delete them), a config.json that does not match its weights
            (another architecture or number of blocks, a tensor of another shape: fix config.json), weights
            missing from the checkpoint, fewer than 2 blocks, NaN weights.
        MemoryLimitError: the config.json describes a model larger than the free memory.
        BackboneError (a ValueError): unsupported model_type; context shorter than ``seq_len``.
        TokenizerError / MissingFileError: unusable or missing tokenizer.
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
    try:
        adapter = adapter_for(config)  # unsupported families fail before any weight is read
    except ValueError as e:
        raise BackboneError(f"backbone {m.backbone!r}: {e}") from None
    if adapter.max_positions() < seq_len:
        raise BackboneError(f"backbone {m.backbone!r} accepts at most {adapter.max_positions()} positions < "
                            f"training.seq_len={seq_len}; lower training.seq_len or use a model with more positions")
    if Path(source).is_dir():  # config.json against the weights' headers, and a memory estimate, before loading
        check_config_matches_weights(config, Path(source), f"{m.backbone!r} ({source})", dtype)
    tok = load_pretrained_tokenizer(source, display_name=m.backbone)
    model = _from_pretrained_checked(AutoModelForCausalLM, source, f"{m.backbone!r} ({source})", dtype=dtype)
    check_finite_weights(model, repr(m.backbone))
    return model.eval(), tok

"""Tokenizers: the deterministic byte-level BPE tokenizer of the locally built tiny GPT-2, a word-level
tokenizer for tiny random test models, or the Hugging Face tokenizer of any other backbone (local folder,
hub cache or hub)."""

from __future__ import annotations

import functools
from pathlib import Path

from typing import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from fedsllm_env.errors import ConfigError, MissingFileError, TokenizerError
from fedsllm_env.splitfed.data import lexicon_text

__all__ = ["PAD_TOKEN", "EOS_TOKEN", "UNK_TOKEN", "build_word_tokenizer", "build_bpe_tokenizer",
           "default_word_tokenizer", "load_pretrained_tokenizer"]

PAD_TOKEN = "<pad>"
EOS_TOKEN = "<eos>"
UNK_TOKEN = "<unk>"


def build_word_tokenizer(text: str) -> PreTrainedTokenizerFast:
    """Train a word-level tokenizer (words and punctuation runs) on ``text``; deterministic.

    Token ids: ``<pad>`` = 0, ``<eos>`` = 1, ``<unk>`` = 2, then words by decreasing frequency (ties by
    the trainer's deterministic order).
    """
    tok = Tokenizer(models.WordLevel(unk_token=UNK_TOKEN))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(special_tokens=[PAD_TOKEN, EOS_TOKEN, UNK_TOKEN], min_frequency=1,
                                        show_progress=False)
    tok.train_from_iterator(text.splitlines(), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD_TOKEN, eos_token=EOS_TOKEN,
                                   unk_token=UNK_TOKEN, bos_token=EOS_TOKEN)
    return fast


def build_bpe_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer (GPT-2 style: any text encodes, no unknown token) on ``texts``.

    Deterministic for the same texts whatever the number of threads the ``tokenizers`` library uses.
    Token ids: ``<pad>`` = 0, ``<eos>`` = 1, then the 256 byte symbols, then the merges in training order;
    the vocabulary stops early when the texts offer no more merges.

    Raises:
        ConfigError: ``vocab_size`` cannot hold the special tokens and the 256 byte symbols (a ValueError).
    """
    if vocab_size < 258:
        raise ConfigError(f"vocab_size must be >= 258 (2 special tokens + 256 bytes), got {vocab_size}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=int(vocab_size), special_tokens=[PAD_TOKEN, EOS_TOKEN],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD_TOKEN, eos_token=EOS_TOKEN, bos_token=EOS_TOKEN)


@functools.lru_cache(maxsize=1)
def default_word_tokenizer() -> PreTrainedTokenizerFast:
    """The word-level tokenizer of the synthetic corpora (complete vocabulary of the generators)."""
    return build_word_tokenizer(lexicon_text())


def load_pretrained_tokenizer(name_or_path: str, display_name: str | None = None):
    """``AutoTokenizer.from_pretrained`` (local files only for a folder); pad = eos when the tokenizer has no pad.

    Raises:
        MissingFileError: No tokenizer could be loaded (a FileNotFoundError).
        TokenizerError: The tokenizer is empty (no tokenizer files beside the model) or has no eos token (a
            ValueError).
    """
    name = display_name or name_or_path
    local = Path(name_or_path).exists()
    try:
        tok = AutoTokenizer.from_pretrained(name_or_path, local_files_only=local)
    except (OSError, ValueError, TypeError) as e:
        raise MissingFileError(
            f"backbone {name!r}: no tokenizer could be loaded from {name_or_path!r} ({type(e).__name__}: {e}); "
            "the folder needs the tokenizer files saved with tokenizer.save_pretrained") from e
    if len(tok) < 2 or not tok("The quick brown fox.", add_special_tokens=False)["input_ids"]:
        raise TokenizerError(f"backbone {name!r}: the tokenizer is empty ({len(tok)} token(s); it encodes text to "
                         f"nothing): {name_or_path!r} has no tokenizer files (tokenizer.json, or vocab + merges, "
                         "or tokenizer.model); save the matching tokenizer into that folder")
    if tok.eos_token_id is None:
        raise TokenizerError(f"backbone {name!r}: tokenizer has no eos token (needed to end every example); "
                         "set tokenizer.eos_token and save it")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok

"""Offline tokenizers: a deterministic word-level tokenizer for the locally built tiny GPT-2, or a locally
available Hugging Face tokenizer for any other backbone."""

from __future__ import annotations

import functools

from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from fedsllm_env.splitfed.data import lexicon_text

__all__ = ["PAD_TOKEN", "EOS_TOKEN", "UNK_TOKEN", "build_word_tokenizer", "default_word_tokenizer",
           "load_pretrained_tokenizer"]

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


@functools.lru_cache(maxsize=1)
def default_word_tokenizer() -> PreTrainedTokenizerFast:
    """The word-level tokenizer of the synthetic corpora (complete vocabulary of the generators)."""
    return build_word_tokenizer(lexicon_text())


def load_pretrained_tokenizer(name_or_path: str):
    """``AutoTokenizer.from_pretrained`` from local files only; pad = eos when the tokenizer has no pad.

    Raises:
        FileNotFoundError: The tokenizer is not available locally (no downloads are attempted).
    """
    try:
        tok = AutoTokenizer.from_pretrained(name_or_path, local_files_only=True)
    except (OSError, ValueError) as e:
        raise FileNotFoundError(
            f"backbone {name_or_path!r}: no tokenizer found locally (directory or Hugging Face cache); this "
            f"project never downloads models - use 'tiny-gpt2' or a local path ({type(e).__name__}: {e})") from e
    if tok.eos_token_id is None:
        raise ValueError(f"backbone {name_or_path!r}: tokenizer has no eos token")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok

"""The default backbone is a real (small) language model: byte-level BPE, a pre-training corpus of prose and
other-domain records, and, before any fine-tuning, a loss below the uniform guess on the task and below a
bigram count model on held-out pre-training text."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fedsllm_env.config import FedsLLMConfig
from fedsllm_env.splitfed.data import OPTIONAL_KEYS, SEPARATOR, generate_e2e
from fedsllm_env.splitfed.lm_baselines import CountLM, backbone_report, stream_pairs
from fedsllm_env.splitfed.pretrain_corpus import generate_pretrain_documents
from fedsllm_env.splitfed.tokenizer import build_bpe_tokenizer


def test_pretrain_documents_are_deterministic_and_hold_other_domains_records_only():
    docs = generate_pretrain_documents(600, 3)
    assert docs == generate_pretrain_documents(600, 3) and docs != generate_pretrain_documents(600, 4)
    records = [d for d in docs if f" {SEPARATOR} " in d]
    assert 0.35 < len(records) / len(docs) < 0.65  # half prose, half records
    keys = {part.split("[", 1)[0].strip() for d in records for part in d.split(SEPARATOR)[0].split("|")}
    assert {"city", "from", "title", "stars", "type"} <= keys
    task_only = set(OPTIONAL_KEYS) - {"area", "near"}  # generic keys (hotels have them too)
    assert not keys & task_only  # eatType, food, priceRange, customer rating, familyFriendly: only in the task
    with pytest.raises(ValueError, match="num_docs"):
        generate_pretrain_documents(-1, 0)


def test_bpe_tokenizer_is_deterministic_lossless_and_subword():
    docs = generate_pretrain_documents(1500, 0)
    tok = build_bpe_tokenizer(docs, 600)
    again = build_bpe_tokenizer(docs, 600)
    assert tok.backend_tokenizer.to_str() == again.backend_tokenizer.to_str()
    assert (tok.pad_token_id, tok.eos_token_id) == (0, 1) and len(tok) == 600
    text = generate_e2e(1, 0)[0].text + " Ünïcode ¿ 日本"  # any text encodes (byte level), no unknown token
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    pieces = tok.convert_ids_to_tokens(tok("familyFriendly", add_special_tokens=False)["input_ids"])
    assert len(pieces) > 1  # a word the corpus never has is split into sub-words
    with pytest.raises(ValueError, match="258"):
        build_bpe_tokenizer(docs, 100)


def test_count_models_score_what_they_should():
    rng = np.random.default_rng(0)
    cycle = np.tile(np.arange(5), 200)  # a deterministic sequence: the bigram predicts it almost surely
    lm = CountLM.fit(cycle[:-1], cycle[1:], 10)
    loss, lam = lm.bigram_nll(cycle[:-1], cycle[1:])
    assert loss < 0.02 and lam > 0.9
    assert lm.unigram_nll(cycle[1:]) == pytest.approx(-math.log(201 / 1010), rel=1e-3)  # add-one over 10 ids
    noise = rng.integers(0, 10, 5000)  # i.i.d. uniform: the bigram cannot beat the unigram by much
    lm = CountLM.fit(noise[:-1], noise[1:], 10)
    assert lm.bigram_nll(noise[:-1], noise[1:])[0] == pytest.approx(math.log(10), abs=0.05)
    ctx, tgt = stream_pairs(torch.tensor([3, 1, 4, 1, 5]))
    assert ctx.tolist() == [3, 1, 4, 1] and tgt.tolist() == [1, 4, 1, 5]


def test_default_backbone_is_a_language_model_before_fine_tuning():
    """Pre-trains the default tiny GPT-2 once (cached, shared with the other tests that load it)."""
    from fedsllm_env.splitfed.model import PRETRAIN_DOCS, PRETRAIN_SEED, load_backbone

    cfg = FedsLLMConfig()
    torch.set_num_threads(1)
    model, tok = load_backbone(cfg.model, cfg.training.seq_len, progress=False)
    assert len(tok) == cfg.model.tiny_vocab_size
    report = backbone_report(cfg, model, tok, generate_pretrain_documents(PRETRAIN_DOCS, PRETRAIN_SEED),
                             generate_pretrain_documents(300, 999))
    held, task = report["heldout"], report["task"]
    assert held["backbone"] < held["bigram_pretrain"] < held["unigram_pretrain"] < held["uniform"]
    assert task["backbone"] < task["unigram_pretrain"] < task["uniform"] == pytest.approx(math.log(len(tok)))
    assert task["bigram_task"] < task["backbone"]  # fine-tuning has something to learn

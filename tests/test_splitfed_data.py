"""Synthetic data, file loading, partitions, encoding and the offline tokenizer of the split-fed engine."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fedsllm_env.splitfed.data import (ClientSampler, encode_examples, generate_e2e, generate_pretrain_corpus,
                                       load_examples, load_task, partition)
from fedsllm_env.splitfed.tokenizer import build_word_tokenizer, default_word_tokenizer, load_pretrained_tokenizer


def test_e2e_generator_deterministic_and_well_formed():
    a, b, c = generate_e2e(50, 0), generate_e2e(50, 0), generate_e2e(50, 1)
    assert a == b and a != c
    for ex in a:
        assert ex.text.startswith(ex.prompt) and ex.prompt.endswith("=>") and ex.prompt.startswith("name[")
        assert len(ex.text) > len(ex.prompt) + 10
        assert ex.label in ("pub", "coffee shop", "restaurant", "none")
    assert len({ex.text.split("=>")[1] for ex in a}) > 40  # varied references


def test_pretrain_corpus_differs_from_task_format():
    corpus = generate_pretrain_corpus(200, 0)
    assert corpus == generate_pretrain_corpus(200, 0)
    assert not any("=>" in s or "name[" in s for s in corpus)


def test_word_tokenizer_is_deterministic_and_covers_the_task():
    tok = default_word_tokenizer()
    again = build_word_tokenizer("\n".join(["hello world", "hello"]))
    assert again.get_vocab() == build_word_tokenizer("\n".join(["hello world", "hello"])).get_vocab()
    assert tok.pad_token_id == 0 and tok.eos_token_id == 1
    ids = tok([e.text for e in generate_e2e(300, 99)], add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in {t for row in ids for t in row}


@pytest.mark.parametrize("scheme", ["iid", "dirichlet"])
def test_partition_covers_all_and_every_client_has_a_batch(scheme):
    labels = [e.label for e in generate_e2e(300, 0)]
    shards = partition(labels, 5, scheme, 0.1, 8, seed=0)
    merged = np.sort(np.concatenate(shards))
    assert np.array_equal(merged, np.arange(300))
    assert min(len(s) for s in shards) >= 8
    again = partition(labels, 5, scheme, 0.1, 8, seed=0)
    assert all(np.array_equal(x, y) for x, y in zip(shards, again))


def _mean_tv_to_global(labels, shards) -> float:
    classes = sorted(set(labels))
    lab = np.asarray(labels, dtype=object)
    glob = np.array([np.mean(lab == c) for c in classes])
    tvs = [0.5 * np.abs(np.array([np.mean(lab[s] == c) for c in classes]) - glob).sum() for s in shards]
    return float(np.mean(tvs))


def test_dirichlet_is_non_iid():
    labels = [e.label for e in generate_e2e(1000, 0)]
    tv_dir = _mean_tv_to_global(labels, partition(labels, 5, "dirichlet", 0.1, 8, seed=0))
    tv_iid = _mean_tv_to_global(labels, partition(labels, 5, "iid", 0.1, 8, seed=0))
    assert tv_dir > 0.15 and tv_dir > 3 * tv_iid


def test_partition_errors():
    with pytest.raises(ValueError, match="cannot give 5 clients"):
        partition(["a"] * 10, 5, "iid", 1.0, 4, 0)
    with pytest.raises(ValueError, match="'iid' or 'dirichlet'"):
        partition(["a"] * 40, 2, "shards", 1.0, 4, 0)


def test_encoding_masks_prompt_and_padding():
    tok = default_word_tokenizer()
    ex = generate_e2e(4, 0)
    enc = encode_examples(ex, tok, 64)
    assert enc.input_ids.shape == (4, 64) == enc.labels.shape
    for i, e in enumerate(ex):
        n_prompt = len(tok(e.prompt, add_special_tokens=False)["input_ids"])
        assert (enc.labels[i, :n_prompt] == -100).all()
        valid = enc.labels[i] != -100
        assert torch.equal(enc.labels[i][valid], enc.input_ids[i][valid])
        assert tok.eos_token_id in enc.labels[i].tolist() or valid[-1]


def test_client_sampler_seeded_epochs():
    tok = default_word_tokenizer()
    enc = encode_examples(generate_e2e(20, 0), tok, 32)
    idx = np.arange(3, 13)
    s1, s2 = ClientSampler(enc, idx, 4, seed=5), ClientSampler(enc, idx, 4, seed=5)
    b1 = [s1.next_batch()[0] for _ in range(5)]
    b2 = [s2.next_batch()[0] for _ in range(5)]
    assert all(torch.equal(x, y) for x, y in zip(b1, b2))
    seen = torch.cat(b1[:2])  # one pass = 2 full batches of the 10-example shard, no repeats
    assert len({tuple(r.tolist()) for r in seen}) == 8
    with pytest.raises(ValueError, match="fewer than one batch"):
        ClientSampler(enc, np.arange(3), 4, seed=0)


def test_load_txt_and_jsonl(tmp_path):
    txt = tmp_path / "d.txt"
    txt.write_text("name[A] | eatType[pub] => A is a pub .\n\nplain sentence here\n")
    ex = load_examples(txt)
    assert len(ex) == 2 and ex[0].prompt == "name[A] | eatType[pub] =>" and ex[0].label == "pub"
    assert ex[1].prompt == "" and ex[1].label == "plain"
    jl = tmp_path / "d.jsonl"
    jl.write_text(json.dumps({"mr": "name[B]", "ref": "B is nice ."}) + "\n" + json.dumps({"text": "x y"}) + "\n")
    ex = load_examples(jl)
    assert ex[0].text == "name[B] => B is nice ." and ex[1].text == "x y"
    train, val = load_task(str(jl), 10, 10, 0)
    assert len(train) + len(val) == 2


def test_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_examples(tmp_path / "nope.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n")
    with pytest.raises(ValueError, match="contains no examples"):
        load_examples(empty)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"foo": 1}\n')
    with pytest.raises(ValueError, match="needs a string 'text'"):
        load_examples(bad)
    other = tmp_path / "d.parquet"
    other.write_text("a,b\n")
    with pytest.raises(ValueError, match=".txt, .jsonl or .csv"):
        load_examples(other)
    with pytest.raises(FileNotFoundError, match="no tokenizer could be loaded"):
        load_pretrained_tokenizer(str(tmp_path / "no-model"))


def test_official_e2e_csv_and_hugging_face_field_names(tmp_path):
    official = tmp_path / "trainset.csv"  # the E2E release: a header "mr,ref", quoted fields with commas
    official.write_bytes('\ufeffmr,ref\n"name[The Eagle], eatType[pub], food[French]","The Eagle is a French pub, '
                         'near the river."\n"name[Aromi], eatType[coffee shop]",Aromi is a coffee shop .\n'
                         .encode("utf-8"))
    ex = load_examples(official)
    assert ex[0].prompt == "name[The Eagle], eatType[pub], food[French] =>" and ex[0].label == "pub"
    assert ex[0].text.endswith("=> The Eagle is a French pub, near the river.") and ex[1].label == "coffee shop"
    hf_jsonl = tmp_path / "e2e_nlg.jsonl"
    hf_jsonl.write_text(json.dumps({"meaning_representation": "name[B]", "human_reference": "B is nice ."}) + "\n")
    hf_csv = tmp_path / "e2e_nlg.csv"
    hf_csv.write_text("Meaning_Representation,Human_Reference\nname[B],B is nice .\n")
    assert load_examples(hf_jsonl) == load_examples(hf_csv) == [load_examples(official)[0].__class__(
        "name[B] => B is nice .", "name[B] =>", "name[B]")]


def test_truncation_and_prompts_that_fill_seq_len_are_counted():
    tok = default_word_tokenizer()
    ex = generate_e2e(40, 0)
    lengths = [len(t) for t in tok([e.text for e in ex], add_special_tokens=False)["input_ids"]]
    prompts = [len(t) for t in tok([e.prompt for e in ex], add_special_tokens=False)["input_ids"]]
    seq_len = 24
    enc = encode_examples(ex, tok, seq_len)
    assert enc.dropped_prompt == sum(p >= seq_len for p in prompts) > 0
    assert enc.truncated == sum(n + 1 > seq_len and p < seq_len for n, p in zip(lengths, prompts)) > 0
    assert len(enc) == len(ex) - enc.dropped_prompt and len(enc.kept) == len(enc)
    assert bool(((enc.labels[:, 1:] != -100).sum(dim=1) > 0).all())  # every kept example trains
    assert "truncated at seq_len=24" in enc.report("training", seq_len)
    assert encode_examples(ex, tok, 128).report("training", 128) == ""


def test_validation_uses_every_validation_example(one_torch_thread):
    from fedsllm_env.config import FedsLLMConfig, ModelConfig, TrainingConfig, WirelessConfig
    from fedsllm_env.splitfed import SplitFedEngine
    from fedsllm_env.splitfed.model import build_random_gpt2

    tok = default_word_tokenizer()
    cfg = FedsLLMConfig(model=ModelConfig(ranks=(2,), initial_rank=2, device="cpu"),
                        wireless=WirelessConfig(num_clients=2),
                        training=TrainingConfig(batch_size=4, seq_len=64, num_train_samples=16, num_val_samples=23))
    eng = SplitFedEngine(cfg, model=build_random_gpt2(tok, n_layer=2, n_positions=64), tokenizer=tok)
    assert sum(len(ids) for ids, _ in eng.val_batches) == 23
    limited = SplitFedEngine(cfg.replace(training=cfg.training.replace(val_batches=2)),
                             model=build_random_gpt2(tok, n_layer=2, n_positions=64), tokenizer=tok)
    assert sum(len(ids) for ids, _ in limited.val_batches) == 8

"""The adversarial sweep of issue #20, table-driven: every input is refused with one error naming it, the value
and the fix (a ``FedsLLMError``; exit status 2 and one line from the CLI) before anything is allocated or
written, or it has a documented behaviour that is checked here.

Tables: sizes (config bounds), envs (memory, positions, device), seeds, actions, episode ends, dataset files,
Ray addresses, ``fedsllm evaluate`` and ``fedsllm benchmark-engine`` flags, a backbone's config.json against its
weights (a mismatch is told from corruption). ``INPUT_TABLES`` / :func:`count`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import fedsllm_env  # noqa: F401  (registers the ids)
from fedsllm_env import config as config_module
from fedsllm_env.config import FedsLLMConfig, TrainingConfig
from fedsllm_env.errors import (
    ConfigError,
    DataError,
    DeviceError,
    FedsLLMError,
    InvalidActionError,
    MemoryLimitError,
    MissingFileError,
    NonFiniteError,
    ResetNeeded,
    SeedError,
    TokenizerError,
    UsageError,
)
from fedsllm_env.vector.env import SurrogateVectorEnv
from train_scripts import cli

HAS_CUDA = torch.cuda.is_available()
TINY_PPO = json.dumps({"n_steps": 64, "batch_size": 32, "n_epochs": 1, "policy_kwargs": {"net_arch": [16]}})
BIG = 10**300


def _no_cuda():
    if HAS_CUDA:
        pytest.skip("CUDA is available here")


# ==== 1. sizes: every one has a documented bound, named in the error ===============================

SIZE_CASES = [
    ({"training": {"batch_size": BIG}}, ConfigError, "TrainingConfig.batch_size must be <= 4,096 "
     "(fedsllm_env.config.SIZE_BOUNDS), got 1.000e+300"),
    ({"training": {"batch_size": 4097}}, ConfigError, "batch_size must be <= 4,096"),
    ({"training": {"seq_len": 10**200}}, ConfigError, "seq_len must be <= 131,072"),
    ({"training": {"seq_len": 10**8}}, ConfigError, "seq_len must be <= 131,072 (fedsllm_env.config.SIZE_BOUNDS), got 100000000"),
    ({"mode": "real", "training": {"seq_len": 300}}, ConfigError,
     "seq_len must be <= 256 for the built-in tiny-gpt2 backbone (256 positions), got 300; lower training.seq_len"),
    ({"wireless": {"num_clients": 10_000, "num_subchannels_ms": 10_000, "num_subchannels_fs": 10_000}}, ConfigError,
     "WirelessConfig.num_clients must be <= 4,096"),
    ({"wireless": {"num_subchannels_ms": 5000}}, ConfigError, "num_subchannels_ms must be <= 4,096"),
    ({"wireless": {"num_subchannels_fs": 10**12}}, ConfigError, "num_subchannels_fs must be <= 4,096"),
    ({"model": {"ranks": [4, 10**20], "initial_rank": 4}}, ConfigError, "ModelConfig.ranks must be <= 4,096"),
    ({"model": {"tiny_n_layer": 10**7}}, ConfigError, "tiny_n_layer must be <= 64"),
    ({"model": {"tiny_n_embd": 2**20, "tiny_n_head": 4}}, ConfigError, "tiny_n_embd must be <= 4,096"),
    ({"model": {"tiny_vocab_size": 10**9}}, ConfigError, "tiny_vocab_size must be <= 65,536"),
    ({"model": {"initial_split": 10**6}}, ConfigError, "initial_split must be <= 4,096"),
    ({"training": {"max_rounds": 10**9}}, ConfigError, "max_rounds must be <= 100,000"),
    ({"training": {"local_iterations": 10**6}}, ConfigError, "local_iterations must be <= 10,000"),
    ({"training": {"num_train_samples": 10**9}}, ConfigError, "num_train_samples must be <= 1,000,000"),
    ({"training": {"val_batches": 10**7}}, ConfigError, "val_batches must be <= 1,000,000"),
    ({"training": {"data_seed": -1}}, ConfigError, "TrainingConfig.data_seed must be >= 0, got -1"),
    ({"power_levels": 10**6}, ConfigError, "power_levels must be <= 1,024"),
    ({"model": {"device": "cuda:99999999999999999999"}}, ConfigError,
     "ModelConfig.device must be 'auto', 'cpu', 'cuda', 'cuda:N' with N in 0..255, or 'mps', got "
     "'cuda:99999999999999999999'"),
    ({"model": {"device": "cuda:256"}}, ConfigError, "with N in 0..255"),
    ({"model": {"device": "cuda:01"}}, ConfigError, "got 'cuda:01'"),
    ({"model": {"device": "gpu"}}, ConfigError, "got 'gpu'"),
    # beyond the issue: ints past the float range, blank backbone names
    ({"wireless": {"total_power_ms_w": 10**400}}, ConfigError, "total_power_ms_w must be finite, got 1.000e+400"),
    ({"compute": {"client_cpu_freq_range_hz": [1e9, 10**400]}}, ConfigError,
     "client_cpu_freq_range_hz[1] must be finite, got 1.000e+400"),
    ({"model": {"backbone": " tiny-gpt2"}}, ConfigError, "backbone must be a non-empty string without leading or "
     "trailing spaces, got ' tiny-gpt2'"),
]


@pytest.mark.parametrize("overrides, error, fragment", SIZE_CASES, ids=[str(c[0])[:60] for c in SIZE_CASES])
def test_sizes_have_documented_bounds(overrides, error, fragment):
    with pytest.raises(error, match=re.escape(fragment)) as exc:
        FedsLLMConfig.from_dict(overrides)
    assert "\n" not in str(exc.value) and len(str(exc.value)) < 400  # one line, not a 300-digit number


def test_every_bound_is_in_its_field_docstring():
    source = Path(config_module.__file__).read_text()
    for name, high in config_module.SIZE_BOUNDS.items():
        doc = source.split(f"    {name}:", 1)[1].split('"""', 2)[1]
        assert f"{high:,}" in doc or str(high) in doc, (name, doc)


def test_largest_accepted_sizes_build():
    cfg = FedsLLMConfig.from_dict({"wireless": {"num_clients": 4096, "num_subchannels_ms": 4096,
                                                "num_subchannels_fs": 4096},
                                   "training": {"batch_size": 4096, "seq_len": 131072, "max_rounds": 100_000}})
    assert cfg.training.seq_len == 131072  # (surrogate mode: the env then caps it at the calibrated positions)


# ==== 2. envs: positions, memory and device checked before anything is allocated ====================

def _boom(*args, **kwargs):
    raise AssertionError("an engine was built before the input was refused")


def env_seq_len_above_calibrated_positions(cal, monkeypatch):
    monkeypatch.setattr("fedsllm_env.env.make_backend", _boom)
    gym.make("FedsLLM-Surrogate-v0", config={"calibration_path": cal, "training": {"seq_len": 300}})


def env_cuda_without_cuda(cal, monkeypatch):
    _no_cuda()
    monkeypatch.setattr("fedsllm_env.env.make_backend", _boom)
    gym.make("FedsLLM-v0", config={"calibration_path": cal, "model": {"device": "cuda"}})


def env_cuda_index_that_does_not_exist(cal, monkeypatch):
    monkeypatch.setattr("fedsllm_env.env.make_backend", _boom)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    gym.make("FedsLLM-v0", config={"calibration_path": cal, "model": {"device": "cuda:7"}})


def env_larger_than_free_memory(cal, monkeypatch):
    monkeypatch.setattr(config_module, "available_memory_bytes", lambda: 2**30)
    monkeypatch.setattr("fedsllm_env.env.make_channel_model", _boom)
    gym.make("FedsLLM-Surrogate-v0", config={"calibration_path": cal, "wireless": {
        "num_clients": 1000, "num_subchannels_ms": 4096, "num_subchannels_fs": 4096}})


def vector_env_too_many_envs(cal, monkeypatch):
    SurrogateVectorEnv(10**6, {"calibration_path": cal})


def vector_env_larger_than_free_memory(cal, monkeypatch):
    monkeypatch.setattr("fedsllm_env.vector.env.FedsLLMEnv", _boom)
    SurrogateVectorEnv(65536, {"calibration_path": cal, "wireless": {
        "num_clients": 4096, "num_subchannels_ms": 4096, "num_subchannels_fs": 4096}})


def n_envs_flag_out_of_bound(cal, monkeypatch):
    from train_scripts._checks import check_n_envs

    check_n_envs({"calibration_path": cal}, 100_000)


def n_envs_flag_rollouts_larger_than_memory(cal, monkeypatch):
    from train_scripts._checks import check_n_envs

    monkeypatch.setattr(config_module, "available_memory_bytes", lambda: 16 * 2**30)
    check_n_envs({"calibration_path": cal}, 65536, n_steps=2048)


def env_lora_target_that_matches_nothing(cal, monkeypatch):
    monkeypatch.setattr("fedsllm_env.env.make_backend", _boom)
    gym.make("FedsLLM-Surrogate-v0", config={"calibration_path": cal, "model": {"lora_target_modules": ["qproj"]}})


ENV_CASES = [
    (env_seq_len_above_calibrated_positions, ConfigError, "TrainingConfig.seq_len must be <= 256 (the positions of "
     "the calibrated model"),
    (env_cuda_without_cuda, DeviceError, "model.device='cuda' but CUDA is not available on this machine"),
    (env_cuda_index_that_does_not_exist, DeviceError, "model.device='cuda:7' but only 1 CUDA device(s) exist"),
    (env_larger_than_free_memory, MemoryLimitError, "an env of K = 1000, M = 4096, N = 4096 needs about 1.2 GiB of "
     "memory, more than the 1.0 GiB available; lower wireless.num_clients"),
    (vector_env_too_many_envs, ConfigError, "num_envs must be an int in [1, 65,536], got 1000000"),
    (vector_env_larger_than_free_memory, MemoryLimitError, "num_envs=65,536 envs of K = 4096, M = 4096, N = 4096 "
     "needs about"),
    (env_lora_target_that_matches_nothing, ConfigError, "ModelConfig.lora_target_modules=['qproj']: LoRA target "
     "'qproj' matches no module of this model"),
    (n_envs_flag_out_of_bound, ConfigError, "--n-envs must be an int in [1, 65,536], got 100000"),
    (n_envs_flag_rollouts_larger_than_memory, MemoryLimitError, "--n-envs=65,536 envs of K = 5, M = 10, N = 10 with "
     "2,048-step rollouts needs about"),
]


@pytest.mark.parametrize("build, error, fragment", ENV_CASES, ids=[c[0].__name__ for c in ENV_CASES])
def test_envs_refuse_before_allocating(build, error, fragment, calibration_path, monkeypatch):
    with pytest.raises(error, match=re.escape(fragment)):
        build(calibration_path, monkeypatch)


def _forced_huge_batch(calibration_path) -> FedsLLMConfig:
    """A config with batch_size 1e300, past validation (what the batched env returned -inf rewards for)."""
    cfg = FedsLLMConfig.from_dict({"calibration_path": calibration_path})
    object.__setattr__(cfg.training, "batch_size", BIG)
    return cfg


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_batched_env_raises_non_finite_error_where_the_single_env_does(calibration_path):
    cfg = _forced_huge_batch(calibration_path)
    single = gym.make("FedsLLM-Surrogate-v0", config=cfg)
    single.reset(seed=0)
    with pytest.raises(NonFiniteError, match=re.escape("cannot compute a finite reward")):
        single.step(single.action_space.sample())
    batched = SurrogateVectorEnv(3, cfg)
    batched.reset(seed=0)
    with pytest.raises(NonFiniteError, match=re.escape("cannot compute a finite reward in env(s) [0, 1, 2]: env 0 "
                                                       "has round delay inf s")):
        batched.step(batched.action_space.sample())


# ==== 3. seeds: ints >= 0 (numpy ints too) in both envs; bools, floats, negatives refused =================

SEED_CASES = [
    (1.5, SeedError, "reset(seed=...) must be an int >= 0 or None, got float 1.5"),
    (True, SeedError, "got bool True"),
    (np.float64(2.0), SeedError, "got float64 2.0"),
    (-1, SeedError, "got -1; pass a non-negative seed"),
    ("3", SeedError, "got str '3'"),
    (np.int64(3), None, ""),
    (np.uint8(3), None, ""),
]


@pytest.mark.parametrize("seed, error, fragment", SEED_CASES, ids=[repr(c[0]) for c in SEED_CASES])
@pytest.mark.parametrize("kind", ["single", "batched"])
def test_reset_seeds(kind, seed, error, fragment, calibration_path):
    cfg = {"calibration_path": calibration_path}
    env = gym.make("FedsLLM-Surrogate-v0", config=cfg) if kind == "single" else SurrogateVectorEnv(2, cfg)
    if error is not None:
        with pytest.raises(error, match=re.escape(fragment)):
            env.reset(seed=seed)
        return
    obs, _ = env.reset(seed=seed)
    np.testing.assert_array_equal(obs, env.reset(seed=int(seed))[0])  # a numpy int is that int


def test_batched_seed_lists_are_checked_item_by_item(calibration_path):
    env = SurrogateVectorEnv(2, {"calibration_path": calibration_path})
    with pytest.raises(SeedError, match=re.escape("reset(seed=...)[1] must be an int >= 0 or None, got float 1.5")):
        env.reset(seed=[0, 1.5])
    with pytest.raises(SeedError, match=re.escape("list of length 3, expected num_envs=2")):
        env.reset(seed=[0, 1, 2])
    env.reset(seed=[np.int32(4), None])


# ==== 4. actions: complex numbers and strings are refused, never silently cast ========================

ACTION_IDS = ["FedsLLM-Surrogate-v0", "FedsLLM-Surrogate-Discrete-v0", "FedsLLM-Surrogate-Hybrid-v0",
              "FedsLLM-Surrogate-Priority-v0"]
ACTION_CASES = [
    (lambda a: a.astype(complex) + 1j, "must hold real numbers, got a complex array"),
    (lambda a: a.astype(complex), "must hold real numbers"),  # even with a zero imaginary part
    (lambda a: [complex(x) for x in np.ravel(a)], "must hold real numbers"),
    (lambda a: a.astype(str), "must be numeric, got strings or bytes"),
]


@pytest.mark.parametrize("case", range(len(ACTION_CASES)))
@pytest.mark.parametrize("env_id", ACTION_IDS)
def test_single_env_refuses_complex_and_string_actions(env_id, case, calibration_path):
    make, fragment = ACTION_CASES[case]
    env = gym.make(env_id, config={"calibration_path": calibration_path})
    env.reset(seed=0)
    with pytest.raises(InvalidActionError, match=re.escape(fragment)):
        env.step(make(env.action_space.sample()))


@pytest.mark.parametrize("case", [0, 1, 3])
@pytest.mark.parametrize("parametrisation", ["native", "priority"])
def test_batched_env_refuses_complex_and_string_actions(parametrisation, case, calibration_path):
    make, fragment = ACTION_CASES[case]
    env = SurrogateVectorEnv(2, {"calibration_path": calibration_path}, parametrisation=parametrisation)
    env.reset(seed=0)
    with pytest.raises(InvalidActionError, match=re.escape("actions " + fragment)):
        env.step(make(env.action_space.sample()))


# ==== 5. the end of an episode: ResetNeeded (single env), autoreset (batched env) =========================

EPISODE_CASES = [  # (training overrides, how the episode ends after how many rounds)
    ({"max_rounds": 2, "target_val_loss": 1e-3}, "truncated", 2),
    ({"max_rounds": 5, "target_val_loss": 100.0}, "terminated", 1),
]


@pytest.mark.parametrize("training, end, rounds", EPISODE_CASES, ids=[c[1] for c in EPISODE_CASES])
def test_stepping_after_the_episode_ends_raises_reset_needed(training, end, rounds, calibration_path):
    env = gym.make("FedsLLM-Surrogate-v0", config={"calibration_path": calibration_path, "training": training})
    env.reset(seed=0)
    for t in range(rounds):
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
    assert (terminated, truncated) == (end == "terminated", end == "truncated") and info["round"] == rounds
    message = f"the episode is over ({end} after round {rounds}); call reset() before using step() again"
    with pytest.raises(ResetNeeded, match=re.escape(message)):
        env.step(env.action_space.sample())
    with pytest.raises(ResetNeeded, match=re.escape("before using step_decision() again")):
        env.unwrapped.step_decision(env.unwrapped.last_decision)
    env.reset(seed=1)
    assert env.step(env.action_space.sample())[4]["round"] == 1  # a reset starts over


def test_batched_env_autoresets_instead(calibration_path):
    env = SurrogateVectorEnv(2, {"calibration_path": calibration_path,
                                 "training": {"max_rounds": 2, "target_val_loss": 1e-3}})
    env.reset(seed=0)
    rounds = []
    for _ in range(4):
        _, _, _, truncated, info = env.step(env.action_space.sample())
        rounds.append(int(info["final_info"]["round"][0] if truncated[0] else info["round"][0]))
    assert rounds == [1, 2, 1, 2]  # never past max_rounds: env i's next episode starts in the same step


# ==== 6. dataset files and tokenizers: FedsLLMErrors naming the file and the line =========================

DATA_CASES = [  # (file name, content, error, message fragment with {p} = the file's path)
    ("dup.csv", "text,text\nhello there,second\n", DataError, "{p}:1: the CSV header ['text', 'text'] repeats the "
     "column(s) ['text']"),
    ("dupcase.csv", "mr,MR,ref\na,b,c\n", DataError, "{p}:1: the CSV header ['mr', 'MR', 'ref'] repeats"),
    ("extra.csv", "mr,ref\nname[A],A is nice .,surplus\n", DataError, "{p}:2: the row has 3 field(s) but the "
     "header ['mr', 'ref'] has 2; quote fields that contain commas"),
    ("short.csv", "mr,ref\nname[A],A .\nname[B]\n", DataError, "{p}:3: the row has 1 field(s)"),
    ("quote.csv", 'mr,ref\nname[A],A is nice .\n"name[B],B is nice .\nname[C],C is nice .\n', DataError,
     "{p}:3: malformed CSV (unexpected end of data): a quote opened in this record is never closed"),
    ("junk.csv", 'mr,ref\nname[A],"A" is nice\n', DataError, "{p}:2: malformed CSV"),
    ("dupkey.jsonl", '{"text": "a b", "text": "c d"}\n', DataError, "{p}:1: key 'text' appears twice in one "
     "object; keep one"),
    ("header_only.csv", "mr,ref\n", DataError, "dataset file '{p}' contains no examples"),
    ("missing.csv", None, MissingFileError, "dataset file '{p}' does not exist"),
    ("data.tsv", "a\tb\n", DataError, "must end in .txt, .jsonl or .csv"),
]


@pytest.mark.parametrize("name, content, error, fragment", DATA_CASES, ids=[c[0] for c in DATA_CASES])
def test_dataset_file_errors_name_the_file_and_line(name, content, error, fragment, tmp_path):
    from fedsllm_env.splitfed.data import load_examples

    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(error, match=re.escape(fragment.format(p=path))) as exc:
        load_examples(path)
    assert isinstance(exc.value, FedsLLMError)
    assert isinstance(exc.value, FileNotFoundError if error is MissingFileError else ValueError)  # as before


def test_a_well_formed_csv_still_loads(tmp_path):
    from fedsllm_env.splitfed.data import load_examples

    path = tmp_path / "ok.csv"
    path.write_text('mr,ref\n"name[A], eatType[pub]","A is a pub, by the river ."\n\nname[B],B .\n')
    assert [e.text for e in load_examples(path)] == ["name[A], eatType[pub] => A is a pub, by the river .",
                                                     "name[B] => B ."]


def one_example_file(tmp: Path):
    from fedsllm_env.splitfed.data import load_task

    (tmp / "one.txt").write_text("only one line\n")
    load_task(str(tmp / "one.txt"), 10, 10, 0)


def too_few_examples_for_the_clients(tmp: Path):
    from fedsllm_env.splitfed.data import partition

    partition(["a"] * 3, 5, "iid", 1.0, 2, 0)


def tokenizer_without_eos(tmp: Path):
    from fedsllm_env.splitfed.data import Example, encode_examples

    class NoEos:
        eos_token_id = None

    encode_examples([Example("a b", "", "a")], NoEos(), 8)


def folder_without_a_tokenizer(tmp: Path):
    from fedsllm_env.splitfed.tokenizer import load_pretrained_tokenizer

    load_pretrained_tokenizer(str(tmp / "no-model"))


def bpe_vocabulary_too_small(tmp: Path):
    from fedsllm_env.splitfed.tokenizer import build_bpe_tokenizer

    build_bpe_tokenizer(["a b"], 100)


API_DATA_CASES = [
    (one_example_file, DataError, ValueError, "one.txt' has 1 example(s); need >= 2"),
    (too_few_examples_for_the_clients, DataError, ValueError, "3 training examples cannot give 5 clients"),
    (tokenizer_without_eos, TokenizerError, ValueError, "tokenizer NoEos has no eos token; set tokenizer.eos_token"),
    (folder_without_a_tokenizer, MissingFileError, FileNotFoundError, "no tokenizer could be loaded"),
    (bpe_vocabulary_too_small, ConfigError, ValueError, "vocab_size must be >= 258"),
]


@pytest.mark.parametrize("call, error, builtin, fragment", API_DATA_CASES, ids=[c[0].__name__ for c in API_DATA_CASES])
def test_data_and_tokenizer_errors_are_fedsllm_errors(call, error, builtin, fragment, tmp_path):
    with pytest.raises(error, match=re.escape(fragment)) as exc:
        call(tmp_path)
    assert isinstance(exc.value, FedsLLMError) and isinstance(exc.value, builtin)


# ==== 7. Ray addresses and GPU shares: one line naming the address, before Ray starts ======================

RAY_FORMAT_CASES = ["bogus://x", "nonsense", "ray://", "host:99999", ":80", "ray://a b:1", ""]


@pytest.mark.parametrize("address", RAY_FORMAT_CASES)
def test_ray_address_format_is_checked_without_ray(address):
    from train_scripts._ray import check_ray_address

    with pytest.raises(UsageError, match=re.escape(f"got {address!r}")):
        check_ray_address(address)


@pytest.mark.parametrize("address", ["local", "auto", "ray://head:10001", "ray://head", "10.0.0.1:6379",
                                     "[::1]:6379"])
def test_ray_address_formats_accepted(address):
    from train_scripts._ray import check_ray_address

    assert check_ray_address(f" {address} ") == address


@pytest.mark.parametrize("address", ["ray://127.0.0.1:1", "127.0.0.1:1"])
def test_ray_address_where_nothing_answers_fails_at_once(address):
    pytest.importorskip("ray")
    from train_scripts._ray import ray_init

    with pytest.raises(UsageError, match=re.escape(f"--ray-address {address!r}: nothing answers at 127.0.0.1:1")):
        ray_init(address)


def test_ray_auto_without_a_cluster_is_one_line(monkeypatch):
    pytest.importorskip("ray")
    import ray
    import ray._private.services as services

    def no_gcs():
        return []

    no_gcs.cache_clear = lambda: None  # what Ray's own cached finder offers
    monkeypatch.setattr(services, "find_gcs_addresses", no_gcs)  # no cluster on this machine, whatever runs here
    monkeypatch.setattr(services, "find_bootstrap_address", lambda temp_dir: None)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    from train_scripts._ray import ray_init

    with pytest.raises(UsageError, match=re.escape("--ray-address 'auto': cannot join Ray (ConnectionError: Could not "
                                                   "find any running Ray instance")) as exc:
        ray_init("auto")
    assert "start one with `ray start --head`" in str(exc.value) and not ray.is_initialized()


def test_gpus_per_learner_without_a_gpu():
    _no_cuda()
    from train_scripts._ray import check_ray_gpus

    with pytest.raises(DeviceError, match=re.escape("--gpus-per-learner 1 but Ray at 'local' has 0 GPU(s); use "
                                                    "--gpus-per-learner 0 (CPU)")):
        check_ray_gpus(1.0, "--gpus-per-learner", "local")
    check_ray_gpus(0.0, "--gpus-per-learner", "local")


def test_ray_task_shares_the_cluster_cannot_offer():
    from train_scripts._ray import check_ray_cpus, check_ray_gpus

    class Cluster:  # what ray.cluster_resources() reports for a 2-CPU, GPU-less cluster
        @staticmethod
        def is_initialized():
            return True

        @staticmethod
        def cluster_resources():
            return {"CPU": 2.0}

    with pytest.raises(UsageError, match=re.escape("--ray-cpus-per-task 1000 but Ray at 'ray://h:1' has 2 CPU(s) in "
                                                   "all: no task could ever start; use at most 2")):
        check_ray_cpus(Cluster, 1000, address="ray://h:1")
    with pytest.raises(DeviceError, match=re.escape("--ray-gpus-per-task 0.25 but Ray at 'auto' has 0 GPU(s)")):
        check_ray_gpus(0.25, "--ray-gpus-per-task", "auto", Cluster)
    check_ray_cpus(Cluster, 2, address="auto")


TRAIN_RAY_CASES = [
    (["--ray-address", "bogus://x"], "--ray-address must be 'local'"),
    (["--ray-address", "ray://127.0.0.1:1"], "--ray-address 'ray://127.0.0.1:1': nothing answers at 127.0.0.1:1"),
    (["--gpus-per-learner", "1"], "--gpus-per-learner 1 but Ray at 'local' has 0 GPU(s)"),
]


@pytest.mark.parametrize("argv, fragment", TRAIN_RAY_CASES, ids=[" ".join(c[0]) for c in TRAIN_RAY_CASES])
def test_train_rllib_ray_errors_are_one_line_and_leave_no_run_folder(argv, fragment, tmp_path, capsys):
    pytest.importorskip("ray.rllib")
    if "--gpus-per-learner" in argv:
        _no_cuda()
    assert cli.main(["train", "--framework", "rllib", *argv, "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err, err
    assert not (tmp_path / "runs").exists()


# ==== 8. `fedsllm evaluate` and `fedsllm benchmark-engine`: exit 2, one line, nothing written ==============

@pytest.fixture(scope="module")
def k5_agent(tmp_path_factory, calibration_path) -> Path:
    """A PPO agent trained for 64 steps in the default cell (K = 5)."""
    from train_scripts import train

    runs = tmp_path_factory.mktemp("agent")
    return train.main(["--total-timesteps", "64", "--hyperparams", TINY_PPO, "--calibration-path", calibration_path,
                       "--runs-dir", str(runs), "--run-name", "k5", "--max-rounds", "3", "--no-progress-bar"])


CLI_CASES = [
    (["evaluate", "--policies", "hetero_optimizer"], "['hetero_optimizer'] decide a cut and a rank per client: "
     "they need a heterogeneous env id"),
    (["benchmark", "--baselines", "hetero_optimizer", "--train-algos"], "need a heterogeneous env id (e.g. "
     "FedsLLM-Surrogate-Hetero-v0), not FedsLLM-Surrogate-v0"),
    (["evaluate", "--seeds", "-3"], "--seeds -3: every seed must be an int >= 0"),
    (["evaluate", "--seeds", "1", "-3"], "--seeds -3"),
    (["evaluate", "--torch-threads", "100000"], "--torch-threads must be <= 1024, got 100000"),
    (["evaluate", "--ray-address", "nonsense"], "--ray-address must be 'local' (start Ray here), 'auto' (join the "
     "cluster of `ray start`), 'ray://host:port' (Ray client) or 'host:port' (GCS address, port 1-65535), got "
     "'nonsense'"),
    (["evaluate", "--ray-address", "bogus://x"], "got 'bogus://x'"),
    (["evaluate", "--ray-address", "ray://127.0.0.1:1", "--policies", "equal_power"],
     "--ray-address 'ray://127.0.0.1:1': nothing answers at 127.0.0.1:1"),
    (["evaluate", "--policies", "{agent}", "--preset", "server-scarce"], "k5: ppo (k5) was trained with K = 5, "
     "M = 10, N = 10 (observation Box(114,), action Box(132,)), but FedsLLM-Surrogate-v0 has K = 20, M = 20, N = 20 "
     "(observation Box(844,), action Box(882,)): an agent's spaces are fixed by the K (and M, N) it was trained "
     "with; evaluate it with the env config it was trained with (drop --preset / --config"),
    (["evaluate", "--policies", "{agent}", "--config", "{cfg}"], "was trained with K = 5, M = 10, N = 10 "
     "(observation Box(114,), action Box(132,)), but FedsLLM-Surrogate-v0 has K = 6, M = 10, N = 10"),
    (["evaluate", "--policies", "priority_heuristic", "--env-id", "FedsLLM-Surrogate-v0"], "priority_heuristic acts "
     "with priority actions, in ['FedsLLM-Priority-v0', 'FedsLLM-Surrogate-Priority-v0', 'FedsLLM-Hetero-Priority-v0', "
     "'FedsLLM-Surrogate-Hetero-Priority-v0'] only, not in --env-id "
     "FedsLLM-Surrogate-v0"),
    (["evaluate", "--policies", "optimizer", "--env-id", "FedsLLM-Surrogate-Priority-v0"], "baseline optimizer acts "
     "in the Box / Discrete ids, not in the Priority id"),
    # beyond the issue: a config file that gives a key twice (JSON and YAML parsers keep the last one silently)
    (["evaluate", "--policies", "equal_power", "--config", "{dupjson}"], "dup.json: key 'num_clients' appears twice "
     "in one object; keep one"),
    (["evaluate", "--policies", "equal_power", "--config", "{dupyml}"], "dup.yml: key 'num_clients' appears twice in "
     "one mapping (line 3); keep one"),
    (["benchmark-engine", "--shapes", "bogus"], "--shapes: unknown shape(s) ['bogus']; choose from ['tiny-gpt2', "),
    (["benchmark-engine", "--dtypes", "float64"], "--dtypes: unsupported dtype(s) ['float64']; choose from "
     "['float32', 'bfloat16', 'float16']"),
    (["benchmark-engine", "--device", "cuda"], "--device='cuda' but CUDA is not available on this machine"),
    (["benchmark-engine", "--device", "cuda:99999999999999999999"], "--device: ModelConfig.device must be"),
    (["benchmark-engine", "--device", "tpu"], "--device: ModelConfig.device must be"),
    (["benchmark-engine", "--split", "99"], "--split must be in [1, 5] for the shapes"),
    (["benchmark-engine", "--rank", "0"], "--rank must be >= 1, got 0"),
    (["benchmark-engine", "--threads", "-1"], "--threads must be >= 0"),
    (["benchmark-engine", "--activation-bits", "4"], "--activation-bits: ModelConfig.activation_bits must be 8, 16 "
     "or 32"),
    (["benchmark-engine", "--out", "{tmp}"], "is a folder; give a file path"),
    (["benchmark-engine", "--out", "{tmp}/missing/engine.json"], "missing does not exist or is not writable"),
]


@pytest.mark.parametrize("argv, fragment", CLI_CASES, ids=[" ".join(c[0])[:70] for c in CLI_CASES])
def test_commands_exit_2_with_one_line_and_write_nothing(argv, fragment, tmp_path, calibration_path, capsys,
                                                         monkeypatch, request):
    if "cuda" in argv and HAS_CUDA:
        pytest.skip("CUDA is available here")
    if "ray://127.0.0.1:1" in argv:
        pytest.importorskip("ray")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "k20.json").write_text(json.dumps({"wireless": {"num_clients": 6, "num_subchannels_ms": 10}}))
    (tmp_path / "dup.json").write_text('{"wireless": {"num_clients": 3, "num_clients": 4}}')
    (tmp_path / "dup.yml").write_text("wireless:\n  num_clients: 3\n  num_clients: 4\n")
    subs = {"{tmp}": str(tmp_path), "{cfg}": str(tmp_path / "k20.json"), "{dupjson}": str(tmp_path / "dup.json"),
            "{dupyml}": str(tmp_path / "dup.yml")}
    if any("{agent}" in a for a in argv):
        subs["{agent}"] = str(request.getfixturevalue("k5_agent"))
    argv = [next((a.replace(k, v) for k, v in subs.items() if k in a), a) for a in argv]
    if argv[0] == "evaluate":
        argv += ["--runs-dir", str(tmp_path / "runs"), "--calibration-path", calibration_path, "--max-rounds", "2"]
    before = sorted(tmp_path.rglob("*"))
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"fedsllm {argv[0]}: error: ") and fragment.replace("{tmp}", str(tmp_path)) in err, err
    assert sorted(tmp_path.rglob("*")) == before  # no run folder, no output file


def test_evaluate_accepts_priority_heuristic(tmp_path, calibration_path, capsys):
    out = cli.main(["evaluate", "--policies", "priority_heuristic", "equal_power", "--seeds", "3", "--max-rounds",
                    "2", "--runs-dir", str(tmp_path), "--calibration-path", calibration_path])
    table = capsys.readouterr().out
    assert out == 0 and "| priority_heuristic |" in table and "| equal_power |" in table


def test_run_episode_names_both_shapes_when_an_agent_does_not_fit(k5_agent, calibration_path):
    from agents.checkpoint import load_agent
    from agents.evaluation import run_episode

    agent = load_agent(k5_agent / "model.zip", algo="ppo")
    env = gym.make("FedsLLM-Surrogate-v0", config={"calibration_path": calibration_path,
                                                   "wireless": {"num_clients": 6}})
    with pytest.raises(ConfigError, match=re.escape("ppo was trained with K = 5 (observation Box(114,), action "
                                                    "Box(132,)), but FedsLLM-Surrogate-v0 has K = 6, M = 10, N = 10 "
                                                    "(observation Box(")):
        run_episode(agent, env, seed=0, name="ppo")


# ==== 9. a backbone's config.json against its weights: mismatch (fix config.json) vs corruption (delete) ======

@pytest.fixture(scope="module")
def six_block_gpt2(tmp_path_factory) -> Path:
    """A tiny random GPT-2 (6 blocks, n_embd 32, 239-word vocabulary, 64 positions) saved with save_pretrained."""
    from fedsllm_env.splitfed.model import build_random_model
    from fedsllm_env.splitfed.tokenizer import default_word_tokenizer
    from fedsllm_env.splitfed.zoo import tiny_config

    tok = default_word_tokenizer()
    folder = tmp_path_factory.mktemp("bb") / "gpt2"
    build_random_model(tiny_config("gpt2", len(tok), n_layer=6, pad_id=tok.pad_token_id,
                                   eos_id=tok.eos_token_id)).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def _as_bin(folder: Path) -> None:
    """Replace the safetensors weights by a pytorch_model.bin (no header to read before loading)."""
    from safetensors.torch import load_file

    torch.save(load_file(str(folder / "model.safetensors")), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()


def _truncate(folder: Path) -> None:
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])


BACKBONE_CASES = [  # (id, config.json changes, file change, error, message fragments)
    ("n_layer 3 over 6 blocks", {"n_layer": 3}, None, "BackboneError",
     ["config.json says 3 block(s) (n_layer / num_hidden_layers) but the weights hold 6; set it to 6 in",
      "(the weights are not corrupted)"]),
    ("n_layer 1 over 6 blocks", {"n_layer": 1}, None, "BackboneError", ["config.json says 1 block(s)"]),
    ("n_layer 1e7 over 6 blocks", {"n_layer": 10**7}, None, "BackboneError",
     ["config.json says 10000000 block(s) (n_layer / num_hidden_layers) but the weights hold 6"]),
    ("llama config over GPT-2 weights", {"model_type": "llama"}, None, "BackboneError",
     ["config.json says model_type 'llama' (blocks named 'model.layers.N.*'), but the weights hold tensors such as "
      "['transformer.h.0.", "make config.json match the weights (they are not corrupted, do not delete them)"]),
    ("vocab_size mismatch", {"vocab_size": 500}, None, "BackboneError",
     ["tensor 'transformer.wte.weight' is [239, 32] in the weights but config.json (model_type: gpt2, n_layer: 6, "
      "n_embd: 32, n_head: 4, vocab_size: 500, n_positions: 64) makes it [500, 32]", "the weights are not corrupted"]),
    ("n_embd mismatch", {"n_embd": 64}, None, "BackboneError", ["is [239, 32] in the weights", "makes it [239, 64]"]),
    ("n_positions mismatch", {"n_positions": 128}, None, "BackboneError",
     ["tensor 'transformer.wpe.weight' is [64, 32] in the weights", "makes it [128, 32]"]),
    ("n_head not dividing n_embd", {"n_head": 5}, None, "BackboneError",
     ["its config.json is inconsistent (model_type: gpt2, n_layer: 6, n_embd: 32, n_head: 5,", "divisible",
      "fix config.json (the weights are not at fault)"]),
    ("n_layer 3 over 6 blocks, .bin weights", {"n_layer": 3}, _as_bin, "BackboneError",
     ["the checkpoint holds 33 weight(s) the config's architecture has no place for, e.g. ['transformer.h.3."]),
    ("n_layer 1e7, .bin weights", {"n_layer": 10**7}, _as_bin, "MemoryLimitError",
     ["(model_type: gpt2, n_layer: 10000000, n_embd: 32", "GiB of memory, more than the 8.0 GiB available; check its "
      "config.json (does it match the weights?)"]),
    ("truncated weights", {}, _truncate, "BackboneError",
     ["model.safetensors cannot be read (SafetensorError", "The file is truncated or corrupted: delete it"]),
]


@pytest.mark.parametrize("changes, edit, error, fragments", [c[1:] for c in BACKBONE_CASES],
                         ids=[c[0] for c in BACKBONE_CASES])
def test_backbone_config_mismatch_is_told_from_corruption(changes, edit, error, fragments, six_block_gpt2, tmp_path,
                                                          monkeypatch):
    import shutil

    from fedsllm_env.config import ModelConfig
    from fedsllm_env.splitfed import model as model_module

    folder = tmp_path / "backbone"
    shutil.copytree(six_block_gpt2, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **changes}))
    if edit is not None:
        edit(folder)
    monkeypatch.setattr(config_module, "available_memory_bytes", lambda: 8 * 2**30)
    if edit is not _as_bin:  # nothing is loaded before the mismatch is found (a .bin has no header to read first)
        monkeypatch.setattr(model_module.AutoModelForCausalLM, "from_pretrained", _boom)
    with pytest.raises(FedsLLMError) as exc:
        model_module.load_backbone(ModelConfig(backbone=str(folder)), 32, progress=False)
    assert type(exc.value).__name__ == error, exc.value
    for fragment in fragments:
        assert fragment in str(exc.value), str(exc.value)
    if "not corrupted" in " ".join(fragments):
        assert "delete it" not in str(exc.value)  # a user must not delete good weights


def test_a_matching_backbone_still_loads_and_one_block_is_refused(six_block_gpt2, tmp_path):
    from fedsllm_env.config import ModelConfig
    from fedsllm_env.errors import BackboneError
    from fedsllm_env.splitfed.model import build_random_model, load_backbone
    from fedsllm_env.splitfed.tokenizer import default_word_tokenizer
    from fedsllm_env.splitfed.zoo import tiny_config

    model, _ = load_backbone(ModelConfig(backbone=str(six_block_gpt2)), 32, progress=False)
    assert model.config.n_layer == 6
    tok = default_word_tokenizer()
    build_random_model(tiny_config("gpt2", len(tok), n_layer=1)).save_pretrained(tmp_path / "one")
    with pytest.raises(BackboneError, match=re.escape("1 block(s); split learning needs at least 2")):
        load_backbone(ModelConfig(backbone=str(tmp_path / "one")), 32, progress=False)


# ==== the count =================================================================================

INPUT_TABLES = {"sizes": SIZE_CASES, "envs": ENV_CASES, "seeds": SEED_CASES, "actions": ACTION_CASES,
                "episode ends": EPISODE_CASES, "dataset files": DATA_CASES, "data and tokenizer API": API_DATA_CASES,
                "ray addresses": RAY_FORMAT_CASES, "train --framework rllib": TRAIN_RAY_CASES, "commands": CLI_CASES, "backbones": BACKBONE_CASES}


def count() -> dict[str, int]:
    """Inputs per table, and their total."""
    counts = {name: len(rows) for name, rows in INPUT_TABLES.items()}
    return {**counts, "total": sum(counts.values())}


def test_training_config_alone_refuses_sizes_too():
    with pytest.raises(ConfigError, match="batch_size must be <= 4,096"):
        TrainingConfig(batch_size=BIG)

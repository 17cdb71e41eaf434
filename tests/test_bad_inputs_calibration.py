"""Bad inputs of the calibration area, table-driven: (input, expected error type, message fragment).

Files: every broken calibration value raises CalibrationError naming the file and the field.
Command: every bad flag, config or --out fails before the sweep starts (nothing trained, no run written).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from conftest import write_synthetic_calibration
from fedsllm_env.calibration import build_calibration, load_calibration
from fedsllm_env.errors import CalibrationError, ConfigError, FedsLLMError, UsageError
from fedsllm_env.splitfed.calibrate import package_dir, runs_dir_for

SHAPE = {"n_layer": 4, "n_embd": 8, "n_head": 2, "vocab_size": 10, "n_inner": 32, "n_positions": 16}


def _v1(tmp_path: Path) -> dict:
    return json.loads(Path(write_synthetic_calibration(tmp_path / "v1.json", ranks=(1, 2, 4, 8, 16),
                                                      horizon=10)).read_text())


def _v2(_tmp_path: Path) -> dict:
    runs = [{"rank": r, "split": c, "partition": "iid", "seed": s, "initial_val_loss": 4.0,
             "val_loss_curve": [4.0 - (t + 1) * r * 0.1 for t in range(5)], "train_loss_curve": [3.0] * 5}
            for r in (1, 4) for c in (1, 2) for s in (0, 1)]
    return build_calibration(runs, SHAPE, {}, 5, "iid", "test")


def _walk(raw, path: str):
    """(container, last key) of a dotted path; numeric parts index lists."""
    keys = path.split(".")
    obj = raw
    for k in keys[:-1]:
        obj = obj[int(k)] if isinstance(obj, list) else obj[k]
    last = keys[-1]
    return obj, int(last) if isinstance(obj, list) else last


def _set(path: str, value):
    """Mutation setting a dotted path to ``value``."""
    def mutate(raw):
        obj, key = _walk(raw, path)
        obj[key] = value
        return raw
    return mutate


def _drop(path: str):
    """Mutation deleting a dotted path."""
    def mutate(raw):
        obj, key = _walk(raw, path)
        del obj[key]
        return raw
    return mutate


NAN, INF = float("nan"), float("inf")


def _profile_entry(raw: dict, text: str) -> dict:
    """A measured-profile entry of a table (the first cell's first curve stands in for its run)."""
    curve = raw["cells"][0]["val_loss_curves"][0]
    return {"profile": text, "partition": "iid", "seeds": [0], "rounds_to_target": [None],
            "val_loss_curves": [curve], "initial_val_losses": [raw["initial_val_loss"]]}

FILE_CASES = [
    # (id, base, mutation -> raw JSON value or bytes, error, message fragment)
    ("nan-in-curve-v1", _v1, _set("ranks.4.val_loss_curves.0.3", NAN), CalibrationError,
     "'ranks.4.val_loss_curves[0][3]' must be finite"),
    ("inf-in-curve-v2", _v2, _set("cells.2.val_loss_curves.1.0", INF), CalibrationError,
     "'cells[2].val_loss_curves[1][0]' must be finite"),
    ("empty-curve-v1", _v1, _set("ranks.2.val_loss_curves.1", []), CalibrationError,
     "'ranks.2.val_loss_curves[1]' must be a non-empty list"),
    ("no-curves-v2", _v2, _set("cells.0.val_loss_curves", []), CalibrationError,
     "'cells[0].val_loss_curves' must be a non-empty list"),
    ("string-in-curve", _v1, _set("ranks.1.val_loss_curves.0.0", "2.5"), CalibrationError, "must be a number"),
    ("inf-initial", _v1, _set("initial_val_loss", INF), CalibrationError, "'initial_val_loss' must be finite"),
    ("nan-initial-v2", _v2, _set("initial_val_loss", NAN), CalibrationError, "'initial_val_loss' must be finite"),
    ("zero-initial", _v1, _set("initial_val_loss", 0), CalibrationError, "'initial_val_loss' must be > 0"),
    ("nan-target", _v1, _set("target_val_loss", NAN), CalibrationError, "'target_val_loss' must be finite"),
    ("negative-target", _v1, _set("target_val_loss", -1.0), CalibrationError, "'target_val_loss' must be > 0"),
    ("target-above-initial", _v2, _set("target_val_loss", 9.0), CalibrationError, "must be below initial_val_loss"),
    ("target-missing", _v1, _drop("target_val_loss"), CalibrationError, "'target_val_loss' is missing"),
    ("empty-rounds-to-target-v1", _v1, _set("ranks.8.rounds_to_target", []), CalibrationError,
     "'ranks.8.rounds_to_target' must be a non-empty list"),
    ("empty-rounds-to-target-v2", _v2, _set("cells.1.rounds_to_target", []), CalibrationError,
     "'cells[1].rounds_to_target' must be a non-empty list"),
    ("rounds-to-target-length", _v1, _set("ranks.1.rounds_to_target", [3]), CalibrationError,
     "has 1 entries for 2 loss curves"),
    ("rounds-to-target-zero", _v2, _set("cells.3.rounds_to_target.0", 0), CalibrationError,
     "'cells[3].rounds_to_target[0]' must be an int >= 1"),
    ("rounds-to-target-float", _v1, _set("ranks.1.rounds_to_target.0", 2.5), CalibrationError, "must be an int >= 1"),
    ("rounds-to-target-beyond-curve", _v1, _set("ranks.1.rounds_to_target.0", 11), CalibrationError,
     "is beyond its loss curve (10 rounds)"),
    ("ranks-empty", _v1, _set("ranks", {}), CalibrationError, "'ranks' must be a non-empty object"),
    ("rank-key-not-int", _v1, lambda raw: {**raw, "ranks": {"abc": raw["ranks"]["1"]}}, CalibrationError,
     "'ranks.abc' is not a rank"),
    ("fit-missing-v1", _v1, _drop("fit"), CalibrationError, "'fit' is missing"),
    ("fit-nan-v1", _v1, _set("fit.b", NAN), CalibrationError, "'fit.b' must be finite"),
    ("shape-missing", _v1, _drop("model_shape"), CalibrationError, "'model_shape' is missing"),
    ("shape-bad", _v2, _set("model_shape.n_layer", 0), CalibrationError, "'model_shape' is invalid"),
    ("shape-unknown-key", _v2, _set("model_shape.depth", 3), CalibrationError, "'model_shape' is invalid"),
    ("version-unknown", _v2, _set("version", 3), CalibrationError, "'version' = 3 is not supported"),
    ("version-missing", _v1, _drop("version"), CalibrationError, "'version' = None is not supported"),
    ("cells-missing", _v2, _drop("cells"), CalibrationError, "'cells' is missing"),
    ("cell-not-object", _v2, _set("cells.0", [1, 2]), CalibrationError, "'cells[0]' must be an object"),
    ("grid-incomplete", _v2, lambda raw: {**raw, "cells": raw["cells"][1:]}, CalibrationError,
     "is not a full grid"),
    ("cell-repeated", _v2, lambda raw: {**raw, "cells": raw["cells"] + raw["cells"][:1]}, CalibrationError,
     "repeats (rank 1, split 1, partition 'iid')"),
    ("seeds-length", _v2, _set("cells.0.seeds", [0]), CalibrationError, "'cells[0].seeds' has 1 entries for 2"),
    ("seed-negative", _v2, _set("cells.0.seeds.1", -1), CalibrationError, "'cells[0].seeds[1]' must be an int >= 0"),
    ("horizon-zero", _v2, _set("horizon_rounds", 0), CalibrationError, "'horizon_rounds' must be an int >= 1"),
    ("curve-longer-than-horizon", _v2, _set("horizon_rounds", 3), CalibrationError, "more than horizon_rounds=3"),
    ("default-partition-unmeasured", _v2, _set("default_partition", "dirichlet"), CalibrationError,
     "'default_partition' = 'dirichlet' is not one of the measured partitions"),
    ("partition-empty", _v2, _set("cells.0.partition", ""), CalibrationError,
     "'cells[0].partition' must be a non-empty string"),
    ("rank-bool", _v2, _set("cells.0.rank", True), CalibrationError, "'cells[0].rank' must be an int >= 1"),
    ("profile-not-notation", _v2, lambda raw: {**raw, "profiles": [_profile_entry(raw, "r1c1")]}, CalibrationError,
     "'profiles[0].profile' is invalid"),
    ("profile-rank-unmeasured", _v2, lambda raw: {**raw, "profiles": [_profile_entry(raw, "c1r1.3")]},
     CalibrationError, "uses ranks or cuts [3] outside the measured grid"),
    ("profile-partition-unmeasured", _v2,
     lambda raw: {**raw, "profiles": [{**_profile_entry(raw, "c1r1.4"), "partition": "dirichlet"}]},
     CalibrationError, "'profiles[0].partition' = 'dirichlet' is not one of the measured partitions"),
    ("profile-hits-length", _v2,
     lambda raw: {**raw, "profiles": [{**_profile_entry(raw, "c1r1.4"), "rounds_to_target": [2, 3]}]},
     CalibrationError, "'profiles[0].rounds_to_target' has 2 entries for 1 loss curves"),
    ("top-level-list", _v1, lambda raw: [raw], CalibrationError, "must hold a JSON object, got list"),
    ("top-level-null", _v1, lambda raw: None, CalibrationError, "must hold a JSON object, got NoneType"),
    ("top-level-number", _v2, lambda raw: 3, CalibrationError, "must hold a JSON object, got int"),
    ("not-utf8", _v1, lambda raw: b'{"version": 1, "command": "\xff\xfe"}', CalibrationError, "not a UTF-8 text file"),
    ("not-json", _v1, lambda raw: b"{version: 1", CalibrationError, "not valid JSON"),
]


@pytest.mark.parametrize("case_id, base, mutate, error, fragment", FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_bad_calibration_file(tmp_path, case_id, base, mutate, error, fragment):
    raw = mutate(base(tmp_path))
    path = tmp_path / "bad.json"
    path.write_bytes(raw if isinstance(raw, bytes) else json.dumps(raw).encode())
    with pytest.raises(error) as info:
        load_calibration(path)
    assert fragment in str(info.value)
    assert str(path) in str(info.value)  # names the file


def test_good_bases_load(tmp_path):
    """The unmutated bases of the table above load (so each case fails for its own mutation)."""
    for base in (_v1, _v2):
        path = tmp_path / f"{base.__name__}.json"
        path.write_text(json.dumps(base(tmp_path)))
        assert load_calibration(path).ranks


def test_missing_file_and_directory(tmp_path):
    for path, fragment in ((tmp_path / "nope.json", "does not exist"), (tmp_path, "is not a file")):
        with pytest.raises(CalibrationError, match=fragment):
            load_calibration(path)


# ---- the command: every bad input fails before the sweep starts ---------------------------------------------------
@pytest.fixture(scope="module")
def tiny_config_file(tmp_path_factory) -> str:
    from fedsllm_env.splitfed.model import build_random_gpt2
    from fedsllm_env.splitfed.tokenizer import default_word_tokenizer

    root = tmp_path_factory.mktemp("tinycfg")
    tok = default_word_tokenizer()
    build_random_gpt2(tok, n_layer=3, n_embd=32, n_head=4, n_positions=64, seed=7).save_pretrained(root / "m")
    tok.save_pretrained(root / "m")
    path = root / "tiny.json"
    path.write_text(json.dumps({"model": {"backbone": str(root / "m")},
                                "training": {"batch_size": 4, "seq_len": 32, "num_train_samples": 160,
                                             "num_val_samples": 16, "val_batches": 2},
                                "wireless": {"num_clients": 3, "num_subchannels_ms": 3,
                                             "num_subchannels_fs": 3}}))
    return str(path)


def _file_in(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    return str(blocker / "cal.json")


CLI_CASES = [
    # (id, Args overrides (callables get tmp_path), error, message fragment)
    ("out-is-directory", {"out": lambda t: str(t)}, ValueError, "is a directory"),
    ("out-inside-package", {"out": lambda t: str(package_dir() / "data" / "calibration.json")}, ValueError,
     "inside the installed package"),
    ("out-runs-dir-inside-package", {"out": lambda t: str(package_dir() / "x.json")}, ValueError,
     "inside the installed package"),
    ("out-unwritable", {"out": _file_in}, UsageError, "cannot write the calibration"),
    ("out-empty-name", {"out": lambda t: "."}, ValueError, "must name a JSON file"),
    ("fraction-zero", {"target_fraction": 0.0}, ValueError, "--target-fraction must be in (0, 1]"),
    ("fraction-above-one", {"target_fraction": 1.5}, ValueError, "--target-fraction must be in (0, 1]"),
    ("target-negative", {"target_val_loss": -1.0}, ValueError, "--target-val-loss must be >= 0"),
    ("target-nan", {"target_val_loss": math.nan}, ValueError, "--target-val-loss must be >= 0"),
    ("lr-negative", {"learning_rate": -1e-3}, ValueError, "--learning-rate must be > 0"),
    ("local-iterations-negative", {"local_iterations": -1}, ValueError, "--local-iterations must be >= 1"),
    ("threads-zero", {"threads": 0}, ValueError, "threads must be an int >= 1"),
    ("max-rounds-zero", {"max_rounds": 0}, ValueError, "max_rounds must be an int >= 1"),
    ("rank-zero", {"ranks": (0, 4)}, ValueError, "ranks must be ints >= 1"),
    ("ranks-repeated", {"ranks": (4, 4)}, ValueError, "ranks has repeated entries"),
    ("no-seeds", {"seeds": ()}, ValueError, "need >= 1 rank, split, partition and seed"),
    ("seeds-repeated", {"seeds": (0, 0)}, ValueError, "seeds has repeated entries"),
    ("seed-negative", {"seeds": (-1,)}, ValueError, "seeds must be ints >= 0"),
    ("split-zero", {"splits": (0, 1)}, ValueError, "splits must be ints in [1, L-1]"),
    ("split-too-deep", {"splits": (1, 3)}, ValueError, "this backbone has L = 3 blocks"),
    ("partition-unknown", {"partitions": ("noniid",)}, ValueError, "partitions must be 'iid' or 'dirichlet'"),
    ("config-missing", {"config": lambda t: str(t / "none.yaml")}, FileNotFoundError, "does not exist"),
    ("config-not-mapping", {"config": lambda t: _write(t / "l.json", "[1, 2]")}, ValueError, "must hold a mapping"),
    ("config-unknown-key", {"config": lambda t: _write(t / "u.json", '{"training": {"lr": 1}}')}, ConfigError,
     "unknown TrainingConfig key(s) ['lr']"),
    ("gpus-per-run-zero", {"gpus_per_run": 0.0}, ValueError, "--gpus-per-run must be in (0, 1]"),
    ("ray-num-cpus-negative", {"ray_num_cpus": -2}, ValueError, "--ray-num-cpus must be >= 0"),
    ("ray-address-blank", {"ray_address": "  "}, ValueError, "--ray-address must be 'local', 'auto'"),
    ("schedule-not-notation", {"schedules": ("c1r64x8;rank8",)}, UsageError, "is not c<cut>r<rank>"),
    ("schedule-open-phase-first", {"schedules": ("c1r64;c1r8x3",)}, UsageError, "only the last phase"),
    ("schedule-seed-negative", {"schedules": ("designed",), "schedule_seeds": (-1,)}, UsageError,
     "seeds must be ints >= 0"),
    ("profile-not-notation", {"profiles": ("r4c1",)}, UsageError, "is not c<cuts>r<ranks>"),
    ("profile-unknown-rule", {"profiles": ("designed", "c1r4@mean")}, UsageError, "aggregation rule 'mean'"),
    ("profile-wrong-k", {"profiles": ("c1.2r4",)}, UsageError, "the run has K = 3 clients"),
    ("profile-cut-too-deep", {"profiles": ("c1.1.9r4",)}, UsageError, "this backbone has L = 3 blocks"),
    ("recheck-rounds-zero", {"recheck": "x.json", "recheck_rounds": 0}, UsageError, "--recheck-rounds must be >= 1"),
    ("refit-without-out", {"refit": "x.json", "out": ""}, UsageError, "--refit needs --out"),
    ("data-file-missing", {"config": lambda t: _with(t, {"training": {"dataset": str(t / "none.csv")}})},
     FedsLLMError, "none.csv"),
    ("data-missing-columns", {"config": lambda t: _with(t, {"training": {"dataset": _write(t / "d.csv", "a,b\n1,2\n")}})},
     FedsLLMError, "d.csv"),
    ("device-cuda-without-gpu", {"config": lambda t: _with(t, {"model": {"device": "cuda"}})}, FedsLLMError, "cuda"),
    ("backbone-bert", {"config": lambda t: _with(t, {"model": {"backbone": _bert(t)}})}, FedsLLMError, "bert"),
]


def _with(tmp_path, extra: dict) -> str:
    """The tiny config file of ``tiny_config_file`` with ``extra`` merged in (one level deep)."""
    base = json.loads((tmp_path / "tiny.json").read_text()) if (tmp_path / "tiny.json").exists() else {}
    for key, value in extra.items():
        base.setdefault(key, {}).update(value)
    return _write(tmp_path / "with.json", json.dumps(base))


def _bert(tmp_path) -> str:
    """A folder whose config.json says model_type bert (no weights needed: it is refused first)."""
    folder = tmp_path / "bert"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 8,
                                                    "num_hidden_layers": 2, "num_attention_heads": 2}))
    return str(folder)


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("case_id, overrides, error, fragment", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_bad_command_input_fails_before_the_sweep(tmp_path, tiny_config_file, monkeypatch, case_id, overrides,
                                                 error, fragment):
    import fedsllm_env.splitfed.calibrate as runner
    from train_scripts.calibrate import Args, run

    def no_training(*a, **k):
        raise AssertionError("a run started despite the bad input")

    monkeypatch.setattr(runner, "run_one", no_training)
    values = {"out": str(tmp_path / "ok" / "cal.json"), "config": tiny_config_file, "ranks": (1, 4),
              "splits": (1, 2), "partitions": ("iid",), "seeds": (0,), "max_rounds": 2}
    if "device" in case_id:
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has a GPU")
    (tmp_path / "tiny.json").write_text(Path(tiny_config_file).read_text())
    values.update({k: v(tmp_path) if callable(v) else v for k, v in overrides.items()})
    with pytest.raises(error) as info:
        run(Args(**values))
    assert fragment in str(info.value)
    assert isinstance(info.value, FedsLLMError), "the CLI prints one line and exits 2 only for a FedsLLMError"
    if values["out"] not in (".", "") and not Path(values["out"]).is_dir():
        assert not runs_dir_for(values["out"]).exists()  # nothing was made: not even an empty run folder


def test_ray_missing_names_the_install_command(monkeypatch):
    from train_scripts._ray import require_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ImportError, match=r"fedsllm-env\[ray\]"):
        require_ray()


RECORD_CASES = [
    ("garbage-bytes", b"\xff\x00{", "unreadable run record"),
    ("another-runs-record", json.dumps({"kind": "fedsllm-calibration-run", "spec": {"rank": 9}}).encode(),
     "not the record of run"),
    ("not-a-record", b"[1, 2, 3]", "not the record of run"),
]


@pytest.mark.parametrize("case_id, content, fragment", RECORD_CASES, ids=[c[0] for c in RECORD_CASES])
def test_broken_run_record_is_named_not_mixed_in(tmp_path, tiny_config_file, monkeypatch, case_id, content,
                                                 fragment):
    import fedsllm_env.splitfed.calibrate as runner
    from train_scripts.calibrate import Args, run

    monkeypatch.setattr(runner, "run_one", lambda *a, **k: pytest.fail("ran despite a broken record"))
    out = tmp_path / "cal.json"
    runs_dir_for(out).mkdir(parents=True)
    (runs_dir_for(out) / "rank1_split1_iid_seed0.json").write_bytes(content)
    with pytest.raises(CalibrationError, match="rank1_split1_iid_seed0.json") as info:
        run(Args(out=str(out), config=tiny_config_file, ranks=(1,), splits=(1,), partitions=("iid",), seeds=(0,),
                 max_rounds=2))
    assert fragment in str(info.value)


@pytest.mark.parametrize("flags, fragment", [
    (["--target-fraction", "2"], "--target-fraction must be in (0, 1]"),
    (["--threads", "0"], "threads must be an int >= 1"),
    (["--ranks", "0"], "ranks must be ints >= 1"),
    (["--max-rounds", "0"], "max_rounds must be an int >= 1"),
    (["--seeds", "-1"], "seeds must be ints >= 0"),
    (["--splits", "99"], "this backbone has L = 6 blocks"),
    (["--schedules", "c9r64"], "beyond"),
], ids=["fraction", "threads", "ranks", "max-rounds", "seeds", "splits", "schedule-cut"])
def test_calibrate_flag_errors_exit_2_with_one_line(tmp_path, capsys, flags, fragment):
    """`fedsllm calibrate` with a bad flag: exit status 2, one `fedsllm calibrate: error: ...` line, no folder."""
    from train_scripts.cli import main

    out = tmp_path / "c" / "cal.json"
    assert main(["calibrate", "--out", str(out), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fedsllm calibrate: error:") and fragment in err[0], err
    assert not (tmp_path / "c").exists()

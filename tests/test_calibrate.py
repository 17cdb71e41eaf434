"""Calibration pipeline: per-run records, resume, target rule and censoring, schema v2, Ray = sequential."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from fedsllm_env.calibration import build_calibration, choose_target, load_calibration, rounds_to_target
from fedsllm_env.config import FedsLLMConfig
from fedsllm_env.errors import CalibrationError
from fedsllm_env.splitfed.calibrate import RunSpec, calibrate, runs_dir_for, sequential_map, sweep_grid

GRID = dict(ranks=[1, 4], splits=[1, 2], partitions=["iid", "dirichlet"], seeds=[0, 1])


@pytest.fixture(scope="module")
def tiny_backbone(tmp_path_factory) -> str:
    """A 3-block random GPT-2 saved as a local backbone folder (loadable by path in any process)."""
    from fedsllm_env.splitfed.model import build_random_gpt2
    from fedsllm_env.splitfed.tokenizer import default_word_tokenizer

    path = tmp_path_factory.mktemp("backbone")
    tok = default_word_tokenizer()
    build_random_gpt2(tok, n_layer=3, n_embd=32, n_head=4, n_positions=64, seed=7).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def tiny_overrides(tiny_backbone) -> dict:
    return {"model": {"backbone": tiny_backbone, "ranks": [1, 2, 4], "initial_rank": 2},
            "training": {"batch_size": 4, "seq_len": 32, "local_iterations": 2, "learning_rate": 5e-3,
                         "num_train_samples": 160, "num_val_samples": 16, "val_batches": 2},
            "wireless": {"num_clients": 3, "num_subchannels_ms": 3, "num_subchannels_fs": 3}}


@pytest.fixture(scope="module")
def reference(tiny_overrides, tmp_path_factory):
    """A sequential sweep over GRID with 4 rounds per run: (calibration dict, its path)."""
    out = tmp_path_factory.mktemp("ref") / "cal.json"
    res = calibrate(FedsLLMConfig.from_dict(tiny_overrides), **GRID, max_rounds=4, out_path=out)
    return res, out


def _measured(res: dict) -> tuple:
    """Everything a table measures (no timings, paths or commands)."""
    return res["cells"], res["target_val_loss"], res["initial_val_loss"], res["target_rule"], res["model_shape"]


# ---- the runner -----------------------------------------------------------------------------------------------
def test_sweep_writes_one_record_per_run_and_a_loadable_v2_table(reference):
    res, out = reference
    specs = sweep_grid(**GRID)
    assert len(specs) == 16
    records = sorted(runs_dir_for(out).glob("*.json"))
    assert [p.stem for p in records] == sorted(s.name for s in specs)
    cal = load_calibration(out)
    assert cal.version == 2 and cal.ranks == (1, 4) and cal.splits == (1, 2)
    assert cal.partitions == ("dirichlet", "iid") and cal.default_partition == "iid"
    assert cal.horizon_rounds == 4 and cal.shape.n_layer == 3
    for spec in specs:
        rec = json.loads((runs_dir_for(out) / f"{spec.name}.json").read_text())
        assert len(rec["val_loss_curve"]) == 4 and rec["initial_val_loss"] == pytest.approx(cal.initial_val_loss)
        np.testing.assert_array_equal(cal.seed_curves(spec.rank, spec.split, spec.partition)[spec.seed],
                                      rec["val_loss_curve"])


def test_target_is_ninety_percent_of_the_best_configurations_reduction(reference):
    res, out = reference
    cal = load_calibration(out)
    best = res["target_rule"]["best"]
    means = {k: cal.mean_curve(*k) for k in cal.cells}
    lowest = min(float(m.min()) for m in means.values())
    assert float(means[(best["rank"], best["split"], best["partition"])].min()) == lowest
    l0 = cal.initial_val_loss
    assert cal.target_val_loss == pytest.approx(l0 - 0.9 * (l0 - lowest))
    assert float(means[(best["rank"], best["split"], best["partition"])].min()) <= cal.target_val_loss
    # rank 1 learns slower than rank 4 on this model: censored within 4 rounds, never given a number
    assert cal.rounds_needed(1, 1, "iid") == math.inf
    assert res["cells"][0]["mean_rounds_to_target"] is None and None in res["cells"][0]["rounds_to_target"]


def test_killed_sweep_resumes_and_loses_only_runs_in_flight(tiny_overrides, reference, tmp_path):
    cfg = FedsLLMConfig.from_dict(tiny_overrides)
    out = tmp_path / "cal.json"
    started: list[RunSpec] = []

    def killed_after_three(fn, args_list):
        for i, args in enumerate(args_list):
            if i == 3:
                raise KeyboardInterrupt  # the 4th run was in flight
            started.append(args[1])
            yield i, fn(*args)

    with pytest.raises(KeyboardInterrupt):
        calibrate(cfg, **GRID, max_rounds=4, out_path=out, mapper=killed_after_three)
    assert sorted(p.stem for p in runs_dir_for(out).glob("*.json")) == sorted(s.name for s in started)
    assert not out.exists() and len(started) == 3

    ran: list[RunSpec] = []

    def counting(fn, args_list):
        ran.extend(a[1] for a in args_list)
        return sequential_map(fn, args_list)

    res = calibrate(cfg, **GRID, max_rounds=4, out_path=out, mapper=counting)
    assert len(ran) == 13 and not set(ran) & set(started)
    assert _measured(res) == _measured(reference[0])  # bit-for-bit the uninterrupted sweep
    ran.clear()
    calibrate(cfg, **GRID, max_rounds=4, out_path=out, mapper=counting)
    assert ran == []  # everything finished: nothing re-runs


def test_records_of_other_settings_are_never_mixed_in(tiny_overrides, reference):
    _, out = reference
    cfg = FedsLLMConfig.from_dict(tiny_overrides)
    with pytest.raises(CalibrationError, match="other settings"):
        calibrate(cfg, **GRID, max_rounds=5, out_path=out)
    lr = cfg.replace(training=cfg.training.replace(learning_rate=1e-3))
    with pytest.raises(CalibrationError, match="other settings"):
        calibrate(lr, **GRID, max_rounds=4, out_path=out)


def test_run_passes_the_config_through_and_sets_only_the_partition(tiny_overrides, monkeypatch):
    import fedsllm_env.splitfed.engine as engine_mod
    from fedsllm_env.splitfed.calibrate import run_one

    seen = []
    real = engine_mod.SplitFedEngine

    class Spy(real):
        def __init__(self, cfg, *a, **k):
            seen.append(cfg)
            super().__init__(cfg, *a, **k)

    monkeypatch.setattr(engine_mod, "SplitFedEngine", Spy)
    overrides = json.loads(json.dumps(tiny_overrides))
    overrides["training"]["dirichlet_alpha"] = 0.3
    config = FedsLLMConfig.from_dict(overrides).to_dict()
    rec = run_one(config, RunSpec(rank=2, split=2, partition="dirichlet", seed=3), max_rounds=2)
    expected = json.loads(json.dumps(config))
    expected["training"]["partition"] = "dirichlet"
    assert seen[0].to_dict() == expected
    assert rec["spec"] == {"rank": 2, "split": 2, "partition": "dirichlet", "seed": 3}
    assert len(rec["val_loss_curve"]) == 2 and rec["diverged_at_round"] is None


def test_diverged_run_is_recorded_as_measured_and_censored(tiny_overrides):
    from fedsllm_env.splitfed.calibrate import run_one

    overrides = json.loads(json.dumps(tiny_overrides))
    overrides["training"]["learning_rate"] = 1e6
    rec = run_one(FedsLLMConfig.from_dict(overrides).to_dict(), RunSpec(4, 1, "iid", 0), max_rounds=6)
    assert rec["diverged_at_round"] is not None and len(rec["val_loss_curve"]) == rec["diverged_at_round"] - 1
    assert all(math.isfinite(v) for v in rec["val_loss_curve"])


# ---- the merge: target rule, censoring, spread (numpy only) ---------------------------------------------------
def _run(rank, split, part, seed, curve, initial=4.0):
    return {"rank": rank, "split": split, "partition": part, "seed": seed, "initial_val_loss": initial,
            "val_loss_curve": list(curve), "train_loss_curve": list(curve)}


SHAPE = {"n_layer": 4, "n_embd": 8, "n_head": 2, "vocab_size": 10, "n_inner": 32, "n_positions": 16}


def test_choose_target_and_rounds_to_target():
    means = {(1, 1, "iid"): np.array([3.5, 3.0, 2.5]), (4, 1, "iid"): np.array([3.0, 2.0, 1.0])}
    target, best = choose_target(means, 4.0, 0.9)
    assert best == (4, 1, "iid") and target == pytest.approx(4.0 - 0.9 * 3.0)
    assert rounds_to_target([3.0, 2.5, 2.0], 2.5) == 2 and rounds_to_target([3.0, 2.9], 2.5) is None
    with pytest.raises(ValueError, match="fraction"):
        choose_target(means, 4.0, 0.0)
    with pytest.raises(ValueError, match="no configuration reduced"):
        choose_target({(1, 1, "iid"): np.array([4.0, 4.1])}, 4.0)


def test_censored_seed_censors_the_cell_and_nothing_is_invented(tmp_path):
    runs = [_run(4, 1, "iid", 0, [3.0, 2.0, 0.6]), _run(4, 1, "iid", 1, [3.0, 2.5, 1.8]),
            _run(1, 1, "iid", 0, [3.5, 2.0, 1.5]), _run(1, 1, "iid", 1, [3.9, 3.6, 3.5])]
    res = build_calibration(runs, SHAPE, {}, 3, "iid", "test")
    assert res["target_val_loss"] == pytest.approx(4.0 - 0.9 * (4.0 - 1.2))  # mean curve of rank 4 ends at 1.2
    cells = {c["rank"]: c for c in res["cells"]}
    assert cells[4]["rounds_to_target"] == [3, None] and cells[4]["mean_rounds_to_target"] is None
    assert cells[1]["rounds_to_target"] == [None, None]
    path = tmp_path / "c.json"
    path.write_text(json.dumps(res))
    cal = load_calibration(path)
    assert cal.rounds_needed(4) == math.inf and cal.rounds_needed(1, 1) == math.inf
    assert cal.cells[(4, 1, "iid")].censored == 1


def _v2(tmp_path, e_split: dict[int, list[float]], ranks=(1, 4), horizon=30, partitions=("iid",)):
    """A v2 table whose curves fall linearly to reach the target at the given rounds per (split -> per rank)."""
    runs = []
    for part in partitions:
        for split, per_rank in e_split.items():
            for rank, hit in zip(ranks, per_rank):
                for seed in (0, 1):
                    slope = 2.0 / (hit + 0.5 * seed) if hit else 0.01
                    runs.append(_run(rank, split, part, seed, [4.0 - slope * (t + 1) for t in range(horizon)]))
    res = build_calibration(runs, SHAPE, {}, horizon, partitions[0], "test", target_val_loss=2.0)
    path = tmp_path / "v2.json"
    path.write_text(json.dumps(res))
    return load_calibration(path)


def test_rounds_needed_by_split_interpolates_and_pools(tmp_path):
    cal = _v2(tmp_path, {1: [20, 10], 3: [24, 14]})
    e11, e13 = cal.rounds_needed(1, 1), cal.rounds_needed(1, 3)
    assert e11 == np.mean(cal.cells[(1, 1, "iid")].rounds_to_target) and e13 > e11
    assert cal.rounds_needed(1, 2) == pytest.approx((e11 + e13) / 2)  # unmeasured cut: linear in c
    assert cal.rounds_needed(1, 5) == e13  # beyond the measured range: the nearest measured cut
    pooled = [h for c in (1, 3) for h in cal.cells[(1, c, "iid")].rounds_to_target]
    assert cal.rounds_needed(1) == pytest.approx(np.mean(pooled))
    np.testing.assert_allclose(cal.mean_curve(4, 2), (cal.mean_curve(4, 1) + cal.mean_curve(4, 3)) / 2)
    assert cal.cells[(1, 1, "iid")].rounds_std > 0  # seeds differ: the spread is reported
    with pytest.raises(CalibrationError, match="partition 'dirichlet' not calibrated"):
        cal.rounds_needed(1, 1, "dirichlet")


def test_uncalibrated_rank_uses_the_fit_unless_a_neighbour_is_censored(tmp_path):
    cal = _v2(tmp_path, {1: [20, 10, 6]}, ranks=(1, 4, 16))
    f = cal.fit
    assert cal.rounds_needed(8, 1) == pytest.approx(f["a"] + f["b"] * 8 ** -f["c"])
    censored = _v2(tmp_path, {1: [0, 10, 6]}, ranks=(1, 4, 16))  # rank 1 never converges
    assert censored.rounds_needed(1, 1) == math.inf and censored.rounds_needed(2, 1) == math.inf
    assert math.isfinite(censored.rounds_needed(8, 1))


def test_shipped_table_is_the_real_sweep_and_loads_with_its_values():
    cal = load_calibration()
    raw = cal.raw
    assert cal.version == 2 and raw["command"].startswith("fedsllm calibrate")
    assert cal.ranks == FedsLLMConfig().model.ranks and cal.splits == (1, 3, 5)
    assert cal.partitions == ("dirichlet", "iid") and len(raw["settings"]["seeds"]) >= 2
    censored = 0
    for cell in raw["cells"]:
        hits = cell["rounds_to_target"]
        e = cal.rounds_needed(cell["rank"], cell["split"], cell["partition"])
        if None in hits:
            censored += 1
            assert math.isinf(e)
        else:
            assert e == np.mean(hits) <= cal.horizon_rounds
    assert 0 < censored < len(raw["cells"])  # the converged regime: some cells never reach the target
    # the target is the 90 % rule on the best cell
    best = raw["target_rule"]["best"]
    lowest = cal.mean_curve(best["rank"], best["split"], best["partition"]).min()
    assert cal.target_val_loss == pytest.approx(cal.initial_val_loss - 0.9 * (cal.initial_val_loss - lowest))
    # the shipped table was measured on the shipped backbone, fitted with this package's progress model, from
    # switch schedules as well as fixed cells
    from fedsllm_env.splitfed.model import shipped_tiny_dir

    marker = json.loads((shipped_tiny_dir() / "fedsllm_pretrain.json").read_text())
    assert raw["settings"]["backbone"] == {"backbone": "tiny-gpt2", "source": "shipped",
                                           "weights_sha256": marker["sha256"]["model.safetensors"]}
    assert len(cal.schedules) >= 10 and raw["progress_model"]["switch_fit"]["schedules"] == len(cal.schedules)
    assert raw["progress_model"]["switch_fit"]["rmse"] <= raw["progress_model"]["switch_fit"]["rmse_memoryless"]


def test_a_prefix_of_a_shipped_run_is_re_made_from_the_recorded_settings():
    """Anyone can re-run a shipped run: the backbone ships, the settings are recorded. Bit-identical on the machine
    that made the table; across CPUs the last digits differ, so two rounds must land within 1e-3 of the curve."""
    from fedsllm_env.splitfed.calibrate import recheck_cell

    result = recheck_cell(load_calibration().raw, 64, 1, "iid", 0, rounds=2)
    assert result["rounds"] == 2 and len(result["curve"]) == 2
    assert result["backbone_now"] == result["backbone_recorded"]
    assert result["max_abs_diff"] < 1e-3, result


# ---- the surrogate replays E(r, c) for the configured partition ------------------------------------------------
def _episode_rounds(cal, split, rank, partition="iid", max_rounds=60):
    from fedsllm_env.backends import SurrogateBackend

    cfg = FedsLLMConfig.from_dict({"model": {"ranks": [1, 4], "initial_rank": 4},
                                   "training": {"partition": partition}})
    sur = SurrogateBackend(cal, cfg)
    sur.noise_std = 0.0
    sur.reset(0)
    for t in range(1, max_rounds + 1):
        if sur.run_round(split, rank).val_loss <= cal.target_val_loss:
            return t
    return None


def test_surrogate_replays_split_dependent_convergence_and_censoring(tmp_path):
    cal = _v2(tmp_path, {1: [0, 10], 3: [0, 20]}, partitions=("iid", "dirichlet"))
    fast, slow = _episode_rounds(cal, 1, 4), _episode_rounds(cal, 3, 4)
    assert fast is not None and slow is not None and slow > fast
    assert _episode_rounds(cal, 1, 1) is None  # censored: never reaches the target, truncated by the env
    assert _episode_rounds(cal, 1, 4, "dirichlet") == fast
    with pytest.raises(CalibrationError, match="training.partition='dirichlet' is not calibrated"):
        _episode_rounds(_v2(tmp_path, {1: [10, 10]}), 1, 4, "dirichlet")


def test_env_reports_expected_rounds_of_the_chosen_split(tmp_path):
    from fedsllm_env.env import FedsLLMEnv

    cal = _v2(tmp_path, {1: [10, 8], 3: [24, 16]})
    env = FedsLLMEnv({"calibration_path": str(tmp_path / "v2.json"), "training": {"seq_len": 16},
                      "model": {"ranks": [1, 4], "initial_rank": 4}})
    env.reset(seed=0)
    assert env.rounds_needed(4, 3) == cal.rounds_needed(4, 3) > env.rounds_needed(4, 1)


# ---- the command -------------------------------------------------------------------------------------------------
def test_cli_runs_a_tiny_sweep_and_resumes(tiny_overrides, reference, tmp_path, capsys):
    from train_scripts.cli import main

    cfg_file = tmp_path / "tiny.json"
    cfg_file.write_text(json.dumps(tiny_overrides))
    out = tmp_path / "cli" / "cal.json"
    argv = ["calibrate", "--config", str(cfg_file), "--ranks", "1", "4", "--splits", "1", "2", "--partitions",
            "iid", "dirichlet", "--seeds", "0", "1", "--max-rounds", "4", "--out", str(out)]
    main(argv)
    text = capsys.readouterr().out
    assert "| iid | 2 | 4 |" in text and "censored" in text and "16 runs (0 already finished" in text
    cal = load_calibration(out)
    assert _measured(cal.raw) == _measured(reference[0])
    assert cal.raw["command"].startswith("fedsllm calibrate --config")
    main(argv)
    assert "16 runs (16 already finished" in capsys.readouterr().out


def test_cli_default_out_is_outside_the_package_and_stable(tiny_overrides):
    from fedsllm_env.splitfed.calibrate import package_dir
    from train_scripts.calibrate import default_out

    cfg = FedsLLMConfig.from_dict(tiny_overrides)
    a, b = default_out(cfg, 60, 1), default_out(cfg, 60, 1)
    assert a == b and a.parts[:2] == ("runs", "calibration") and not a.resolve().is_relative_to(package_dir())
    assert default_out(cfg, 61, 1) != a and default_out(cfg, 60, 2) != a


def test_ray_sweep_equals_the_sequential_one(tiny_overrides, reference, tmp_path):
    pytest.importorskip("ray")
    from train_scripts.calibrate import Args, run

    cfg_file = tmp_path / "tiny.json"
    cfg_file.write_text(json.dumps(tiny_overrides))
    out = run(Args(out=str(tmp_path / "ray" / "cal.json"), config=str(cfg_file), ranks=(1, 4), splits=(1, 2),
                   partitions=("iid", "dirichlet"), seeds=(0, 1), max_rounds=4, ray_address="local",
                   ray_num_cpus=2))
    import ray

    assert not ray.is_initialized()  # shut down after the sweep
    cal = load_calibration(out)
    assert cal.raw["settings"]["ray_address"] == "local"
    assert _measured(cal.raw) == _measured(reference[0])  # bit-for-bit the sequential losses


@pytest.mark.parametrize("device, gpus", [("cpu", 0.0), ("cuda:0", 0.25)])
def test_ray_path_declares_cpus_and_gpu_fractions(tiny_overrides, reference, tmp_path, monkeypatch, device, gpus):
    """The --ray-address path (Ray replaced by an in-process stand-in): one task per run with its resources."""
    import contextlib

    import train_scripts._ray as ray_helpers
    import train_scripts.calibrate as script

    seen: dict = {}

    @contextlib.contextmanager
    def fake_session(address, num_cpus=None, **_):
        seen["session"] = (address, num_cpus)
        yield None

    def fake_map(fn, args_list, num_cpus=1.0, num_gpus=0.0):
        seen.setdefault("resources", set()).add((num_cpus, num_gpus))
        seen["tasks"] = len(args_list)
        return sequential_map(fn, args_list)

    monkeypatch.setattr(ray_helpers, "ray_session", fake_session)
    monkeypatch.setattr(ray_helpers, "ray_map_unordered", fake_map)
    monkeypatch.setattr(script, "_device", lambda cfg: device)
    cfg_file = tmp_path / "tiny.json"
    cfg_file.write_text(json.dumps(tiny_overrides))
    out = script.run(script.Args(out=str(tmp_path / "cal.json"), config=str(cfg_file), ranks=(1, 4), splits=(2,),
                                 partitions=("iid",), seeds=(1,), max_rounds=4, threads=1,
                                 ray_address="ray://head:10001", ray_num_cpus=0, gpus_per_run=0.25))
    assert seen == {"session": ("ray://head:10001", None), "resources": {(1, gpus)}, "tasks": 2}
    ref = {(c["rank"], c["split"], c["partition"]): c["val_loss_curves"][1] for c in reference[0]["cells"]}
    cal = load_calibration(out)
    for rank in (1, 4):
        assert cal.raw["cells"][(rank == 4)]["val_loss_curves"][0] == ref[(rank, 2, "iid")]


# ---- heterogeneous profiles ------------------------------------------------------------------------------------
def test_profile_runs_are_stored_apart_and_a_uniform_profile_is_the_fixed_run(tiny_overrides, reference, tmp_path):
    """A profile run trains with a cut and a rank per client; it lands in the table's ``profiles`` (never in the
    E(r, c) cells or the target), and a profile with every client at (c, r) reproduces the fixed run exactly."""
    import shutil

    out = tmp_path / "prof" / "cal.json"
    shutil.copytree(runs_dir_for(reference[1]), runs_dir_for(out))  # the grid's runs are reused, not re-trained
    res = calibrate(FedsLLMConfig.from_dict(tiny_overrides), **GRID, max_rounds=4, out_path=out,
                    profiles=["c1r4", "c1.2.1r4.1.1@svd"], schedule_seeds=[0], schedule_partitions=["iid"])
    assert _measured(res) == _measured(reference[0])
    names = sorted(p.stem for p in runs_dir_for(out).glob("prof_*.json"))
    assert names == ["prof_c1.2.1r4.1.1_svd_iid_seed0", "prof_c1r4_iid_seed0"]
    cal = load_calibration(out)
    by_text = {p["profile"]: p for p in cal.profiles}
    assert set(by_text) == {"c1r4", "c1.2.1r4.1.1@svd"}
    np.testing.assert_array_equal(by_text["c1r4"]["val_loss_curves"][0], cal.seed_curves(4, 1, "iid")[0])
    assert not np.array_equal(by_text["c1.2.1r4.1.1@svd"]["val_loss_curves"][0], cal.seed_curves(4, 1, "iid")[0])
    assert res["settings"]["profiles"] == ["c1.2.1r4.1.1@svd", "c1r4"]


def test_profile_errors_name_the_problem(tiny_overrides, tmp_path):
    from fedsllm_env.errors import UsageError
    from fedsllm_env.schedules import parse_profile

    with pytest.raises(UsageError, match="lists 2 cuts but the run has K = 3"):
        calibrate(FedsLLMConfig.from_dict(tiny_overrides), **GRID, max_rounds=2, out_path=tmp_path / "c.json",
                  profiles=["c1.2r4"])
    with pytest.raises(UsageError, match="beyond|splits must be"):
        calibrate(FedsLLMConfig.from_dict(tiny_overrides), **GRID, max_rounds=2, out_path=tmp_path / "c.json",
                  profiles=["c1.9.1r4"])
    for text, match in (("c1r4@mean", "aggregation rule 'mean'"), ("c1.2r4.4.4", "2 cuts but 3 ranks"),
                        ("c0r4", ">= 1"), ("r4c1", "not c<cuts>r<ranks>")):
        with pytest.raises(UsageError, match=match):
            parse_profile(text)
    assert parse_profile(" c1.2.1r4.1.1@zero_pad ").text == "c1.2.1r4.1.1"


def test_digest_of_a_config_with_the_later_fields_at_default_is_unchanged():
    """Fields added after a table was measured (heterogeneous, model.aggregation) do not change the digest at
    their defaults, so the shipped table's runs stay reusable; set to something else, they do."""
    from fedsllm_env.splitfed.calibrate import run_digest

    shipped = load_calibration()
    cfg = FedsLLMConfig.from_dict(shipped.raw["settings"]["config"])
    s = shipped.raw["settings"]
    assert run_digest(cfg.to_dict(), s["max_rounds"], s["threads"]) == s["digest"]
    other = cfg.replace(model=cfg.model.replace(aggregation="svd"))
    assert run_digest(other.to_dict(), s["max_rounds"], s["threads"]) != s["digest"]
    fleet = cfg.replace(compute=cfg.compute.replace(device_class_flops_per_cycle=(2.0, 20.0)))
    assert run_digest(fleet.to_dict(), s["max_rounds"], s["threads"]) != s["digest"]

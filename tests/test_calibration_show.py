"""``fedsllm calibrate --show FILE``: the E(r, c) tables of an existing calibration, nothing trained."""

from __future__ import annotations

import json

import numpy as np

from fedsllm_env.calibration import build_calibration
from tests.conftest import TEST_SHAPE


def test_show_prints_the_grid_with_seed_spread_and_censored_cells(tmp_path, capsys):
    from train_scripts.calibrate import main

    runs = []
    for r in (4, 16):
        for c in (1, 3):
            for seed in (0, 1):
                tau = 6.0 * (1.5 if r == 4 else 1.0) * (1.0 + 0.1 * c) * (1.0 + 0.1 * seed)
                if (r, c, seed) == (4, 3, 1):
                    tau = 60.0  # this run never reaches the target: the cell is censored
                curve = [1.0 + 3.0 * float(np.exp(-(t + 1) / tau)) for t in range(30)]
                runs.append({"rank": r, "split": c, "partition": "iid", "seed": seed, "initial_val_loss": 4.0,
                             "val_loss_curve": curve, "train_loss_curve": curve})
    settings = {"timing": {"sweep_wall_s": 100.4, "run_wall_s_sum": 190.0, "mean_round_wall_s": 1.1},
                "ray_address": "local"}
    path = tmp_path / "cal.json"
    path.write_text(json.dumps(build_calibration(runs, TEST_SHAPE, settings, 30, "iid", "test")))
    main(["--show", str(path), "--out", str(tmp_path / "never" / "calibration.json")])
    out = capsys.readouterr().out
    assert "sweep wall time 100 s (runs' wall times summed 190 s, 1.10 s per round on average; local)" in out
    header = "| partition | split | r = 4 | r = 16 |"
    assert header in out
    rows = out.split(header)[1].splitlines()[2:4]  # after the header and the |---| line
    grid = {row.split("|")[2].strip(): [x.strip() for x in row.split("|")[3:5]] for row in rows}
    assert grid["3"][0] == "censored 1/2" and grid["1"][0].count("±") == 1
    e1, std1 = (float(x) for x in grid["1"][1].split(" ± "))
    assert e1 > 0 and std1 > 0  # the two seeds differ (tau depends on the seed)
    assert not (tmp_path / "never").exists()  # nothing trained, nothing written


def test_show_into_a_pipe_closed_early_is_not_an_error():
    """``fedsllm calibrate --show FILE | head -1``: the reader leaves early; no traceback, exit status 0."""
    import subprocess
    import sys

    code = ("import sys; sys.argv = ['fedsllm', 'calibrate', '--show', 'fedsllm_env/data/calibration.json']; "
            "from train_scripts.cli import main; sys.exit(main())")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=str(__import__("pathlib").Path(__file__).resolve().parents[1]))
    proc.stdout.close()  # the reader goes away before the first line (as `head` does after its lines)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err

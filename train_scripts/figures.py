"""Figures: total training delay of the optimizer, the heuristics (and an agent) vs system parameters.

Each point is the paper's objective ``E(r) * T_round`` (``info["expected_total_delay_s"]``) averaged
over the first ``--rounds-per-point`` rounds of seeded episodes of the surrogate env (cheap; the
scenario and channels depend only on the seed). Sweeps: number of clients, subchannel bandwidth
(MS and FS links together), total client power budget on each link (``total_power_ms_w`` =
``total_power_fs_w``), and LoRA rank (``model.ranks`` restricted to one value). With ``--run`` the
training curves of a train.py run (monitor CSVs, EvalCallback log) are plotted too. With ``--presets``
(names of ``fedsllm_env.presets.PRESETS``, or ``all``) every policy is also scored in each scenario preset
(``preset_comparison.png``: total delay relative to the optimizer, and a table of the optimizer's (c, r)
per preset and number of clients ``--preset-clients``). With ``--backbone-report FILE`` the calibration's
mean validation curves are drawn beside the backbone's reference losses (``convergence_curves.png``).
``--no-sweeps`` skips the parameter sweeps.
Writes PNGs (matplotlib Agg) and ``figures.json`` (the plotted numbers).

Example::

    python -m train_scripts.figures --agent runs/FedsLLM-Surrogate-v0__ppo__1__1700000000 \
        --run runs/FedsLLM-Surrogate-v0__ppo__1__1700000000
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tyro  # noqa: E402

from agents.evaluation import evaluate_policy_on_seeds, make_eval_env, merge_config  # noqa: E402
from agents.factory import BOX_ENV_ID  # noqa: E402
from fedsllm_env.calibration import load_calibration  # noqa: E402
from fedsllm_env.config import FedsLLMConfig, merge_overrides  # noqa: E402
from fedsllm_env.errors import ConfigError, MissingFileError, UsageError  # noqa: E402
from fedsllm_env.registration import PRIORITY_IDS  # noqa: E402
from train_scripts._checks import at_least, check_baselines, check_env_config, non_empty  # noqa: E402
from train_scripts._common import (  # noqa: E402
    baseline_factory,
    baseline_names,
    env_overrides,
    read_json_or_yaml,
    resolve_policy,
    run_name,
    save_run_config,
    write_json,
)
from train_scripts.seeding import seed_everything  # noqa: E402


@dataclass
class Args:
    """Plot total delay vs system parameters, and training curves."""

    policies: tuple[str, ...] = ()
    """Baselines to plot (() = all of baselines.policy.BASELINE_NAMES)."""
    agent: str = ""
    """A saved agent zip or run folder to add where its spaces fit ("" = none)."""
    run: str = ""
    """A train.py run folder whose training curves to plot ("" = none)."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Scenario seeds averaged at every point."""
    rounds_per_point: int = 3
    """Rounds played per seed and point (E(r) * T_round is averaged over them)."""
    clients: tuple[int, ...] = (2, 4, 6, 8, 10)
    """Numbers of clients K (subchannels per link are raised to K when fewer)."""
    bandwidths_mhz: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)
    """Subchannel bandwidths B_s = B_f, MHz."""
    power_budgets_w: tuple[float, ...] = (0.1, 0.2, 0.4, 0.8, 1.6)
    """Total client power budgets p_th^s = p_th^f, W."""
    ranks: tuple[int, ...] = ()
    """Fixed LoRA ranks (() = the config's model.ranks)."""
    calibration_path: str = ""
    """Calibration JSON ("" = the table shipped with the package)."""
    config: str = ""
    """JSON/YAML file of nested env config overrides ("" = none)."""
    preset: str = ""
    """Scenario preset (fedsllm_env.presets.PRESETS: paper-default, server-scarce, ...) under --config ("" = none)."""
    out_dir: str = ""
    """Output folder ("" = runs/<run_name>/figures)."""
    runs_dir: str = "runs"
    """Parent folder of the default output folder."""
    seed: int = 0
    """Seed of the global RNGs."""
    torch_threads: int = 1
    """torch intra-op threads."""
    presets: tuple[str, ...] = ()
    """Scenario presets to compare the policies in ("all" = every preset; () = none)."""
    preset_clients: tuple[int, ...] = ()
    """Numbers of clients K at which to report the optimizer's (c, r) in each preset (() = the preset's own K)."""
    backbone_report: str = ""
    """JSON written by ``fedsllm backbone-report --out``: draw convergence_curves.png (the calibration's mean
    validation curves per rank and cut) with its uniform / unigram / bigram losses beside them ("" = no)."""
    sweeps: bool = True
    """Draw the parameter sweeps (clients, bandwidth, power, rank)."""


def _point(policy: Any, cfg: dict[str, Any], seeds: Sequence[int], rounds: int, name: str,
           env_id: str = BOX_ENV_ID) -> float:
    records = evaluate_policy_on_seeds(policy, env_id, list(seeds), config=cfg, max_rounds=rounds, name=name)
    return float(np.mean([r.mean_expected_total_delay_s for r in records]))


def _agent_env_id(model: Any, cfg: dict[str, Any]) -> str | None:
    """The surrogate id (Box or Priority) whose spaces fit the agent at this config, None if neither does."""
    for env_id in (BOX_ENV_ID, PRIORITY_IDS["surrogate"]):
        env = make_eval_env(env_id, cfg)
        try:
            if (env.observation_space.shape == model.observation_space.shape
                    and env.action_space.shape == model.action_space.shape):
                return env_id
        finally:
            env.close()
    return None


def sweep(policies: dict[str, Any], base: dict[str, Any], patches: Sequence[tuple[float, dict[str, Any]]],
          seeds: Sequence[int], rounds: int, agent: tuple[str, Any] | None = None) -> dict[str, list[float]]:
    """Mean E(r)*T_round per policy at every point of a sweep (NaN where an agent's spaces do not fit)."""
    curves: dict[str, list[float]] = {name: [] for name in policies}
    if agent is not None:
        curves[agent[0]] = []
    for _, patch in patches:
        cfg = merge_overrides(base, patch)
        for name, factory in policies.items():
            curves[name].append(_point(factory, cfg, seeds, rounds, name))
        if agent is not None:
            model = agent[1]
            env_id = _agent_env_id(model, cfg)
            curves[agent[0]].append(math.nan if env_id is None else _point(model, cfg, seeds, rounds, agent[0], env_id))
    return curves


def _plot(path: Path, xs: Sequence[float], curves: dict[str, list[float]], xlabel: str, title: str,
          logx: bool = False) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, ys in curves.items():
        style = {"linewidth": 2.5, "color": "black"} if name == "optimizer" else {}
        ax.plot(xs, ys, marker="o", label=name, **style)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("total training delay E(r)·T_round (s)")
    ax.set_yscale("log")
    if logx:
        ax.set_xscale("log", base=2)
    ax.set_xticks(list(xs))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def read_monitor(folder: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(cumulative timesteps, episode returns) from the Monitor CSVs of a run, in time order."""
    rows: list[tuple[float, float, int]] = []
    for path in sorted(Path(folder).glob("*.monitor.csv")):
        with path.open() as fh:
            fh.readline()  # '#{"t_start": ...}' header
            records = list(csv.DictReader(fh))
        for i, row in enumerate(records):
            try:
                rows.append((float(row["t"]), float(row["r"]), int(row["l"])))
            except (KeyError, TypeError, ValueError) as e:
                if i == len(records) - 1:  # the last row of a killed run may be cut short
                    break
                raise UsageError(f"{path}: row {i + 1} is not a Monitor row (r,l,t): {row}") from e
    rows.sort()
    if not rows:
        return np.zeros(0), np.zeros(0)
    lengths = np.array([r[2] for r in rows])
    return np.cumsum(lengths), np.array([r[1] for r in rows])


def plot_training_curves(run_dir: str | Path, out: Path, delay_scale_s: float = 1.0) -> dict[str, Any]:
    """Plot episode total delay (-return * delay_scale_s) during training, and the EvalCallback curve."""
    run_dir = Path(run_dir)
    steps, returns = read_monitor(run_dir / "monitor")
    data: dict[str, Any] = {"train_steps": steps.tolist(), "train_total_delay_s": (-returns * delay_scale_s).tolist()}
    fig, ax = plt.subplots(figsize=(6, 4))
    if len(steps):
        delay = -returns * delay_scale_s
        window = max(1, min(50, len(delay) // 10))
        smooth = np.convolve(delay, np.ones(window) / window, mode="valid")
        ax.plot(steps, delay, alpha=0.25, label="training episodes (stochastic policy)")
        ax.plot(steps[window - 1:], smooth, label=f"moving mean ({window} episodes)")
    eval_file = run_dir / "eval" / "evaluations.npz"
    if eval_file.is_file():
        ev = np.load(eval_file)
        mean = -ev["results"].mean(axis=1) * delay_scale_s
        ax.plot(ev["timesteps"], mean, marker="o", label="evaluation (deterministic)")
        data["eval_steps"], data["eval_total_delay_s"] = ev["timesteps"].tolist(), mean.tolist()
    ax.set_xlabel("environment steps (training rounds)")
    ax.set_ylabel("episode total delay (s)")
    ax.set_yscale("log")
    ax.set_title(f"training curve: {run_dir.name}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return data


def _mode(values: Sequence[Any]) -> Any:
    """Most frequent value (the first of equals in order of appearance)."""
    counts: dict[Any, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return max(counts, key=counts.__getitem__)


def preset_comparison(policies: dict[str, Any], base: dict[str, Any], presets: Sequence[str], seeds: Sequence[int],
                      rounds: int) -> dict[str, dict[str, Any]]:
    """Per preset: mean E(r, c)*T_round of every policy, and the optimizer's most frequent (c, r).

    ``base`` (the command's own overrides) is applied over each preset.
    """
    from fedsllm_env.presets import with_preset

    out: dict[str, dict[str, Any]] = {}
    for preset in presets:
        cfg = with_preset(preset, base)
        row: dict[str, Any] = {"delay_s": {}, "choice": {}}
        for name, factory in policies.items():
            records = evaluate_policy_on_seeds(factory, BOX_ENV_ID, list(seeds), config=cfg, max_rounds=rounds,
                                               name=name)
            row["delay_s"][name] = float(np.mean([r.mean_expected_total_delay_s for r in records]))
            row["choice"][name] = list(_mode([(c, r) for rec in records for c, r in zip(rec.splits, rec.ranks)]))
        out[preset] = row
    return out


def preset_choices(base: dict[str, Any], presets: Sequence[str], clients: Sequence[int], seeds: Sequence[int],
                   rounds: int) -> dict[str, dict[int, list[int]]]:
    """The optimizer's most frequent (c, r) per preset and number of clients K (subchannels raised to K)."""
    from fedsllm_env.presets import with_preset

    out: dict[str, dict[int, list[int]]] = {}
    for preset in presets:
        out[preset] = {}
        for k in clients:
            cfg = with_preset(preset, base)
            w = FedsLLMConfig.from_dict(cfg).wireless
            cfg = merge_overrides(cfg, {"wireless": {"num_clients": int(k),
                                                     "num_subchannels_ms": max(k, w.num_subchannels_ms),
                                                     "num_subchannels_fs": max(k, w.num_subchannels_fs)}})
            records = evaluate_policy_on_seeds(baseline_factory("optimizer"), BOX_ENV_ID, list(seeds), config=cfg,
                                               max_rounds=rounds, name="optimizer")
            out[preset][int(k)] = list(_mode([(c, r) for rec in records for c, r in zip(rec.splits, rec.ranks)]))
    return out


def plot_presets(path: Path, data: dict[str, dict[str, Any]]) -> None:
    """Grouped bars: each policy's total delay relative to the optimizer's, per preset."""
    presets = list(data)
    names = [n for n in next(iter(data.values()))["delay_s"] if n != "optimizer"]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(presets)), 4))
    width = 0.8 / max(1, len(names))
    top = 1.0
    for i, name in enumerate(names):
        ys = [data[p]["delay_s"][name] / data[p]["delay_s"]["optimizer"] for p in presets]
        top = max([top] + [y for y in ys if math.isfinite(y)])
        ax.bar(np.arange(len(presets)) + (i - (len(names) - 1) / 2) * width, ys, width, label=name)
    ax.axhline(1.0, color="black", linewidth=1.5, label="optimizer")
    ax.set_xticks(np.arange(len(presets)))
    ax.set_xticklabels([f"{p}\n(c={data[p]['choice']['optimizer'][0]}, r={data[p]['choice']['optimizer'][1]})"
                        for p in presets], fontsize=8)
    ax.set_ylabel("total delay E(r, c)·T_round / optimizer's")
    if top > 5.0:
        ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%gx"))
    ax.set_title("conventional schemes vs the optimizer, per scenario preset")
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def print_presets(data: dict[str, dict[str, Any]], choices: dict[str, dict[int, list[int]]]) -> None:
    """Markdown tables: delay per policy and preset (s, and x the optimizer), the optimizer's (c, r) per K."""
    names = list(next(iter(data.values()))["delay_s"])
    print("| preset | optimizer (c, r) | " + " | ".join(names) + " |")
    print("|---|---|" + "---:|" * len(names))
    for preset, row in data.items():
        opt = row["delay_s"]["optimizer"]
        c, r = row["choice"]["optimizer"]
        cells = [f"{row['delay_s'][n]:.3g} s" + ("" if n == "optimizer" else f" ({row['delay_s'][n] / opt:.2f}x)")
                 for n in names]
        print(f"| {preset} | ({c}, {r}) | " + " | ".join(cells) + " |")
    if choices:
        ks = sorted({k for per in choices.values() for k in per})
        print("\n| preset | " + " | ".join(f"K = {k}" for k in ks) + " |")
        print("|---|" + "---|" * len(ks))
        for preset, per in choices.items():
            print(f"| {preset} | " + " | ".join(f"c = {per[k][0]}, r = {per[k][1]}" for k in ks) + " |")


def plot_convergence(path: Path, cal: Any, report: dict[str, Any]) -> dict[str, Any]:
    """Seed-mean validation curves of the calibration (one panel per partition; colour = rank, line style =
    cut) beside the reference losses of a backbone report and the target; returns the plotted numbers."""
    parts = list(cal.partitions)
    fig, axes = plt.subplots(1, len(parts), figsize=(6 * len(parts), 4.5), sharey=True, squeeze=False)
    styles = ["-", "--", ":", "-."]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    task = report["task"]
    refs = [("uniform ln V", task["uniform"]), ("unigram (pre-training counts)", task["unigram_pretrain"]),
            ("bigram (pre-training counts)", task["bigram_pretrain"]), ("unigram (task counts)", task["unigram_task"]),
            ("bigram (task counts)", task["bigram_task"])]
    data: dict[str, Any] = {"references": dict(refs), "target": cal.target_val_loss,
                            "initial": cal.initial_val_loss, "curves": {}}
    for ax, part in zip(axes[0], parts):
        for i, rank in enumerate(cal.ranks):
            for j, split in enumerate(cal.splits):
                curve = cal.mean_curve(rank, split, part)
                data["curves"][f"{part}/r{rank}/c{split}"] = [float(x) for x in curve]
                ax.plot(np.arange(len(curve) + 1), [cal.initial_val_loss, *curve], styles[j % len(styles)],
                        color=colours[i % len(colours)], linewidth=1.2,
                        label=f"r = {rank}" if j == 0 else None)
        for k, (name, value) in enumerate(refs):
            ax.axhline(value, color="grey", linestyle=(0, (1, 1 + k)), linewidth=1)
            ax.annotate(f"{name} {value:.2f}", (cal.horizon_rounds * (1.0 - 0.45 * (k % 2)), value), fontsize=7,
                        ha="right", va="bottom", color="dimgrey")
        ax.axhline(cal.target_val_loss, color="black", linewidth=1.5)
        ax.annotate(f"target {cal.target_val_loss:.3f}", (0, cal.target_val_loss), fontsize=8, va="bottom")
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.set_xlabel("round")
        ax.set_title(f"{part}: cut " + " / ".join(f"{c} ({styles[j % len(styles)]})" for j, c in enumerate(cal.splits)))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("validation loss (nats / token)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return data


def sweeps_of(args: Args, full: FedsLLMConfig) -> dict[str, tuple[Any, ...]]:
    """Sweep name -> (x values, (x, config patch) per point, x label, log x axis)."""
    w = full.wireless
    ranks = converging_ranks(args.ranks or full.model.ranks, full)
    return {
        "clients": ([float(k) for k in args.clients],
                    [(k, {"wireless": {"num_clients": k, "num_subchannels_ms": max(k, w.num_subchannels_ms),
                                       "num_subchannels_fs": max(k, w.num_subchannels_fs)}}) for k in args.clients],
                    "number of clients K", False),
        "bandwidth": (list(args.bandwidths_mhz),
                      [(b, {"wireless": {"subchannel_bandwidth_ms_hz": b * 1e6, "subchannel_bandwidth_fs_hz": b * 1e6}})
                       for b in args.bandwidths_mhz],
                      "subchannel bandwidth B_s = B_f (MHz)", True),
        "power": (list(args.power_budgets_w),
                  [(p, {"wireless": {"total_power_ms_w": p, "total_power_fs_w": p}}) for p in args.power_budgets_w],
                  "total client power budget per link p_th (W)", True),
        "rank": ([float(r) for r in ranks],
                 [(r, {"model": {"ranks": [r], "initial_rank": r}}) for r in ranks],
                 "LoRA rank r (fixed)", True),
    }


def _mean_label(values: Sequence[float]) -> str:
    """A sweep's mean for the printed summary: NaN points are where an agent's spaces do not fit, inf points where
    a policy chose a rank that never reaches the target (censored)."""
    v = np.asarray(values, dtype=float)
    if np.isnan(v).all():
        return "n/a (spaces differ)"
    if np.isinf(v).any():
        return f"inf (censored at {int(np.isinf(v).sum())} of {v.size} points)"
    return f"{np.nanmean(v):.3g}s"


def converging_ranks(ranks: Sequence[int], full: FedsLLMConfig) -> list[int]:
    """The ranks of ``ranks`` that reach the calibration's target at some cut (for the config's partition); the
    others are censored at every cut (E = inf: no policy can finish training with them), so the rank sweep leaves
    them out and says so."""
    cal = load_calibration(full.calibration_path or None)
    part = full.training.partition
    keep = [int(r) for r in ranks  # a rank the calibration lacks stays: the sweep's config check names it
            if int(r) not in cal.ranks
            or any(math.isfinite(cal.rounds_needed(int(r), c, part)) for c in range(1, cal.shape.n_layer))]
    dropped = [int(r) for r in ranks if int(r) not in keep]
    if dropped:
        print(f"rank sweep: rank(s) {dropped} left out: censored at every cut in the calibration ({part}: no run "
              f"reached the target within {cal.horizon_rounds} rounds)")
    if not keep:
        raise UsageError(f"--ranks {list(ranks)}: every rank is censored at every cut in the calibration")
    return keep


def main(argv: Sequence[str] | None = None) -> Path:
    """Compute the sweeps, write the PNGs and figures.json; returns the output folder."""
    args = tyro.cli(Args, args=argv, prog="fedsllm figures")
    non_empty(seeds=args.seeds, clients=args.clients, bandwidths_mhz=args.bandwidths_mhz,
              power_budgets_w=args.power_budgets_w)
    at_least(rounds_per_point=(args.rounds_per_point, 1), torch_threads=(args.torch_threads, 1))
    base = env_overrides(args.config, args.calibration_path, preset=args.preset)
    check_env_config(base)
    if args.policies:
        check_baselines(args.policies, "--policies")
    if args.run and not (Path(args.run) / "monitor").is_dir():
        raise MissingFileError(f"--run {args.run}: not a training run folder (it has no monitor/ folder)")
    from fedsllm_env.presets import PRESETS, with_preset

    presets = list(PRESETS) if tuple(args.presets) == ("all",) else list(args.presets)
    for name in presets:  # every preset (with the command's overrides over it) must be a valid config
        if name not in PRESETS:
            raise UsageError(f"--presets: unknown preset {name!r}; choose from {sorted(PRESETS)} or 'all'")
        check_env_config(with_preset(name, base))
    at_least(**{f"preset_clients[{i}]": (k, 1) for i, k in enumerate(args.preset_clients)})
    defaults = merge_config(base)
    full = FedsLLMConfig.from_dict(defaults)
    sweeps = sweeps_of(args, full) if args.sweeps else {}
    if args.backbone_report and not Path(args.backbone_report).is_file():
        raise MissingFileError(f"--backbone-report {args.backbone_report} does not exist (write it with "
                               "`fedsllm backbone-report --out FILE`)")
    for key, (_, patches, _, _) in sweeps.items():  # every sweep point must be a valid config
        for x, patch in patches:
            try:
                FedsLLMConfig.from_dict(merge_overrides(defaults, patch))
            except (ConfigError, TypeError) as e:
                raise UsageError(f"the {key} sweep at {x:g} gives an invalid config: {e}") from e

    # ---- seeding: the only place global RNGs are touched --------------------------------------
    seed_everything(args.seed, args.torch_threads)

    names = tuple(args.policies) or baseline_names()
    policies: dict[str, Callable[..., Any]] = {name: baseline_factory(name) for name in names}
    agent = None
    if args.agent:
        res = resolve_policy(args.agent)
        agent = (res.name, res.policy)
    if args.out_dir:
        out = Path(args.out_dir)
    else:
        out = Path(args.runs_dir) / run_name(BOX_ENV_ID, "figures", args.seed) / "figures"
    out.mkdir(parents=True, exist_ok=True)
    save_run_config(out, args, base)
    data: dict[str, Any] = {}
    for key, (xs, patches, xlabel, logx) in sweeps.items():
        curves = sweep(policies, defaults, patches, args.seeds, args.rounds_per_point, agent)
        _plot(out / f"delay_vs_{key}.png", xs, curves, xlabel, f"total delay vs {xlabel}", logx)
        data[key] = {"x": xs, "curves": curves}
        means = {n: _mean_label(v) for n, v in curves.items()}
        print(f"delay_vs_{key}.png (mean over x): " + ", ".join(f"{n}={m}" for n, m in means.items()))
    if args.backbone_report:
        report = read_json_or_yaml(args.backbone_report)
        cal = load_calibration(FedsLLMConfig.from_dict(base).calibration_path or None)
        data["convergence"] = plot_convergence(out / "convergence_curves.png", cal, report)
        print("convergence_curves.png")
    if presets:
        data["presets"] = preset_comparison(policies, base, presets, args.seeds, args.rounds_per_point)
        choices = preset_choices(base, presets, args.preset_clients, args.seeds, args.rounds_per_point) \
            if args.preset_clients else {}
        data["preset_choices"] = choices
        plot_presets(out / "preset_comparison.png", data["presets"])
        print_presets(data["presets"], choices)
        print("preset_comparison.png")
    if args.run:
        data["training"] = plot_training_curves(args.run, out / "training_curve.png", full.reward.delay_scale_s)
        print("training_curve.png")
    write_json(out / "figures.json", data)
    print(f"figures in {out}")
    return out


if __name__ == "__main__":
    from train_scripts.cli import run_as_script

    run_as_script("figures")

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

import numpy as np
import tyro

from agents.evaluation import clients_of_spaces, evaluate_policy_on_seeds, make_eval_env, merge_config, spaces_fit
from fedsllm_env.calibration import load_calibration
from fedsllm_env.config import FedsLLMConfig, merge_overrides
from fedsllm_env.errors import ConfigError, MissingFileError, UsageError
from fedsllm_env.registration import ENV_IDS, HETERO_PRIORITY_IDS, PRIORITY_IDS
from train_scripts._checks import at_least, check_baselines, check_env_config, non_empty
from train_scripts._common import (
    BOX_ENV_ID,
    baseline_factory,
    baseline_names,
    env_overrides,
    read_json_or_yaml,
    resolve_policy,
    run_name,
    save_run_config,
    write_json,
)
from train_scripts.seeding import seed_everything

# matplotlib is imported by the plotting functions (through _pyplot), so `fedsllm figures --help` stays light


def _pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (files only, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plain_log_axis(axis: Any, suffix: str = "") -> None:
    """Plain tick labels on a log axis (``40, 50, 60`` for a 40-60 s range; ``2x`` with ``suffix="x"``), never
    ``4x10^1``: matplotlib's choice of which ticks to label (minor ticks only on narrow ranges), our text."""
    import matplotlib.ticker as ticker

    class Plain(ticker.LogFormatter):
        def _num_to_string(self, x: float, vmin: float, vmax: float) -> str:  # noqa: ARG002
            return f"{x:g}{suffix}"

    axis.set_major_formatter(Plain(labelOnlyBase=False))
    axis.set_minor_formatter(Plain(labelOnlyBase=False, minor_thresholds=(1, 0.4)))


def _footnote(fig: Any, lines: Sequence[str]) -> None:
    """Lines of small text under the axes (what each point averages, what is left out and why)."""
    import textwrap

    if not lines:
        fig.tight_layout()
        return
    width = int(fig.get_figwidth() * 17)  # characters of 7-point text across the figure
    wrapped = [w for line in lines for w in textwrap.wrap(line, width, subsequent_indent="  ")]
    height = 0.015 + 0.125 * len(wrapped) / fig.get_figheight()  # 7-point lines are ~0.125 inch apart
    fig.tight_layout(rect=(0, height, 1, 1))
    fig.text(0.01, 0.008, "\n".join(wrapped), fontsize=7, va="bottom", ha="left", color="dimgrey")


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


def _per_seed(records: Sequence[Any]) -> list[float]:
    """Each episode's mean E(r)*T_round over its rounds (one value per seed)."""
    return [float(r.mean_expected_total_delay_s) for r in records]


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard deviation over seeds (population std; inf mean and NaN std when a seed is infinite)."""
    v = np.asarray(values, dtype=float)
    if not np.isfinite(v).all():
        return float(v.mean()), math.nan
    return float(v.mean()), float(v.std())


def _point(policy: Any, cfg: dict[str, Any], seeds: Sequence[int], rounds: int, name: str,
           env_id: str = BOX_ENV_ID) -> tuple[float, float]:
    """(mean, std) over the seeds of each episode's mean E(r)*T_round over its first ``rounds`` rounds."""
    records = evaluate_policy_on_seeds(policy, env_id, list(seeds), config=cfg, max_rounds=rounds, name=name)
    return _mean_std(_per_seed(records))


AGENT_IDS = (BOX_ENV_ID, PRIORITY_IDS["surrogate"], ENV_IDS[("surrogate", "multidiscrete")],
             ENV_IDS[("surrogate", "hybrid")])
"""The surrogate ids an agent may act in, tried in this order at every sweep point."""


def _agent_env_id(model: Any, cfg: dict[str, Any]) -> str | None:
    """The surrogate id (Box, Priority, Discrete or Hybrid) whose spaces fit the agent at this config (same kind,
    shape and choices: :func:`agents.evaluation.spaces_fit`), None if none does; a K-invariant agent (no spaces
    of its own: it binds to each env) acts in the Priority id of its kind (shared or heterogeneous) at every config."""
    if not hasattr(model, "observation_space"):
        return (HETERO_PRIORITY_IDS if getattr(model, "heterogeneous", False) else PRIORITY_IDS)["surrogate"]
    for id_ in AGENT_IDS:
        env = make_eval_env(id_, cfg)
        try:
            if spaces_fit(model, env):
                return id_
        finally:
            env.close()
    return None


def agent_cell(policy: Any, trained_with: dict[str, Any], defaults: dict[str, Any]) -> str:
    """The cell a fixed-K agent was trained in, for the printed lines: ``K = 5, M = 10, N = 10`` from its run's
    config, else the K its spaces were built for (:func:`agents.evaluation.clients_of_spaces`, with the figures'
    M + N for a hybrid agent)."""
    if not hasattr(policy, "observation_space"):
        return "any K (a K-invariant agent)"
    if trained_with:
        try:
            w = FedsLLMConfig.from_dict(trained_with).wireless
            return f"K = {w.num_clients}, M = {w.num_subchannels_ms}, N = {w.num_subchannels_fs}"
        except (ConfigError, TypeError):
            pass
    w = FedsLLMConfig.from_dict(defaults).wireless
    k = clients_of_spaces(policy.observation_space, policy.action_space, w.num_subchannels_ms + w.num_subchannels_fs)
    return "an unknown K" if k is None else f"K = {k}"


def skipped_line(key: str, name: str, xs: Sequence[float], curve: Sequence[float], cell: str) -> str | None:
    """One line saying at which points of sweep ``key`` the agent ``name`` was skipped (its spaces do not fit
    there: NaN points), None when it acted everywhere."""
    nan = np.isnan(np.asarray(curve, dtype=float))
    if not nan.any():
        return None
    where = f"{SWEEP_SYMBOL.get(key, key)} = {_xtext(xs, nan)}"
    drawn = "left out of the legend" if nan.all() else "drawn at the other points"
    return (f"delay_vs_{key}: {name} skipped at {where}: a fixed-K agent acts only with the spaces it was trained "
            f"with ({cell}); {drawn}")


def sweep(policies: dict[str, Any], base: dict[str, Any], patches: Sequence[tuple[float, dict[str, Any]]],
          seeds: Sequence[int], rounds: int, agent: tuple[str, Any] | None = None,
          spread: dict[str, list[float]] | None = None) -> dict[str, list[float]]:
    """Mean E(r)*T_round per policy at every point of a sweep (NaN where an agent's spaces do not fit).

    ``spread``: filled with the standard deviation over the seeds of every point, when given.
    """
    curves: dict[str, list[float]] = {name: [] for name in policies}
    stds: dict[str, list[float]] = {name: [] for name in policies}
    if agent is not None:
        curves[agent[0]], stds[agent[0]] = [], []
    for _, patch in patches:
        cfg = merge_overrides(base, patch)
        for name, factory in policies.items():
            mean, std = _point(factory, cfg, seeds, rounds, name)
            curves[name].append(mean)
            stds[name].append(std)
        if agent is not None:
            model = agent[1]
            env_id = _agent_env_id(model, cfg)
            mean, std = (math.nan, math.nan) if env_id is None else _point(model, cfg, seeds, rounds, agent[0], env_id)
            curves[agent[0]].append(mean)
            stds[agent[0]].append(std)
    if spread is not None:
        spread.update(stds)
    return curves


def _averaging(seeds: Sequence[int], rounds: int) -> str:
    n = len(seeds)
    return (f"each point: mean over {n} scenario seed{'s' if n != 1 else ''} ({', '.join(map(str, seeds))}) of "
            f"E(r, c)·T_round averaged over the first {rounds} round{'s' if rounds != 1 else ''}"
            + ("; error bars: std over the seeds" if n > 1 else "; one seed: no error bars"))


def _xtext(xs: Sequence[float], mask: Sequence[bool]) -> str:
    return ", ".join(f"{x:g}" for x, m in zip(xs, mask) if m)


def _plot(path: Path, xs: Sequence[float], curves: dict[str, list[float]], xlabel: str, title: str,
          logx: bool = False, stds: dict[str, list[float]] | None = None, seeds: Sequence[int] = (),
          rounds: int = 0, labels: dict[str, str] | None = None, notes: Sequence[str] = (),
          short: str = "x") -> dict[str, str]:
    """One sweep: a line per policy with error bars (std over seeds); a policy without a finite point is left out of
    the axes and the legend and named under them with the reason; infinite or missing points are listed there.

    Returns:
        Policy -> why it (or some of its points) is not drawn.
    """
    plt = _pyplot()
    import matplotlib.ticker as ticker

    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    left_out: dict[str, str] = {}
    for name, ys in curves.items():
        y = np.asarray(ys, dtype=float)
        finite = np.isfinite(y)
        inf, nan = np.isinf(y), np.isnan(y)
        why = []
        if inf.any():
            why.append(f"infinite at {short} = {_xtext(xs, inf)} (it chose a rank that never reaches the target)")
        if nan.any():
            why.append(f"not applicable at {short} = {_xtext(xs, nan)} (its observation/action spaces are fixed by "
                       "the K it was trained with)")
        if why:
            left_out[name] = ("not drawn: " if not finite.any() else "points missing: ") + "; ".join(why)
        if not finite.any():
            continue
        err = np.asarray((stds or {}).get(name, [math.nan] * len(y)), dtype=float)
        err = np.where(finite & np.isfinite(err), err, 0.0)
        style = {"linewidth": 2.5, "color": "black", "zorder": 3} if name == "optimizer" else {}
        ax.errorbar(np.asarray(xs, dtype=float)[finite], y[finite], yerr=err[finite], marker="o", capsize=3,
                    label=(labels or {}).get(name, name), **style)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("total training delay E(r, c)·T_round (s)")
    ax.set_yscale("log")
    _plain_log_axis(ax.yaxis)
    if logx:
        ax.set_xscale("log", base=2)
    ax.set_xticks(list(xs))
    ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    ax.xaxis.set_minor_locator(ticker.NullLocator())
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    lines = [_averaging(seeds, rounds)] if seeds else []
    lines += list(notes) + [f"{name}: {why}" for name, why in left_out.items()]
    _footnote(fig, lines)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return left_out


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
    """Plot episode total delay (-return * delay_scale_s) during training, and the EvalCallback curve (mean of its
    episodes with the std over them as error bars)."""
    plt = _pyplot()
    run_dir = Path(run_dir)
    steps, returns = read_monitor(run_dir / "monitor")
    data: dict[str, Any] = {"train_steps": steps.tolist(), "train_total_delay_s": (-returns * delay_scale_s).tolist()}
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    notes = []
    if len(steps):
        delay = -returns * delay_scale_s
        window = max(1, min(50, len(delay) // 10))
        smooth = np.convolve(delay, np.ones(window) / window, mode="valid")
        ax.plot(steps, delay, alpha=0.25, label="training episodes (stochastic policy)")
        ax.plot(steps[window - 1:], smooth, label=f"moving mean ({window} episodes)")
        notes.append(f"faint: each training episode (one each, stochastic actions); line: moving mean of the last "
                     f"{window} episodes")
    eval_file = run_dir / "eval" / "evaluations.npz"
    if eval_file.is_file():
        ev = np.load(eval_file)
        results = -np.asarray(ev["results"], dtype=float) * delay_scale_s
        mean, std = results.mean(axis=1), results.std(axis=1)
        n = results.shape[1]
        ax.errorbar(ev["timesteps"], mean, yerr=std if n > 1 else None, marker="o", capsize=3,
                    label=f"evaluation (deterministic, {n} episode{'s' if n != 1 else ''} each)")
        data["eval_steps"], data["eval_total_delay_s"] = ev["timesteps"].tolist(), mean.tolist()
        data["eval_total_delay_std_s"] = std.tolist()
        notes.append(f"points: mean of {n} deterministic evaluation episode{'s' if n != 1 else ''} (seeded)"
                     + ("; error bars: std over them" if n > 1 else ""))
    ax.set_xlabel("environment steps (training rounds)")
    ax.set_ylabel("episode total delay (s)")
    ax.set_yscale("log")
    _plain_log_axis(ax.yaxis)
    ax.set_title(f"training curve: {run_dir.name}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    _footnote(fig, notes)
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
            row["delay_s"][name], std = _mean_std(_per_seed(records))
            row.setdefault("delay_std_s", {})[name] = std
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


def plot_presets(path: Path, data: dict[str, dict[str, Any]], seeds: Sequence[int] = (), rounds: int = 0,
                 labels: dict[str, str] | None = None) -> None:
    """Grouped bars: each policy's total delay relative to the optimizer's, per preset; error bars = the std over
    seeds of the policy's delay / the optimizer's mean; an infinite mean is a hatched bar to the top marked "inf"."""
    plt = _pyplot()
    presets = list(data)
    names = [n for n in next(iter(data.values()))["delay_s"] if n != "optimizer"]
    fig, ax = plt.subplots(figsize=(max(6.4, 1.6 * len(presets)), 4.8))
    width = 0.8 / max(1, len(names))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    ratios = {name: np.array([data[p]["delay_s"][name] / data[p]["delay_s"]["optimizer"] for p in presets])
              for name in names}
    errors = {name: np.array([(data[p].get("delay_std_s") or {}).get(name, math.nan)
                              / data[p]["delay_s"]["optimizer"] for p in presets]) for name in names}
    finite = [y + (e if math.isfinite(e) else 0.0) for name in names for y, e in zip(ratios[name], errors[name])
              if math.isfinite(y)]
    top = max([1.0] + finite)
    log = top > 5.0
    ceiling = top * (1.6 if log else 1.12)  # room above the highest bar for the "inf" marks
    infinite = []
    for i, name in enumerate(names):
        x = np.arange(len(presets)) + (i - (len(names) - 1) / 2) * width
        y, err = ratios[name], errors[name]
        ok = np.isfinite(y)
        colour = colours[i % len(colours)]
        label = (labels or {}).get(name, name)
        if ok.any():
            ax.bar(x[ok], y[ok], width, yerr=np.where(np.isfinite(err[ok]), err[ok], 0.0), capsize=2, color=colour,
                   label=label, error_kw={"elinewidth": 0.8})
        if (~ok).any():
            ax.bar(x[~ok], np.full((~ok).sum(), ceiling), width, color="none", edgecolor=colour, hatch="///",
                   linewidth=0.8, label=None if ok.any() else label)
            for xi in x[~ok]:
                ax.text(xi, ceiling, "inf", ha="center", va="bottom", fontsize=7, color=colour)
            infinite.append(f"{name} at {', '.join(p for p, bad in zip(presets, ~ok) if bad)}")
    ax.axhline(1.0, color="black", linewidth=1.5, label="optimizer")
    ax.set_xticks(np.arange(len(presets)))
    ax.set_xticklabels([f"{p}\n(c={data[p]['choice']['optimizer'][0]}, r={data[p]['choice']['optimizer'][1]})"
                        for p in presets], fontsize=8)
    ax.set_ylabel("total delay E(r, c)·T_round / optimizer's")
    if log:
        ax.set_yscale("log")
        _plain_log_axis(ax.yaxis, suffix="x")
    else:
        import matplotlib.ticker as ticker

        ax.yaxis.set_major_formatter(ticker.FormatStrFormatter("%gx"))
    ax.set_ylim(top=ceiling * (4.0 if log else 1.3))  # the legend sits above the bars and the "inf" marks
    ax.set_title("schemes vs the optimizer per scenario preset (optimizer's (c, r) under each)", fontsize=10)
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=min(4, len(names) + 1), loc="upper center")
    notes = []
    if seeds:
        n = len(seeds)
        notes.append(f"each bar: the scheme's total delay E(r, c)·T_round / the optimizer's, means over {n} scenario "
                     f"seed{'s' if n != 1 else ''} ({', '.join(map(str, seeds))}), each averaged over the first "
                     f"{rounds} round{'s' if rounds != 1 else ''}"
                     + ("; error bars: std over the seeds of the scheme's delay / the optimizer's mean" if n > 1
                        else ""))
    if infinite:
        notes.append("hatched 'inf' bars: the mean is infinite (on some seed the scheme chose a rank that never "
                     "reaches the target, E = inf): " + "; ".join(infinite))
    _footnote(fig, notes)
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
    plt = _pyplot()
    parts = list(cal.partitions)
    fig, axes = plt.subplots(1, len(parts), figsize=(6 * len(parts), 5.0), sharey=True, squeeze=False)
    styles = ["-", "--", ":", "-."]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    task = report["task"]
    refs = [("uniform ln V", task["uniform"]), ("unigram (pre-training counts)", task["unigram_pretrain"]),
            ("bigram (pre-training counts)", task["bigram_pretrain"]), ("unigram (task counts)", task["unigram_task"]),
            ("bigram (task counts)", task["bigram_task"])]
    data: dict[str, Any] = {"references": dict(refs), "target": cal.target_val_loss,
                            "initial": cal.initial_val_loss, "curves": {}}
    seeds_used: set[int] = set()
    for ax, part in zip(axes[0], parts):
        for i, rank in enumerate(cal.ranks):
            for j, split in enumerate(cal.splits):
                curve = cal.mean_curve(rank, split, part)
                data["curves"][f"{part}/r{rank}/c{split}"] = [float(x) for x in curve]
                full = [c[:len(curve)] for c in cal.seed_curves(rank, split, part) if len(c) >= len(curve)]
                seeds_used.add(len(full))
                x = np.arange(len(curve) + 1)
                ax.plot(x, [cal.initial_val_loss, *curve], styles[j % len(styles)],
                        color=colours[i % len(colours)], linewidth=1.2,
                        label=f"r = {rank}" if j == 0 else None)
                if len(full) > 1:
                    std = np.std(np.asarray(full, dtype=float), axis=0)
                    data.setdefault("curve_std", {})[f"{part}/r{rank}/c{split}"] = [float(v) for v in std]
                    ax.fill_between(x[1:], curve - std, curve + std, color=colours[i % len(colours)], alpha=0.12,
                                    linewidth=0)
        for k, (name, value) in enumerate(refs):
            ax.axhline(value, color="grey", linestyle=(0, (1, 1 + k)), linewidth=1)
            ax.annotate(f"{name} {value:.2f}", (cal.horizon_rounds * (1.0 - 0.45 * (k % 2)), value), fontsize=7,
                        ha="right", va="bottom", color="dimgrey")
        ax.axhline(cal.target_val_loss, color="black", linewidth=1.5)
        ax.annotate(f"target {cal.target_val_loss:.3f}", (0, cal.target_val_loss), fontsize=8, va="bottom")
        ax.set_yscale("log")
        _plain_log_axis(ax.yaxis)
        ax.set_xlabel("round")
        ax.set_title(f"{part}: cut " + " / ".join(f"{c} ({styles[j % len(styles)]})" for j, c in enumerate(cal.splits)))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("validation loss (nats / token)")
    n = sorted(seeds_used)
    seeds_text = " or ".join(map(str, n)) if n else "no"
    _footnote(fig, [f"each curve: the mean over the {seeds_text} seeds of its (rank, cut, partition) cell that lasted "
                    f"the {cal.horizon_rounds}-round horizon ({Path(cal.path).name}); band: ± std over those seeds; grey lines: "
                    "the reference losses of the backbone report; black: the calibration's target"])
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


SWEEP_SYMBOL = {"clients": "K", "bandwidth": "B", "power": "p_th", "rank": "r"}
"""The x symbol of each sweep, in the notes under its figure."""


def sweep_labels(key: str, full: FedsLLMConfig) -> tuple[dict[str, str], list[str]]:
    """Legend labels that say what the fixed-choice schemes fix, and a note for the figure of sweep ``key``."""
    c, r = full.model.initial_split, full.model.initial_rank
    if key == "rank":
        return ({"fixed_split": f"fixed_split (c = {c})", "fixed_rank": "fixed_rank (r = the x value)"},
                ["model.ranks = [r] at each point: every policy trains at the rank on the x axis, so fixed_rank (rank "
                 "fixed at model.initial_rank, here that r) faces the optimizer's own choice; fixed_split fixes the "
                 f"cut at c = {c} (model.initial_split); the others choose as in the other sweeps"])
    return ({"fixed_split": f"fixed_split (c = {c})", "fixed_rank": f"fixed_rank (r = {r})"},
            [f"fixed_split fixes the cut at c = {c} (model.initial_split) and fixed_rank the LoRA rank at r = {r} "
             "(model.initial_rank); each optimises the rest as the optimizer does"])


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
    from fedsllm_env.errors import require_extra

    require_extra("figures", "`fedsllm figures`", "matplotlib", load=False)  # before any episode is played
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
    agent, cell = None, ""
    if args.agent:
        res = resolve_policy(args.agent)
        agent = (res.name, res.policy)
        cell = agent_cell(res.policy, res.env_overrides, defaults)
    if args.out_dir:
        out = Path(args.out_dir)
    else:
        out = Path(args.runs_dir) / run_name(BOX_ENV_ID, "figures", args.seed) / "figures"
    out.mkdir(parents=True, exist_ok=True)
    save_run_config(out, args, base)
    data: dict[str, Any] = {"seeds": list(args.seeds), "rounds_per_point": args.rounds_per_point}
    for key, (xs, patches, xlabel, logx) in sweeps.items():
        stds: dict[str, list[float]] = {}
        curves = sweep(policies, defaults, patches, args.seeds, args.rounds_per_point, agent, spread=stds)
        labels, notes = sweep_labels(key, full)
        left_out = _plot(out / f"delay_vs_{key}.png", xs, curves, xlabel, f"total delay vs {xlabel}", logx,
                         stds=stds, seeds=args.seeds, rounds=args.rounds_per_point, labels=labels, notes=notes,
                         short=SWEEP_SYMBOL[key])
        data[key] = {"x": xs, "curves": curves, "std": stds, "not_drawn": left_out}
        line = skipped_line(key, agent[0], xs, curves[agent[0]], cell) if agent is not None else None
        if line:
            print(line)
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
        plot_presets(out / "preset_comparison.png", data["presets"], args.seeds, args.rounds_per_point,
                     sweep_labels("presets", full)[0])
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

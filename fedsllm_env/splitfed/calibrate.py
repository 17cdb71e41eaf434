"""Calibration runner: measure E(r, c) and the loss curves with real split-federated training.

A sweep is a grid of independent runs, one per (rank, split, partition, seed). Each run
(:func:`run_one`) builds a fresh :class:`SplitFedEngine` for the configuration with
``training.partition`` set to the run's partition (every other field, e.g. ``model.device``, passes through
untouched), resets it with the run's seed at the run's cut and rank (fresh adapters, B = 0) and trains
``max_rounds`` rounds at that fixed (cut, rank), recording the validation and training loss after every
round. The torch thread count is fixed per run (``threads``), so a run gives bit-identical losses whether
it runs in this process or in a Ray worker.

:func:`calibrate` runs the runs that are not finished yet, writes each record atomically to
``<out stem>.runs/<run name>.json`` as soon as it finishes (re-running skips finished runs, so a killed
sweep loses only the runs in flight), then merges every run of the grid into the schema-v2 table at
``out_path`` (:func:`fedsllm_env.calibration.build_calibration`: target rule, censoring, spread). Runs go
through ``mapper`` (default: sequentially, in this process); ``train_scripts/calibrate.py`` passes Ray's
(one Ray task per run). The CLI is ``fedsllm calibrate`` (``train_scripts/calibrate.py``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

from fedsllm_env.atomic import atomic_write_json
from fedsllm_env.calibration import DEFAULT_TARGET_FRACTION, build_calibration
from fedsllm_env.config import FedsLLMConfig
from fedsllm_env.errors import CalibrationError, TrainingDiverged, UsageError
from fedsllm_env.splitfed.model import backbone_fingerprint
from fedsllm_env.schedules import parse_profile, parse_schedule

__all__ = ["RunSpec", "schedule_specs", "profile_specs", "sweep_grid", "run_one", "run_digest", "runs_dir_for",
           "finished_runs", "calibrate",
           "default_splits", "check_grid", "check_out_path", "package_dir", "sequential_map", "RUN_KIND",
           "recheck_cell"]

RUN_KIND = "fedsllm-calibration-run"
"""``kind`` field of a per-run record file."""


@dataclass(frozen=True, order=True)
class RunSpec:
    """One calibration run: LoRA rank, cut index, data partition, training seed, and optionally a schedule
    or a heterogeneous profile.

    A run without ``schedule`` or ``profile`` trains at the fixed (``split``, ``rank``) every round (a cell of
    the E(r, c) grid); a run with a schedule plays it (:mod:`fedsllm_env.schedules`; ``split`` and ``rank`` are
    then its first round's) to measure how training reacts when the rank or the cut switches; a run with a
    profile (``"c5.5.3.1.1r64.32.16.8.4@svd"``) trains every round with a cut and a rank per client and that
    aggregation rule (``split`` and ``rank`` are then the largest cut and rank, for sorting only).
    """

    rank: int
    split: int
    partition: str
    seed: int
    schedule: str = ""
    profile: str = ""

    @property
    def name(self) -> str:
        """File-name stem of the run's record, e.g. ``rank4_split1_iid_seed0``,
        ``sched_c1r64x8_c1r8_iid_seed0`` or ``prof_c1r64.16.16.4.4_svd_iid_seed0``."""
        if self.profile:
            return f"prof_{parse_profile(self.profile).name}_{self.partition}_seed{self.seed}"
        if self.schedule:
            return f"sched_{parse_schedule(self.schedule).name}_{self.partition}_seed{self.seed}"
        return f"rank{self.rank}_split{self.split}_{self.partition}_seed{self.seed}"

    def decision(self, round_index: int, num_clients: int = 1) -> tuple[Any, Any]:
        """(split, rank) of round ``round_index`` (1-based); for a profile run ((K,) cuts, (K,) ranks)."""
        if self.profile:
            return parse_profile(self.profile).per_client(num_clients)
        return parse_schedule(self.schedule).at(round_index) if self.schedule else (self.split, self.rank)

    @property
    def aggregation(self) -> str:
        """The rule for adapters of mixed ranks (``zero_pad`` unless a profile names another)."""
        return parse_profile(self.profile).aggregation if self.profile else "zero_pad"

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON); ``schedule``/``profile`` only when there is one (fixed runs keep their records)."""
        out: dict[str, Any] = {"rank": self.rank, "split": self.split, "partition": self.partition, "seed": self.seed}
        if self.schedule:
            out["schedule"] = self.schedule
        if self.profile:
            out["profile"] = self.profile
        return out


def schedule_specs(schedules: Iterable[str], partitions: Iterable[str], seeds: Iterable[int]) -> list[RunSpec]:
    """One run per (schedule, partition, seed), sorted; each schedule's text is normalised by parsing it."""
    specs = []
    for text in schedules:
        sched = parse_schedule(text)
        split, rank = sched.at(1)
        specs += [RunSpec(rank, split, str(p), int(s), sched.text) for p in partitions for s in seeds]
    return sorted(specs)


def profile_specs(profiles: Iterable[str], partitions: Iterable[str], seeds: Iterable[int]) -> list[RunSpec]:
    """One run per (heterogeneous profile, partition, seed), sorted; each profile's text is normalised."""
    specs = []
    for text in profiles:
        prof = parse_profile(text)
        specs += [RunSpec(max(prof.ranks), max(prof.cuts), str(p), int(s), profile=prof.text)
                  for p in partitions for s in seeds]
    return sorted(specs)


def sweep_grid(ranks: Iterable[int], splits: Iterable[int], partitions: Iterable[str],
               seeds: Iterable[int]) -> list[RunSpec]:
    """Every (rank, split, partition, seed) combination, sorted."""
    return sorted(RunSpec(int(r), int(c), str(p), int(s)) for r in ranks for c in splits for p in partitions
                  for s in seeds)


def default_splits(n_layer: int) -> tuple[int, ...]:
    """Three cuts spread over an ``n_layer``-block model: the shallowest, the middle, the deepest."""
    return tuple(sorted({1, max(1, n_layer // 2), n_layer - 1}))


def check_grid(ranks: Sequence[int], splits: Sequence[int], partitions: Sequence[str], seeds: Sequence[int],
               max_rounds: int, threads: int = 1, n_layer: int | None = None) -> None:
    """Raise ValueError naming the bad entry of the grid (before any training starts).

    ``n_layer`` (blocks of the backbone) bounds the splits to [1, n_layer - 1]; None checks only c >= 1.
    """
    if not ranks or not splits or not partitions or not seeds:
        raise ValueError(f"need >= 1 rank, split, partition and seed, got ranks={list(ranks)}, "
                         f"splits={list(splits)}, partitions={list(partitions)}, seeds={list(seeds)}")
    for name, values in (("ranks", ranks), ("splits", splits), ("partitions", partitions), ("seeds", seeds)):
        if len(set(values)) != len(values):
            raise ValueError(f"{name} has repeated entries: {list(values)}")
    bad = [r for r in ranks if isinstance(r, bool) or not isinstance(r, int) or r < 1]
    if bad:
        raise ValueError(f"ranks must be ints >= 1, got {bad}")
    top = n_layer - 1 if n_layer is not None else math.inf
    bad = [c for c in splits if isinstance(c, bool) or not isinstance(c, int) or not 1 <= c <= top]
    if bad:
        raise ValueError(f"splits must be ints in [1, L-1]; {bad} are not" +
                         (f" (this backbone has L = {n_layer} blocks)" if n_layer is not None else ""))
    bad = [p for p in partitions if p not in ("iid", "dirichlet")]
    if bad:
        raise ValueError(f"partitions must be 'iid' or 'dirichlet', got {bad}")
    bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, int) or s < 0]
    if bad:
        raise ValueError(f"seeds must be ints >= 0, got {bad}")
    if isinstance(max_rounds, bool) or not isinstance(max_rounds, int) or max_rounds < 1:
        raise ValueError(f"max_rounds must be an int >= 1, got {max_rounds!r}")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be an int >= 1, got {threads!r}")


DIGEST_LATER_DEFAULTS: tuple[tuple[tuple[str, ...], Any], ...] = (
    (("heterogeneous",), False),
    (("model", "aggregation"), "zero_pad"),
    (("compute", "device_class_flops_per_cycle"), []),  # tuples arrive as JSON lists
    (("compute", "device_class_memory_bytes"), []),
)
"""Config fields added after the v3 calibration, with their defaults: they enter a run's digest only when set to
something else, so runs measured before the fields existed stay reusable (none of them changes a run at its
default; a profile run's aggregation rule is part of its spec)."""


def digest_config(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` without the fields of :data:`DIGEST_LATER_DEFAULTS` that hold their default."""
    out = json.loads(json.dumps(config))
    for path, default in DIGEST_LATER_DEFAULTS:
        node = out
        for key in path[:-1]:
            node = node.get(key, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict) and path[-1] in node and node[path[-1]] == default:
            del node[path[-1]]
    return out


def run_digest(config: dict[str, Any], max_rounds: int, threads: int) -> str:
    """Hex digest of everything a run's losses depend on besides its spec (config, horizon, torch threads).

    Two runs with the same spec and digest are the same measurement; a record with another digest is never
    reused or mixed into a table.
    """
    blob = json.dumps({"config": digest_config(config), "max_rounds": int(max_rounds), "threads": int(threads),
                       "torch": torch.__version__}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _run_config(config: dict[str, Any], partition: str) -> FedsLLMConfig:
    """The sweep's config with ``training.partition`` set to the run's (everything else untouched)."""
    cfg = FedsLLMConfig.from_dict(config)
    return cfg.replace(training=cfg.training.replace(partition=partition))


def run_one(config: dict[str, Any], spec: RunSpec, max_rounds: int, threads: int = 1) -> dict[str, Any]:
    """Train one calibration run for real and return its record (a JSON-able dict).

    Args:
        config: ``FedsLLMConfig.to_dict()`` of the sweep (the run's partition replaces training.partition).
        spec: (rank, split, partition, seed).
        max_rounds: Rounds to train (the horizon); a non-finite validation loss ends the run early
            (recorded in ``diverged_at_round``; the curve keeps the finite rounds before it).
        threads: torch intra-op threads while the run trains (restored afterwards).

    Returns:
        The record: spec, digest, ``initial_val_loss``, ``val_loss_curve``, ``train_loss_curve``,
        ``diverged_at_round``, ``model_shape`` and timings (``wall_s``, ``mean_round_wall_s``).
    """
    from fedsllm_env.splitfed.engine import SplitFedEngine

    t0 = time.perf_counter()
    before = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        engine = SplitFedEngine(_run_config(config, spec.partition), progress=False, aggregation=spec.aggregation)
        k = engine.num_clients
        initial = float(engine.reset(spec.seed, *spec.decision(1, k)))
        vals: list[float] = []
        trains: list[float] = []
        walls: list[float] = []
        diverged = None
        for t in range(1, max_rounds + 1):
            try:
                out = engine.run_round(*spec.decision(t, k))
            except TrainingDiverged:  # the engine stops on a non-finite loss or adapter
                diverged = t
                break
            if not (math.isfinite(out.val_loss) and math.isfinite(out.train_loss)):
                diverged = t
                break
            vals.append(float(out.val_loss))
            trains.append(float(out.train_loss))
            walls.append(float(out.measured.get("wall_s", math.nan)))
        shape = engine.shape.to_dict()
    finally:
        torch.set_num_threads(before)
    return {"kind": RUN_KIND, "spec": spec.to_dict(), **spec.to_dict(),
            "digest": run_digest(config, max_rounds, threads), "max_rounds": int(max_rounds),
            "threads": int(threads), "model_shape": shape, "initial_val_loss": initial,
            "val_loss_curve": vals, "train_loss_curve": trains, "diverged_at_round": diverged,
            "mean_round_wall_s": float(np.mean(walls)) if walls else math.nan,
            "wall_s": time.perf_counter() - t0, "host": platform.node()}


def runs_dir_for(out_path: str | Path) -> Path:
    """Folder of the per-run records that belong to the table ``out_path``: ``<parent>/<stem>.runs``."""
    out_path = Path(out_path)
    return out_path.parent / f"{out_path.stem}.runs"


def finished_runs(runs_dir: Path, specs: Sequence[RunSpec], digest: str) -> dict[RunSpec, dict[str, Any]]:
    """Records already in ``runs_dir`` for ``specs`` (same settings digest).

    Raises:
        CalibrationError: A record is unreadable, belongs to another spec, or was made with other settings
            (config, horizon, threads): the folder belongs to another sweep and is never mixed in.
    """
    done: dict[RunSpec, dict[str, Any]] = {}
    for spec in specs:
        path = Path(runs_dir) / f"{spec.name}.json"
        if not path.exists():
            continue
        try:
            rec = json.loads(path.read_bytes().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CalibrationError(f"{path}: unreadable run record ({e}); delete it to re-run that run") from e
        if not isinstance(rec, dict) or rec.get("kind") != RUN_KIND or rec.get("spec") != spec.to_dict():
            raise CalibrationError(f"{path}: not the record of run {spec.name}; delete it or use another --out")
        if rec.get("digest") != digest:
            raise CalibrationError(
                f"{path}: was measured with other settings (digest {rec.get('digest')} != {digest}: config, "
                f"max_rounds, threads or torch version differ); use another --out or delete {runs_dir}")
        done[spec] = rec
    return done


def sequential_map(fn: Callable[..., Any], args_list: Sequence[tuple]) -> Iterator[tuple[int, Any]]:
    """``fn(*args)`` for each entry, in order, in this process; yields ``(index, result)``."""
    for i, args in enumerate(args_list):
        yield i, fn(*args)


Mapper = Callable[[Callable[..., Any], Sequence[tuple]], Iterable[tuple[int, Any]]]


def calibrate(cfg: FedsLLMConfig, ranks: Sequence[int], splits: Sequence[int], partitions: Sequence[str],
              seeds: Sequence[int], max_rounds: int, out_path: str | Path, threads: int = 1,
              target_val_loss: float | None = None, target_fraction: float = DEFAULT_TARGET_FRACTION,
              mapper: Mapper | None = None, command: str = "", log: Callable[[str], None] | None = None,
              extra_settings: dict[str, Any] | None = None, schedules: Sequence[str] = (),
              schedule_seeds: Sequence[int] | None = None,
              schedule_partitions: Sequence[str] | None = None, profiles: Sequence[str] = ()) -> dict[str, Any]:
    """Run the sweep's unfinished runs, write each as it finishes, merge all into ``out_path`` (schema v2).

    Args:
        cfg: Sweep configuration (backbone, data, K, I, b, n, learning rate; partition is set per run).
        ranks, splits, partitions, seeds: The grid (every combination is one run; empty ``splits`` =
            :func:`default_splits` of the backbone).
        max_rounds: Rounds per run (the horizon; a run not at the target by then is censored).
        out_path: The merged table (JSON); per-run records go to :func:`runs_dir_for` ``(out_path)``.
        threads: torch threads per run (bit-level results depend on it: part of the settings digest).
        target_val_loss: Explicit target (None = the fraction-of-best-reduction rule).
        target_fraction: Share of the best configuration's reduction defining the target.
        mapper: ``mapper(fn, args_list)`` yielding ``(index, result)`` as runs finish (default in-process,
            sequential; Ray: ``train_scripts._ray.ray_map_unordered``).
        command: Command line recorded in the table.
        log: Called with one line per finished run (default: silent).
        extra_settings: Recorded in ``settings`` (e.g. the Ray address).
        schedules: Switch schedules (:mod:`fedsllm_env.schedules` notation) measured beside the grid, one
            run per (schedule, partition, seed), stored in the table's ``schedules`` (they fit the
            surrogate's switch model; they never enter E(r, c) or the target).
        schedule_seeds: Seeds of the schedule runs (None = ``seeds``).
        schedule_partitions: Partitions of the schedule runs (None = ``partitions``).
        profiles: Heterogeneous profiles (:func:`fedsllm_env.schedules.parse_profile`; K must be the config's),
            one run per (profile, partition, seed) with the schedules' seeds and partitions, stored in the
            table's ``profiles`` (they fit the surrogate's model of mixed profiles; never in E(r, c)).

    Returns:
        The merged calibration dict (also written to ``out_path``).
    """
    ranks, splits, seeds = [int(r) for r in ranks], [int(c) for c in splits], [int(s) for s in seeds]
    partitions = [str(p) for p in partitions]
    check_grid(ranks, splits or [1], partitions, seeds, max_rounds, threads)
    out_path = check_out_path(out_path, create=False)
    n_layer = _n_layer(cfg, threads)  # config, data and backbone are checked before any folder is made
    prof_specs = profile_specs(profiles, partitions if schedule_partitions is None else schedule_partitions,
                               seeds if schedule_seeds is None else schedule_seeds)
    for spec in prof_specs:
        cuts, prof_ranks = parse_profile(spec.profile).per_client(cfg.wireless.num_clients)
        try:
            check_grid(sorted(set(prof_ranks)), sorted(set(cuts)), [spec.partition], [spec.seed], max_rounds,
                       threads, n_layer=n_layer)
        except ValueError as e:
            raise UsageError(f"profile {spec.profile!r}: {e}") from e
    out_path = check_out_path(out_path)
    splits = splits or list(default_splits(n_layer))
    check_grid(ranks, splits, partitions, seeds, max_rounds, threads, n_layer=n_layer)
    config = cfg.to_dict()
    digest = run_digest(config, max_rounds, threads)
    specs = sweep_grid(ranks, splits, partitions, seeds)
    sched_specs = schedule_specs(schedules, partitions if schedule_partitions is None else schedule_partitions,
                                 seeds if schedule_seeds is None else schedule_seeds)
    for spec in sched_specs:
        plan = parse_schedule(spec.schedule)
        bad = sorted({c for c, _, _ in plan.phases if c > n_layer - 1})
        if bad:
            raise UsageError(f"schedule {spec.schedule!r} uses cut(s) {bad} beyond L - 1 = {n_layer - 1}")
        check_grid(sorted({r for _, r, _ in plan.phases}), sorted({c for c, _, _ in plan.phases}),
                   [spec.partition], [spec.seed], max_rounds, threads, n_layer=n_layer)
    specs += sched_specs
    specs += prof_specs
    runs_dir = runs_dir_for(out_path)
    done = finished_runs(runs_dir, specs, digest)
    todo = [s for s in specs if s not in done]
    say = log or (lambda _line: None)
    say(f"{len(specs)} runs ({len(done)} already finished in {runs_dir}, {len(todo)} to run)")
    t0 = time.perf_counter()
    for i, rec in mapper_or_default(mapper)(run_one, [(config, s, max_rounds, threads) for s in todo]):
        spec = todo[i]
        atomic_write_json(runs_dir / f"{spec.name}.json", rec)
        done[spec] = rec
        curve = rec["val_loss_curve"]
        say(f"[{len(done)}/{len(specs)}] {spec.name}: val loss {rec['initial_val_loss']:.4f} -> "
            f"{curve[-1] if curve else math.nan:.4f} in {len(curve)} rounds, {rec['wall_s']:.1f} s"
            + (f" (diverged at round {rec['diverged_at_round']})" if rec["diverged_at_round"] else ""))
    records = [done[s] for s in specs]
    settings = {"config": config, "ranks": ranks, "splits": splits, "partitions": partitions, "seeds": seeds,
                "schedules": sorted({s.schedule for s in sched_specs}),
                **({"profiles": sorted({s.profile for s in prof_specs})} if prof_specs else {}),
                "max_rounds": int(max_rounds), "threads": int(threads), "digest": digest,
                "backbone": backbone_fingerprint(cfg.model, cfg.training.seq_len),
                "runs_dir": str(runs_dir), "torch": torch.__version__, "python": platform.python_version(),
                "timing": {"sweep_wall_s": time.perf_counter() - t0 if todo else None,  # None: merged only
                           "runs_this_invocation": len(todo),
                           "run_wall_s_sum": float(sum(r["wall_s"] for r in records)),
                           "mean_round_wall_s": float(np.nanmean([r["mean_round_wall_s"] for r in records]))},
                **(extra_settings or {})}
    default_partition = cfg.training.partition if cfg.training.partition in partitions else partitions[0]
    result = build_calibration(records, records[0]["model_shape"], settings, max_rounds, default_partition,
                               command, target_val_loss=target_val_loss, target_fraction=target_fraction)
    atomic_write_json(out_path, result)
    return result


def mapper_or_default(mapper: Mapper | None) -> Mapper:
    """``mapper`` or :func:`sequential_map`."""
    return mapper if mapper is not None else sequential_map


def _n_layer(cfg: FedsLLMConfig, threads: int) -> int:
    """Blocks of the configured backbone, found by building the engine once before the sweep.

    This validates the config, the data and the backbone up front and fills the backbone cache (the tiny
    GPT-2 is pre-trained once, with the runs' thread count) before any worker needs it.
    """
    from fedsllm_env.splitfed.engine import SplitFedEngine

    before = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        return SplitFedEngine(cfg, progress=True).shape.n_layer
    finally:
        torch.set_num_threads(before)


def package_dir() -> Path:
    """Folder of the installed ``fedsllm_env`` package (never written by a command)."""
    import fedsllm_env

    return Path(fedsllm_env.__file__).resolve().parent


def check_out_path(out_path: str | Path, create: bool = True) -> Path:
    """Check, before any training, that the table and its run folder can be written where asked.

    Args:
        out_path: The table's path.
        create: Make the folders (and probe them with a write); False only checks that the nearest existing
            ancestor is a writable folder, so a refused run leaves nothing behind.

    Raises:
        UsageError: ``out_path`` is empty or an existing directory, lies inside the installed package (the
            shipped table is replaced only by copying a finished calibration there by hand), or its folder
            cannot be created or written (a file in the way, no permission).
    """
    out = Path(out_path).expanduser()
    if str(out_path) == "" or out.name in ("", ".", ".."):
        raise UsageError(f"--out must name a JSON file, got {str(out_path)!r}")
    if out.is_dir():
        raise UsageError(f"--out {out} is a directory; give the path of the calibration JSON to write, "
                         f"e.g. {out / 'calibration.json'}")
    pkg = package_dir()
    if out.resolve().is_relative_to(pkg):
        raise UsageError(f"--out {out} is inside the installed package {pkg}; commands never write there. "
                         f"Write elsewhere (default runs/calibration/...), then copy the file to "
                         f"{pkg / 'data' / 'calibration.json'} by hand to ship it")
    if not create:
        ancestor = out.parent.resolve()
        while not ancestor.exists() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
            raise UsageError(f"--out {out}: cannot write the calibration there ({ancestor} is "
                             f"{'not a folder' if not ancestor.is_dir() else 'not writable'})")
        return out
    for folder in (out.parent, runs_dir_for(out)):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / f".write-probe-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise UsageError(f"--out {out}: cannot write the calibration to {folder} ({type(e).__name__}: {e})") \
                from e
    return out


def recheck_cell(table: dict[str, Any], rank: int, split: int, partition: str, seed: int, rounds: int,
                 threads: int | None = None) -> dict[str, Any]:
    """Re-run the first ``rounds`` rounds of one measured run of a calibration table with the settings recorded
    in it, and compare the validation losses with the stored curve.

    Bit-identical on the machine that made the table (same torch threads); on another CPU the losses differ in
    the last digits and drift apart slowly (``tests/test_calibrate.py`` pins how far a short prefix may).

    Returns:
        ``initial`` and ``curve`` (re-measured and stored), ``max_abs_diff`` over the rounds and the initial
        loss, and the backbone fingerprints (recorded and now).

    Raises:
        CalibrationError: the run is not in the table, or the table records no config.
    """
    settings = table.get("settings") or {}
    config = settings.get("config")
    if not isinstance(config, dict):
        raise CalibrationError("the table records no settings.config; it cannot be re-run")
    cell = next((c for c in table.get("cells", []) if (c["rank"], c["split"], c["partition"]) ==
                 (int(rank), int(split), str(partition))), None)
    if cell is None or int(seed) not in cell["seeds"]:
        raise CalibrationError(f"(rank {rank}, split {split}, {partition}, seed {seed}) is not a run of this table")
    stored = cell["val_loss_curves"][cell["seeds"].index(int(seed))]
    rounds = max(1, min(int(rounds), len(stored)))
    threads = int(settings.get("threads", 1)) if threads is None else int(threads)
    rec = run_one(config, RunSpec(int(rank), int(split), str(partition), int(seed)), rounds, threads)
    stored_initial = float(table.get("initial_val_loss"))
    diffs = [abs(a - b) for a, b in zip(rec["val_loss_curve"], stored[:rounds])]
    return {"rank": int(rank), "split": int(split), "partition": str(partition), "seed": int(seed),
            "rounds": rounds, "initial": rec["initial_val_loss"], "stored_initial": stored_initial,
            "curve": rec["val_loss_curve"], "stored_curve": list(stored[:rounds]),
            "max_abs_diff": max(diffs + [abs(rec["initial_val_loss"] - stored_initial)]),
            "backbone_recorded": settings.get("backbone"),
            "backbone_now": backbone_fingerprint(_run_config(config, partition).model,
                                                 int(config.get("training", {}).get("seq_len", 80)))}

"""Train one RL agent (PPO, SAC, A2C, TD3 or MaskablePPO) on a FedsLLM env id.

Writes ``runs/<run_name>/``: ``model.zip`` (atomic), ``config.json``, ``tb/`` (TensorBoard),
``monitor/`` (episode CSVs), ``checkpoints/`` and ``eval/evaluations.npz`` when asked.

Example::

    python -m train_scripts.train --algo ppo --total-timesteps 50000
    python -m train_scripts.train --algo maskable_ppo --env-id FedsLLM-Surrogate-Discrete-v0
    python -m train_scripts.train --env-id FedsLLM-v0 --n-envs 4 --vec-env subproc   # one process per real env
    python -m train_scripts.train --framework rllib --num-env-runners 4 --ray-address auto   # RLlib on a cluster
    tensorboard --logdir runs

With ``--framework rllib`` (optional extra ``[rllib]``) the run folder holds ``rllib_checkpoint/``,
``config.json`` and ``train_summary.json`` (env steps/s per iteration) instead of the SB3 files.
"""

from __future__ import annotations

import inspect
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
import tyro

from fedsllm_env.errors import MissingFileError, UsageError
from fedsllm_env.runlock import RunLock
from train_scripts._checks import (
    at_least,
    check_agent,
    check_env_config,
    check_env_id,
    check_n_envs,
    parse_hyperparams,
    parse_json_object,
)
from train_scripts._common import (bc_teacher_arg, check_bc_teacher, env_overrides, run_name, save_run_config,
                                   write_json)
from train_scripts._ray import check_ray_address, check_ray_gpus, ray_session
from train_scripts.seeding import seed_everything

AlgoName = Literal["ppo", "sac", "a2c", "td3", "maskable_ppo"]
VecEnvName = Literal["", "batched", "dummy", "subproc"]


@dataclass
class Args:
    """Train an agent on a FedsLLM env."""

    algo: AlgoName = "ppo"
    """RL algorithm."""
    env_id: str = ""
    """Env id ("" = FedsLLM-Surrogate-Discrete-v0 for maskable_ppo, FedsLLM-Surrogate-v0 otherwise)."""
    seed: int = 1
    """Seed of the agent, the training envs and the global RNGs, in [0, 2**32 - 1]."""
    total_timesteps: int = 0
    """Training budget in env steps (training rounds); 0 = the YAML n_timesteps (a resume: the run's budget,
    recorded in config.json when the run started). Resolved and recorded before training starts."""
    n_envs: int = 0
    """Parallel training envs; 0 = the YAML n_envs (RLlib: envs per env runner, 0 = 1)."""
    vec_env: VecEnvName = ""
    """How the n_envs SB3 training envs run: "batched" (one numpy batch: surrogate Box/Discrete/Priority ids),
    "dummy" (one env object each, in this process) or "subproc" (one process each); "" = batched where the id
    has a batched version and n_envs > 1 on a fresh run (a resume continues per-env Monitor logs), else dummy."""
    framework: Literal["sb3", "rllib"] = "sb3"
    """Stable-Baselines3 in this process, or RLlib's PPO on Ray env runners (`pip install "fedsllm-env[rllib]"`)."""
    num_env_runners: int = 2
    """RLlib only: remote env runners (each a process, on any node of the cluster)."""
    ray_address: str = "local"
    """RLlib only: "local" (start Ray here), "auto" (join the cluster of `ray start`) or "ray://host:port"."""
    gpus_per_env_runner: float = -1.0
    """RLlib only: GPU share of each env runner (-1 = auto: the cluster's GPUs shared by the runners when the
    env trains for real on a cuda/auto device, else 0)."""
    gpus_per_learner: float = 0.0
    """RLlib only: GPU share of the learner."""
    hyperparams: str = ""
    """JSON object of hyperparameter overrides, e.g. '{"n_steps": 256, "learning_rate": 1e-4}'."""
    env_kwargs: str = ""
    """JSON object of extra ``gym.make`` keyword arguments of the env id, for the training, evaluation and teacher
    envs, e.g. '{"clients": [3, 40]}' (the K range of the AnyK ids); a resumed run keeps its own."""
    calibration_path: str = ""
    """Calibration JSON of the env ("" = the table shipped with the package)."""
    config: str = ""
    """JSON/YAML file of nested env config overrides ("" = none)."""
    preset: str = ""
    """Scenario preset (fedsllm_env.presets.PRESETS: paper-default, server-scarce, ...) under --config ("" = none)."""
    max_rounds: int = 0
    """Round cap per episode (0 = the config's)."""
    checkpoint_freq: int = 0
    """Save an atomic checkpoint every this many env steps (0 = only model.zip at the end)."""
    eval_freq: int = 0
    """Evaluate every this many steps with an EvalCallback (0 = off); curve in eval/evaluations.npz."""
    eval_episodes: int = 0
    """Episodes per periodic evaluation (0 = 5, or the resumed run's)."""
    resume: str = ""
    """Checkpoint zip, or run folder (its newest checkpoint), to resume from. The run continues in the
    checkpoint's own run folder (unless --run-name), with its env id, env overrides, n_envs and budget
    (--total-timesteps is the total, 0 = the run's); monitor CSVs, episode log and TensorBoard continue."""
    runs_dir: str = "runs"
    """Parent folder of the run folder."""
    run_name: str = ""
    """Run folder name ("" = {env_id}__{algo}__{seed}__{time})."""
    tensorboard: bool = True
    """Write TensorBoard logs to <run>/tb."""
    progress_bar: bool = True
    """Show SB3's tqdm/rich progress bar."""
    verbose: int = 0
    """SB3 verbosity (0 silent, 1 info)."""
    torch_deterministic: bool = True
    """Set torch.backends.cudnn.deterministic (and benchmark off)."""
    torch_threads: int = 1
    """torch intra-op threads (1 is fastest for these small MLPs, especially on a busy machine)."""
    bc_teacher: str = ""
    """Behaviour-clone a teacher before RL: a baseline (e.g. equal_power, optimizer, priority_heuristic) or
    "search" (prices a grid of priority actions each round with the delay model; Priority ids only)
    ("" = no warm start; ppo, a2c, maskable_ppo only)."""
    bc_only: bool = False
    """Stop after behaviour cloning (no RL phase); needs --bc-teacher."""
    bc_samples: int = 8000
    """Teacher env steps collected for the warm start."""
    bc_epochs: int = 100
    """Supervised epochs over the teacher's steps."""
    save_replay_buffer: bool = False
    """SAC/TD3: save the replay buffer with the newest checkpoint, so --resume continues with it (it can take
    hundreds of MB)."""


@dataclass
class RunPlan:
    """Everything :func:`main` will do, resolved and validated before anything is written."""

    run_dir: Path
    env_id: str
    env_config: dict[str, Any]
    hyperparam_overrides: dict[str, Any]
    total_timesteps: int | None
    """The run's budget in env steps (resolved: flag, else the resumed run's recorded budget, else the YAML's)."""
    n_envs: int | None
    resume: Path | None = None
    resume_timesteps: int = 0
    resumed_run: dict[str, Any] | None = None
    """config.json of the run the checkpoint belongs to (None: a bare checkpoint)."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra ``gym.make`` keyword arguments of the env (``--env-kwargs``)."""


SEED_MAX = 2**32 - 1
"""Largest ``--seed``: numpy's global seed (``np.random.seed``) takes 32 bits."""


# Stable-Baselines3 and torch are imported by the functions that need them, not by this module, so
# `fedsllm train --help` answers at once (tests/test_scripts.py checks that it loads neither).
def train_agent(*args: Any, **kwargs: Any) -> Any:
    """:func:`agents.training.train_agent` (imported on the first call)."""
    from agents.training import train_agent as train

    return train(*args, **kwargs)


def _check_numbers(args: Args) -> None:
    if not 0 <= args.seed <= SEED_MAX:
        raise UsageError(f"--seed must be in [0, {SEED_MAX}] (numpy's seed range), got {args.seed}; pick a seed "
                         "in that range")
    at_least(total_timesteps=(args.total_timesteps, 0), n_envs=(args.n_envs, 0), max_rounds=(args.max_rounds, 0),
             checkpoint_freq=(args.checkpoint_freq, 0), eval_freq=(args.eval_freq, 0),
             eval_episodes=(args.eval_episodes, 0), torch_threads=(args.torch_threads, 1),
             bc_samples=(args.bc_samples, 1), bc_epochs=(args.bc_epochs, 1), verbose=(args.verbose, 0))
    if args.verbose > 2:
        raise UsageError(f"--verbose must be 0, 1 or 2, got {args.verbose}")
    if args.run_name and (args.run_name in (".", "..") or any(c in args.run_name for c in "/\\")):
        raise UsageError(f"--run-name must be a plain folder name (no path separators), got {args.run_name!r}")


def _read_run_config(run_dir: Path) -> dict[str, Any] | None:
    """A run folder's config.json (None if it has none); UsageError naming the file if it is broken."""
    path = run_dir / "config.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UsageError(f"{path} is not valid JSON ({e}); restore it or start a new run") from e
    if not isinstance(data, dict):
        raise UsageError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


def _check_runs_dir(runs_dir: str, run_dir: Path) -> None:
    """``--runs-dir`` can hold the run folder: every existing part of the path is a folder, and the deepest
    existing one accepts a new folder (probed with a temporary folder, removed at once). Creates nothing."""
    probe = run_dir
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise UsageError(f"--runs-dir {runs_dir}: {probe} is a file, not a folder; choose a folder for the runs")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".fedsllm-probe-", dir=probe))
    except OSError as e:
        raise UsageError(f"--runs-dir {runs_dir} is not writable ({probe}: {e.strerror or e}); choose a writable "
                         "folder") from e


def _recorded_budget(run: dict[str, Any]) -> tuple[int | None, int | None]:
    """(total timesteps, n_envs) a run's config.json recorded: the budget written when it started, else the
    hyperparameters written when it finished, else its non-zero flags (runs of older versions)."""
    def pick(*values: Any) -> int | None:
        return next((int(v) for v in values if isinstance(v, int) and not isinstance(v, bool) and v > 0), None)

    hyper = run.get("hyperparams") if isinstance(run.get("hyperparams"), dict) else {}
    flags = run.get("args") if isinstance(run.get("args"), dict) else {}
    return (pick(run.get("total_timesteps"), hyper.get("n_timesteps"), flags.get("total_timesteps")),
            pick(run.get("n_envs"), hyper.get("n_envs"), flags.get("n_envs")))


def _resume_checkpoint(spec: str) -> Path:
    """The checkpoint ``--resume`` names: a zip, or a run folder (its newest checkpoint or model.zip)."""
    from agents.checkpoint import latest_checkpoint
    from agents.resume import checkpoint_timesteps

    path = Path(spec)
    if path.is_dir():
        candidates = [p for p in (latest_checkpoint(path / "checkpoints"), path / "model.zip") if p and p.is_file()]
        if not candidates:
            raise MissingFileError(f"--resume {spec}: the folder has neither checkpoints/*.zip nor model.zip")
        return max(candidates, key=checkpoint_timesteps)  # first wins a tie: the checkpoint
    if not path.is_file():
        raise MissingFileError(f"--resume {spec}: no such checkpoint zip or run folder")
    return path


def _run_of_checkpoint(ckpt: Path) -> Path | None:
    """The run folder a checkpoint was written into (``<run>/checkpoints/x.zip`` or ``<run>/model.zip``)."""
    run = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
    return run if (run / "config.json").is_file() else None


def plan_run(args: Args) -> RunPlan:
    """Validate every argument and input file and resolve the run; creates nothing.

    Raises:
        UsageError, MissingFileError, ConfigError, CalibrationError: naming the flag or file.
    """
    _check_numbers(args)
    overrides = parse_hyperparams(args.hyperparams, [args.algo])
    if args.bc_teacher:
        if args.algo not in ("ppo", "a2c", "maskable_ppo"):
            raise UsageError(f"--bc-teacher needs an actor-critic agent (ppo, a2c, maskable_ppo), not {args.algo}")
        if args.resume:
            raise UsageError("--bc-teacher warm-starts a fresh agent; it cannot be combined with --resume")
    elif args.bc_only:
        raise UsageError("--bc-only needs --bc-teacher")
    from agents.checkpoint import detect_algo
    from agents.factory import default_env_id
    from agents.resume import checkpoint_timesteps
    from agents.training import resolve_hyperparams

    resume = resumed_run = None
    steps = 0
    source_dir = None
    if args.resume:
        resume = _resume_checkpoint(args.resume)
        steps = checkpoint_timesteps(resume)
        algo = detect_algo(resume)
        if algo != args.algo:
            raise UsageError(f"--algo is {args.algo} but the checkpoint {resume} holds a {algo} agent; "
                             f"pass --algo {algo}")
        source_dir = _run_of_checkpoint(resume)
        resumed_run = _read_run_config(source_dir) if source_dir is not None else None
        if overrides and overrides != (resumed_run or {}).get("hyperparam_overrides"):
            raise UsageError("--hyperparams cannot change a resumed agent: it continues with the hyperparameters "
                             "saved in its checkpoint (drop the flag, or repeat the run's own)")
    source = resumed_run or {}
    env_id = args.env_id or source.get("env_id") or default_env_id(args.algo)
    if resumed_run and source.get("env_id") and env_id != source["env_id"]:
        raise UsageError(f"--env-id is {env_id} but the resumed run trained on {source['env_id']}")
    check_env_id(env_id, args.algo)
    if args.bc_teacher:
        check_bc_teacher(args.bc_teacher, env_id)
    base = source.get("env_overrides") if isinstance(source.get("env_overrides"), dict) else None
    env_config = env_overrides(args.config, args.calibration_path, args.max_rounds, base=base, preset=args.preset)
    check_env_config(env_config)
    env_kwargs = _env_kwargs(args, env_id, env_config, source)
    if resume is None and overrides:
        check_agent(args.algo, env_id, env_config, overrides)
    previous = source.get("hyperparams") if isinstance(source.get("hyperparams"), dict) else {}
    previous_args = source.get("args") if isinstance(source.get("args"), dict) else {}
    for name in ("checkpoint_freq", "eval_freq", "eval_episodes", "save_replay_buffer"):  # not given: the run's
        if not getattr(args, name) and previous_args.get(name):
            setattr(args, name, previous_args[name])
    if resumed_run and args.eval_freq and (args.eval_episodes or 5) != (previous_args.get("eval_episodes") or 5):
        raise UsageError(f"--eval-episodes {args.eval_episodes} differs from the resumed run's "
                         f"{previous_args.get('eval_episodes') or 5}: its evaluation curve could not continue")
    if args.vec_env == "batched":
        from agents.vec_env import has_batched_env

        if not has_batched_env(env_id):
            raise UsageError(f"--vec-env batched: {env_id} has no batched version (only the surrogate Box, Discrete "
                             "and Priority ids have one); use --vec-env dummy or subproc")
        if resume is not None:
            raise UsageError("--vec-env batched cannot resume a run (a resume continues per-env Monitor logs); drop "
                             "--vec-env or pass --vec-env dummy")
    recorded_total, recorded_n_envs = _recorded_budget(source)
    total = args.total_timesteps or recorded_total
    n_envs = args.n_envs or previous.get("n_envs") or recorded_n_envs
    resolved = resolve_hyperparams(args.algo, env_id, overrides, total, n_envs)  # the YAML's where neither
    total, n_envs = int(resolved["n_timesteps"]), int(resolved["n_envs"])
    rollout = int(resolved.get("n_steps", 0)) if args.algo in ("ppo", "a2c", "maskable_ppo") else 0
    check_n_envs(env_config, n_envs, rollout)  # the envs and their rollout buffer fit in memory
    if resume is not None and not args.total_timesteps:
        args.total_timesteps = total  # config.json keeps the run's budget, not 0
    if args.run_name:
        run_dir = Path(args.runs_dir) / args.run_name
    elif source_dir is not None:
        run_dir = source_dir  # a resume continues in the checkpoint's own run folder
    else:
        run_dir = Path(args.runs_dir) / run_name(env_id, args.algo, args.seed)
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"run folder {run_dir} exists and is not a folder")
    _check_runs_dir(args.runs_dir, run_dir)
    held = [n for n in ("config.json", "model.zip", "checkpoints", "monitor") if (run_dir / n).exists()]
    if held and (resume is None or source_dir is None or run_dir.resolve() != source_dir.resolve()):
        what = "resume it with --resume " + str(run_dir) if resume is None else "resume into its own run folder"
        raise UsageError(f"run folder {run_dir} already holds another run ({', '.join(held)}); {what}, "
                         "or choose another --run-name")
    return RunPlan(run_dir, env_id, env_config, overrides, total, n_envs, resume, steps, resumed_run, env_kwargs)


_RESERVED_ENV_KWARGS = ("config", "variant", "render_mode")


def _env_kwargs(args: Args, env_id: str, env_config: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
    """``--env-kwargs`` parsed and tried on one env (a resumed run: its own, and a different one is refused)."""
    kwargs = parse_json_object(args.env_kwargs, "--env-kwargs", " of gym.make keyword arguments")
    previous = (source.get("args") or {}).get("env_kwargs") or ""
    if previous:
        recorded = parse_json_object(previous, "the resumed run's --env-kwargs")
        if kwargs and kwargs != recorded:
            raise UsageError(f"--env-kwargs {args.env_kwargs} differs from the resumed run's {previous}")
        kwargs, args.env_kwargs = recorded, previous
    bad = [k for k in kwargs if k in _RESERVED_ENV_KWARGS]
    if bad:
        raise UsageError(f"--env-kwargs cannot set {bad}: use --config / --preset for the env config")
    if kwargs:
        if args.vec_env == "batched":
            raise UsageError("--env-kwargs: the batched envs take no extra keyword arguments; use --vec-env dummy")
        import gymnasium as gym

        try:
            gym.make(env_id, config=env_config, **kwargs).close()
        except TypeError as e:
            raise UsageError(f"--env-kwargs {args.env_kwargs}: {env_id} does not take them ({e})") from None
    return kwargs


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    return getattr(value, "__name__", None) or repr(value)


def agent_hyperparams(model: Any, algo: str) -> dict[str, Any]:
    """The hyperparameters an agent actually trains with (its constructor arguments, read back from it)."""
    from agents.factory import ALGOS

    names = set(inspect.signature(ALGOS[algo].__init__).parameters) - {"self", "env", "policy", "tensorboard_log",
                                                                       "verbose", "device", "_init_setup_model"}
    return {n: _json_safe(getattr(model, n)) for n in sorted(names) if hasattr(model, n)}


_SB3_ONLY = ("vec_env", "checkpoint_freq", "eval_freq", "resume", "bc_teacher", "bc_only", "save_replay_buffer",
             "env_kwargs")

"""--bc-teacher values that are not baselines of baselines.policy (teachers in the priority action space)."""


def plan_rllib_run(args: Args) -> RunPlan:
    """``--framework rllib``: validate the arguments (RLlib installed, PPO options) and resolve the run; creates
    nothing."""
    from agents.factory import default_env_id
    from agents.rllib import RLLIB_ALGOS, ppo_config, require_rllib
    from agents.training import DEFAULT_TIMESTEPS

    require_rllib()
    used = [f"--{k.replace('_', '-')}" for k in _SB3_ONLY if getattr(args, k) != getattr(Args, k)]
    if used or args.algo not in RLLIB_ALGOS:
        raise UsageError(f"--framework rllib supports --algo {'/'.join(RLLIB_ALGOS)} without "
                         f"{', '.join('--' + k.replace('_', '-') for k in _SB3_ONLY)}; got --algo {args.algo} "
                         f"{' '.join(used)}")
    _check_numbers(args)
    at_least(num_env_runners=(args.num_env_runners, 0), gpus_per_learner=(args.gpus_per_learner, 0))
    args.ray_address = check_ray_address(args.ray_address)
    check_ray_gpus(args.gpus_per_learner, "--gpus-per-learner", args.ray_address)
    check_ray_gpus(args.gpus_per_env_runner, "--gpus-per-env-runner", args.ray_address)
    overrides = parse_json_object(args.hyperparams, "--hyperparams", " of PPOConfig.training options")
    env_id = args.env_id or default_env_id(args.algo)
    from agents.rllib import CLIENTS_IDS

    if env_id not in CLIENTS_IDS.values():  # the clients-as-agents ids exist for RLlib only
        check_env_id(env_id)
    env_config = env_overrides(args.config, args.calibration_path, args.max_rounds)
    check_env_config(env_config)
    try:  # PPO options checked without starting Ray
        ppo_config(env_id, config=env_config, num_gpus_per_env_runner=0.0, training=overrides)
    except ValueError as e:
        raise UsageError(f"--hyperparams: {e}") from e
    run_dir = Path(args.runs_dir) / (args.run_name or run_name(env_id, f"rllib-{args.algo}", args.seed))
    _check_runs_dir(args.runs_dir, run_dir)
    held = [n for n in ("config.json", "rllib_checkpoint", "model.zip") if (run_dir / n).exists()]
    if held:
        raise UsageError(f"run folder {run_dir} already holds another run ({', '.join(held)}); choose another "
                         "--run-name")
    return RunPlan(run_dir, env_id, env_config, overrides, args.total_timesteps or DEFAULT_TIMESTEPS, args.n_envs or 1)


def _train_rllib(args: Args, plan: RunPlan) -> Path:
    """``--framework rllib``: PPO on Ray env runners; writes the checkpoint and train_summary.json."""
    from agents.rllib import ppo_config, train_rllib
    from agents.training import DEFAULT_TIMESTEPS

    run_dir = plan.run_dir
    # Ray first: an address where no cluster answers, or GPUs it lacks, fail before the run folder exists
    with ray_session(args.ray_address) as ray:
        check_ray_gpus(args.gpus_per_learner, "--gpus-per-learner", args.ray_address, ray=ray)
        check_ray_gpus(args.gpus_per_env_runner, "--gpus-per-env-runner", args.ray_address, ray=ray)
        with RunLock(run_dir):
            save_run_config(run_dir, args, plan.env_config, algo=args.algo, env_id=plan.env_id, framework="rllib",
                            hyperparam_overrides=plan.hyperparam_overrides)
            config = ppo_config(plan.env_id, config=plan.env_config, seed=args.seed,
                                num_env_runners=args.num_env_runners, num_envs_per_env_runner=plan.n_envs or 1,
                                num_gpus_per_env_runner=(None if args.gpus_per_env_runner < 0
                                                         else args.gpus_per_env_runner),
                                num_gpus_per_learner=args.gpus_per_learner, training=plan.hyperparam_overrides)
            result = train_rllib(run_dir, config, plan.total_timesteps or DEFAULT_TIMESTEPS)
            last = result.iterations[-1]
            summary = {"framework": "rllib", "algo": args.algo, "env_id": plan.env_id,
                       "checkpoint": str(result.checkpoint_path), "num_timesteps": result.env_steps,
                       "wall_time_s": result.wall_time_s, "build_time_s": result.build_time_s,
                       "env_steps_per_s": result.env_steps / result.wall_time_s,
                       "sample_env_steps_per_s": result.env_steps / sum(it["sample_time_s"]
                                                                        for it in result.iterations),
                       "num_env_runners": args.num_env_runners, "envs_per_env_runner": plan.n_envs or 1,
                       "runner_envs": result.runner_envs, "iterations": result.iterations}
            write_json(run_dir / "train_summary.json", summary)
    print(f"trained rllib {args.algo} on {plan.env_id} for {result.env_steps} env steps in "
          f"{len(result.iterations)} iterations, {result.wall_time_s:.1f} s (+{result.build_time_s:.1f} s to build): "
          f"{summary['env_steps_per_s']:.0f} env steps/s overall, {summary['sample_env_steps_per_s']:.0f} while "
          f"sampling; last episode return mean {last['episode_return_mean']:.4g}")
    print(f"checkpoint: {result.checkpoint_path}")
    return run_dir


def _seconds(value: float) -> str:
    """A delay for a summary line: four significant digits (``2118 s``, ``31.49 s``, ``inf s``)."""
    return f"{value:.4g} s"


def _wall_time_before_s(plan: RunPlan) -> float:
    """The run's training wall time up to the resumed checkpoint, s: the largest record at that step count among
    the checkpoint's ``_clock.json``, model.zip's and the run's train_summary.json (a finished run's model.zip
    and summary are written a moment after its last checkpoint), 0 when there is none (older checkpoints)."""
    from agents.checkpoint import read_clock

    assert plan.resume is not None
    steps = plan.resume_timesteps
    found = [read_clock(plan.resume, steps), read_clock(plan.run_dir / "model.zip", steps)]
    try:
        data = json.loads((plan.run_dir / "train_summary.json").read_text())
        if int(data["num_timesteps"]) == steps and float(data["wall_time_s"]) >= 0:
            found.append(float(data["wall_time_s"]))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return max((f for f in found if f is not None), default=0.0)


def main(argv: Sequence[str] | None = None) -> Path:
    """Parse and validate the arguments, train, save; returns the run folder.

    Nothing is created when an argument or input file is bad. The run folder is locked for the whole
    run (:class:`~fedsllm_env.runlock.RunLock`); with ``--resume`` the run continues in the
    checkpoint's own folder (or ``--run-name``), its logs cut back to the checkpoint and appended to.
    """
    args = tyro.cli(Args, args=argv, prog="fedsllm train")
    plan = plan_rllib_run(args) if args.framework == "rllib" else plan_run(args)

    # ---- seeding: the only place global RNGs are touched --------------------------------------
    seed_everything(args.seed, args.torch_threads, args.torch_deterministic)

    if args.framework == "rllib":
        return _train_rllib(args, plan)
    run_dir = plan.run_dir
    resumed = {"resumed_from": str(plan.resume), "resumed_at_timesteps": plan.resume_timesteps,
               "total_timesteps": plan.total_timesteps} if plan.resume else {}
    history = list((plan.resumed_run or {}).get("resumes", [])) + ([resumed] if resumed else [])
    budget = {"total_timesteps": plan.total_timesteps, "n_envs": plan.n_envs}  # recorded before training starts
    wall_before = _wall_time_before_s(plan) if plan.resume is not None else None
    with RunLock(run_dir):
        save_run_config(run_dir, args, plan.env_config, algo=args.algo, env_id=plan.env_id,
                        hyperparam_overrides=plan.hyperparam_overrides, resumes=history, **budget)
        if plan.resume is not None:
            left = (plan.total_timesteps or 0) - plan.resume_timesteps
            print(f"resumed from {plan.resume} at step {plan.resume_timesteps} of {plan.total_timesteps}"
                  + (f": {left} to train" if left > 0 else ": nothing left to train (pass --total-timesteps above "
                     f"{plan.resume_timesteps} to extend the run); writing model.zip and train_summary.json"))
        result = train_agent(
            args.algo, run_dir, env_id=plan.env_id, seed=args.seed, total_timesteps=plan.total_timesteps,
            config=plan.env_config, hyperparams=plan.hyperparam_overrides, n_envs=plan.n_envs,
            checkpoint_freq=args.checkpoint_freq, eval_freq=args.eval_freq, eval_episodes=args.eval_episodes or 5,
            progress_bar=args.progress_bar, tensorboard=args.tensorboard, verbose=args.verbose, vec_env=args.vec_env,
            resume_from=plan.resume, bc_teacher=bc_teacher_arg(args.bc_teacher), rl=not args.bc_only,
            env_kwargs=plan.env_kwargs,
            bc_samples=args.bc_samples, bc_epochs=args.bc_epochs, save_replay_buffer=args.save_replay_buffer,
            n_envs_before=((plan.resumed_run or {}).get("hyperparams") or {}).get("n_envs"),
            wall_time_before_s=wall_before)
        hyperparams = result.hyperparams
        if plan.resume is not None:  # what the loaded agent trains with, not the YAML's
            hyperparams = {**agent_hyperparams(result.model, args.algo),
                           "n_timesteps": result.hyperparams["n_timesteps"], "n_envs": result.hyperparams["n_envs"]}
        delays = [e["total_delay_s"] for e in result.episodes]
        summary = {
            "model_path": str(result.model_path),
            "num_timesteps": int(result.model.num_timesteps),
            "wall_time_s": result.wall_time_s,
            "segment_wall_time_s": result.segment_wall_time_s,
            "total_timesteps": plan.total_timesteps,
            "episodes": len(delays),
            "first_10_episodes_total_delay_mean_s": float(np.mean(delays[:10])) if delays else None,
            "last_10_episodes_total_delay_mean_s": float(np.mean(delays[-10:])) if delays else None,
            "hyperparams": hyperparams,
            "checkpoints": [str(p) for p in sorted((run_dir / "checkpoints").glob("*_steps.zip"),
                                                   key=lambda p: int(p.stem.split("_")[-2]))],
            "resumes": history,
            "bc_loss_first_last": [result.bc_losses[0], result.bc_losses[-1]] if result.bc_losses else None,
        }
        write_json(run_dir / "train_summary.json", summary)
        save_run_config(run_dir, args, plan.env_config, algo=args.algo, env_id=plan.env_id,
                        hyperparam_overrides=plan.hyperparam_overrides, hyperparams=hyperparams, resumes=history,
                        **budget)
    last10 = summary["last_10_episodes_total_delay_mean_s"]
    print(f"trained {args.algo} on {plan.env_id} for {summary['num_timesteps']} steps in {result.wall_time_s:.1f} s "
          f"of training in all ({len(delays)} episodes in the run; mean total delay of the last 10: "
          + ("n/a, no episode finished" if last10 is None else _seconds(last10)) + ")")
    print(f"model: {result.model_path}")
    return run_dir


if __name__ == "__main__":
    from train_scripts.cli import run_as_script

    run_as_script("train")

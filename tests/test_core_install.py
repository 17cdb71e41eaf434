"""Packaging: the surrogate env and the optimizer work with the core dependencies alone (numpy, scipy, gymnasium);
a missing extra fails with an error naming it; README, CI and pyproject agree."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from fedsllm_env.errors import EXTRA_OF

ROOT = Path(__file__).resolve().parents[1]

BLOCKED = ("torch", "transformers", "peft", "tokenizers", "stable_baselines3", "sb3_contrib", "tensorboard",
           "matplotlib", "cvxpy", "ray", "tyro", "yaml", "tqdm", "rich", "numba", "llvmlite", "pettingzoo")
"""Every non-core dependency: the subprocess below refuses to import any of them."""

_SESSION = """
import importlib.abc, sys
already = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
assert not already, f"imported before the blocker: {already}"


class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: not a core dependency)", name=name)
        return None


sys.meta_path.insert(0, Refuse())

import gymnasium as gym
import numpy as np

import fedsllm_env
from baselines.policy import make_baseline_policy

env = gym.make("FedsLLM-Surrogate-v0", config={"wireless": {"channel_model": "umi"}})
obs, _ = env.reset(seed=0)
policy = make_baseline_policy("optimizer", env)
for _ in range(3):
    action, _ = policy.predict(obs)
    obs, reward, terminated, truncated, info = env.step(action)
    objective = policy.last_result.objective_s
    assert np.isfinite(reward) and abs(info["expected_total_delay_s"] - objective) <= 1e-4 * objective
batch = gym.make_vec("FedsLLM-Surrogate-v0", num_envs=4, vectorization_mode="vector_entry_point")
batch.reset(seed=0)
batch.step(batch.action_space.sample())  # the batched env draws with numpy when numba is missing
assert not batch.unwrapped.uses_numba
for env_id in ("FedsLLM-Surrogate-Discrete-v0", "FedsLLM-Surrogate-Hybrid-v0"):
    env = gym.make(env_id)
    obs, _ = env.reset(seed=1)
    env.step(make_baseline_policy("equal_power", env).predict(obs)[0])

for what, call, extra in (
        ("real mode", lambda: gym.make("FedsLLM-v0"), "train"),
        ("agents", lambda: __import__("agents"), "agents"),
        ("clients as agents", lambda: __import__("fedsllm_env.multiagent").multiagent.parallel_env(), "marl"),
        ("the cvxpy reference", lambda: __import__("baselines").reference_link_power_cvxpy(None, None), "dev")):
    try:
        call()
    except fedsllm_env.DependencyNotInstalled as exc:
        assert f"fedsllm-env[{extra}]" in str(exc), (what, str(exc))
    else:
        raise AssertionError(f"{what} worked without its extra")

import contextlib
import io

from train_scripts.cli import main

err = io.StringIO()
with contextlib.redirect_stderr(err):  # the CLI prints the DependencyNotInstalled as one line, exit status 2
    status = main(["train", "--help"])
assert status == 2, "fedsllm train worked without its extras"
message = err.getvalue()
assert "fedsllm train: error: `fedsllm train` needs" in message and "fedsllm-env[" in message, message

leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
assert not leaked, leaked
print("core ok")
"""
CORE_SESSION = f"BLOCKED = {BLOCKED!r}\n" + _SESSION
"""A Python session that refuses every non-core import, then uses the surrogate env and the optimizer."""


def test_surrogate_env_and_optimizer_work_with_the_core_dependencies_alone():
    done = subprocess.run([sys.executable, "-c", CORE_SESSION], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0 and done.stdout.strip().endswith("core ok"), done.stdout + done.stderr


def _requirement_names(reqs: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower() for r in reqs}


def test_pyproject_extras_match_the_modules_that_need_them():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert _requirement_names(project["dependencies"]) == {"numpy", "scipy", "gymnasium"}
    extras = project["optional-dependencies"]
    assert extras["all"] == ["fedsllm-env[train,agents,ray,rllib,figures,fast,marl]"]
    assert _requirement_names(extras["rllib"]) == {"ray"} and "[rllib]" in extras["rllib"][0]
    distribution = {"yaml": "pyyaml", "stable_baselines3": "stable-baselines3", "sb3_contrib": "sb3-contrib"}
    for module, extra in EXTRA_OF.items():
        assert module in BLOCKED, f"{module} is optional but the core test does not block it"
        assert distribution.get(module, module) in _requirement_names(extras[extra]), (module, extra)
    assert "torch==2.13.0" in extras["train"] and "torch==2.13.0" in extras["agents"]


def test_readme_and_ci_run_the_same_test_command_on_all_extras():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"^pip install .*$", readme, flags=re.M)
    assert commands == ['pip install torch==2.13.0 && pip install -e ".[all]" && fedsllm demo',
                        'pip install torch==2.13.0 && pip install -e ".[all,dev]" && python -m pytest -q']
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci == commands[1]

"""Layering: the delay/channel models stay numpy-only, the env never imports agents/baselines/torch in
surrogate mode, and sources respect the one-direction import rule."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


def test_surrogate_env_does_not_import_torch_or_sb3():
    code = ("import gymnasium as gym, fedsllm_env, sys;"
            "from fedsllm_env import channel, delay, spaces, env;"
            "assert 'torch' not in sys.modules, 'torch imported';"
            "assert 'stable_baselines3' not in sys.modules, 'sb3 imported';"
            "assert 'scipy' not in sys.modules, 'scipy imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_source_import_directions():
    torch_stack = {"torch", "transformers", "peft", "tokenizers"}
    for path in (ROOT / "fedsllm_env").rglob("*.py"):
        found = _imports(path)
        assert not found & {"agents", "baselines", "train_scripts", "stable_baselines3", "sb3_contrib"}, path
        if "splitfed" not in path.parts:
            assert not found & torch_stack, f"{path} imports {found & torch_stack} outside splitfed/"
    for path in (ROOT / "baselines").rglob("*.py"):
        assert not _imports(path) & ({"agents", "train_scripts"} | torch_stack), path
    for path in (ROOT / "agents").rglob("*.py"):
        assert "train_scripts" not in _imports(path), path


UPPER_LAYERS = ("agents", "baselines", "train_scripts")


def test_every_registered_id_has_an_entry_point_inside_fedsllm_env():
    import gymnasium as gym

    import fedsllm_env

    for env_id in fedsllm_env.ENV_IDS.values():
        entry = gym.registry[env_id].entry_point
        module = entry.split(":")[0] if isinstance(entry, str) else entry.__module__
        assert module.split(".")[0] == "fedsllm_env", f"{env_id} enters through {entry!r}"


def test_no_string_in_fedsllm_env_names_an_upper_layer_module():
    """An import string ("baselines.x:y") is an upward edge the import statements do not show."""
    pattern = re.compile(rf"^({'|'.join(UPPER_LAYERS)})[.:]\w")
    for path in (ROOT / "fedsllm_env").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert not pattern.match(node.value), f"{path}: string {node.value!r} names an upper layer"


def test_import_fedsllm_env_loads_no_upper_layer():
    code = ("import sys, fedsllm_env, fedsllm_env.codecs;"
            f"bad = [m for m in sys.modules if m.split('.')[0] in {UPPER_LAYERS!r}];"
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_hybrid_id_finds_the_optimizer_through_the_declared_entry_point(tmp_path):
    """With the pyproject's entry point installed (a dist-info on the path, as pip writes it), a bare
    ``import fedsllm_env`` + ``gym.make`` of a hybrid id gets the optimizer, loaded only then."""
    text = (ROOT / "pyproject.toml").read_text()
    section = text.split('[project.entry-points."fedsllm_env.allocators"]', 1)[1].split("\n[", 1)[0]
    group = dict(re.findall(r'^(\w+) = "([^"]+)"$', section, flags=re.M))
    assert group == {"optimizer": "baselines.hybrid:OptimizerAllocator"}
    dist = tmp_path / "fedsllm_plugin_probe-0.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fedsllm-plugin-probe\nVersion: 0.0\n")
    (dist / "entry_points.txt").write_text("[fedsllm_env.allocators]\n" +
                                           "".join(f"{k} = {v}\n" for k, v in group.items()))
    code = ("import sys, gymnasium as gym, fedsllm_env;"
            "assert 'baselines' not in sys.modules;"
            "env = gym.make('FedsLLM-Surrogate-Hybrid-v0');"
            "alloc = env.unwrapped.action_codec.allocator;"
            "assert type(alloc).__module__ == 'baselines.hybrid', type(alloc);"
            "env.reset(seed=0); print(env.step(env.action_space.sample())[4]['split'])")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)])}
    out = subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.stdout.strip().isdigit()

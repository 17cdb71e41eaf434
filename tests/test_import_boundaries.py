"""Layering: the delay/channel models stay numpy-only, the env never imports agents/baselines/torch in
surrogate mode, and sources respect the one-direction import rule."""

from __future__ import annotations

import ast
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

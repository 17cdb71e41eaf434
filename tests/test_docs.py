"""The documentation: the MkDocs site builds with warnings as errors (so a broken link, a missing anchor or a code
reference to a module or object that no longer exists fails the suite), the README is a door whose links open,
and its quick start runs."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS_TOOLS = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")
"""What `mkdocs build` needs: MkDocs, its Material theme, mkdocstrings and its Python handler (the [dev] extra)."""


def _missing_docs_tools() -> list[str]:
    missing = []
    for name in DOCS_TOOLS:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            missing.append(name)
    return missing


def _nav_pages(nav) -> list[str]:
    """Every page file named in mkdocs.yml's nav."""
    pages = []
    for item in nav:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        pages += _nav_pages(value) if isinstance(value, list) else [value]
    return pages


class _Loader(yaml.SafeLoader):
    """mkdocs.yml may hold !!python/name tags; none are needed here, so unknown tags load as None."""


_Loader.add_multi_constructor("", lambda loader, suffix, node: None)


def test_the_site_builds_with_warnings_as_errors(tmp_path):
    missing = _missing_docs_tools()
    if missing:
        pytest.skip(f"the docs tools are not installed ({', '.join(missing)}): pip install -e '.[dev]'")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # Material's banner about MkDocs 2.0 (not a build warning)
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                           str(ROOT / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    site = tmp_path / "site"
    # the API pages hold the documented objects (generated from the docstrings, not empty pages)
    api = (site / "api" / "agents" / "index.html").read_text(encoding="utf-8")
    assert 'id="agents.evaluation.evaluate_policy_on_seeds"' in api and 'id="agents.training.train_agent"' in api
    package = (site / "api" / "fedsllm_env" / "index.html").read_text(encoding="utf-8")
    assert 'id="fedsllm_env.FedsLLMConfig"' in package
    for page in ("calibration", "presets", "results", "backbones", "errors", "scaling", "assumptions"):
        assert (site / page / "index.html").is_file(), page


def test_every_doc_page_is_in_the_nav_and_every_nav_page_exists():
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    nav = _nav_pages(config["nav"])
    pages = sorted(str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md"))
    assert sorted(nav) == pages


def test_readme_links_open_and_it_stays_a_door():
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    local = [t for t in targets if not re.match(r"[a-z]+://", t)]
    assert local and all((ROOT / t).exists() for t in local), [t for t in local if not (ROOT / t).exists()]
    for page in ("docs/results.md", "docs/calibration.md", "docs/presets.md", "docs/environment.md"):
        assert page in local, page
    assert len(readme.splitlines()) < 150, "the README is the door; the reference belongs in docs/"
    # every number of the headline results keeps its command beside it
    headline = readme.split("## Headline results", 1)[1].split("\n## ", 1)[0]
    for item in re.split(r"\n- ", headline)[1:]:
        assert re.search(r"\n\s*fedsllm [a-z]", item), item  # its command, in a code block under it


def test_no_doc_holds_an_unfilled_template_placeholder():
    """A results table written from a template (``{real}``, ``{agent}``) must hold the table, not the placeholder
    (two pages once shipped one)."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    left = [f"{p.relative_to(ROOT)}:{i}: {line}" for p in pages
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
            if re.fullmatch(r"\s*\{[a-z_][a-z0-9_]*\}\s*", line)]
    assert not left, left


def test_readme_quick_start_runs():
    readme = (ROOT / "README.md").read_text()
    code = re.search(r"## Quick start\n\n```python\n(.*?)```", readme, re.S).group(1)
    exec(compile(code, "README quick start", "exec"), {})  # noqa: S102 - the README's own code

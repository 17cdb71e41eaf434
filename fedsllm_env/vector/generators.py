"""Every env's own ``numpy.random.Generator`` in a batch, and the per-round draws made from them row by row.

The batched env must draw what each single env draws, from that env's generator, in the same order
(``SurrogateVectorEnv``'s bit-for-bit rule). The draw of one round (2 K (M + N) + K standard normals per
env) is the largest cost of a batched step in numpy: about 8 ns a normal plus one Python call per env.
When `numba <https://numba.pydata.org>`_ is installed (``pip install "fedsllm-env[fast]"``), the round's
normals are drawn by one compiled loop over the envs instead: numba implements ``Generator.standard_normal``
with NumPy's own algorithm on the same bit generator state, so the numbers are the same, bit for bit
(``tests/test_vector_generators.py`` checks it against numpy's draws), about 3x faster, with no per-env
Python call. Without numba (or with ``FEDSLLM_NUMBA=0``) the same rows are drawn by numpy, one call per env.
"""

from __future__ import annotations

import os
import warnings
from types import SimpleNamespace
from typing import Any, Iterator

import numpy as np

from fedsllm_env.errors import ResetNeeded

__all__ = ["EnvGenerators", "numba_kernels"]

_KERNELS: Any = None  # cached result of numba_kernels(): a namespace, or False when numba is unusable


def numba_kernels() -> Any:
    """The compiled draw loops (``make_list``, ``normal_rows``, ``uniform_normal_rows``), or None without numba.

    numba is optional: a missing package, ``FEDSLLM_NUMBA=0`` or a numba that cannot compile the loops
    (warned once) all mean None, and the caller draws with numpy.
    """
    global _KERNELS
    if os.environ.get("FEDSLLM_NUMBA", "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    if _KERNELS is None:
        _KERNELS = _compile()
    return _KERNELS or None


def _normal_rows(gens, out):  # pragma: no cover - run compiled by numba
    """Row i of ``out`` from ``gens[i].standard_normal()``, element by element (numba compiles this loop)."""
    for i in range(out.shape[0]):
        g = gens[i]
        for j in range(out.shape[1]):
            out[i, j] = g.standard_normal()


def _uniform_normal_rows(gens, low, high, uniforms, normals):  # pragma: no cover - run compiled by numba
    """Per env i: its uniforms, then its normals (the mobile channel's draw order)."""
    for i in range(normals.shape[0]):
        g = gens[i]
        for j in range(uniforms.shape[1]):
            uniforms[i, j] = g.uniform(low, high)
        for j in range(normals.shape[1]):
            normals[i, j] = g.standard_normal()


def _jit(numba: Any, fn: Any) -> Any:
    """``numba.njit(cache=True)(fn)``; without a writable cache location (numba raises at decoration), compiled
    afresh in every process instead (about a second)."""
    try:
        return numba.njit(cache=True)(fn)
    except RuntimeError:
        return numba.njit(fn)


def _compile() -> Any:
    try:
        import numba
        from numba import typed
    except ImportError:
        return False
    try:
        kernels = SimpleNamespace(make_list=typed.List, normal_rows=_jit(numba, _normal_rows),
                                  uniform_normal_rows=_jit(numba, _uniform_normal_rows))
        # compile (or load from numba's cache) and check on throw-away generators before the first real use
        probe = np.empty((1, 3))
        kernels.normal_rows(kernels.make_list([np.random.default_rng(0)]), probe)
        if not np.array_equal(probe[0], np.random.default_rng(0).standard_normal(3)):
            raise RuntimeError("numba's standard_normal differs from numpy's")
        u, z = np.empty((1, 2)), np.empty((1, 2))
        kernels.uniform_normal_rows(kernels.make_list([np.random.default_rng(1)]), 0.0, 2.0 * np.pi, u, z)
        g = np.random.default_rng(1)
        if not (np.array_equal(u[0], g.uniform(0.0, 2.0 * np.pi, 2)) and np.array_equal(z[0], g.standard_normal(2))):
            raise RuntimeError("numba's uniform/standard_normal differ from numpy's")
    except Exception as e:  # any numba failure: fall back to numpy, say so once
        warnings.warn(f"numba is installed but its draw loops are unusable ({type(e).__name__}: {e}); the batched "
                      "env draws with numpy (same numbers, slower). Set FEDSLLM_NUMBA=0 to silence this.",
                      RuntimeWarning, stacklevel=3)
        return False
    return kernels


class EnvGenerators:
    """The generators of ``num_envs`` envs (index i: env i's), with whole-batch draws.

    Behaves as a list of generators (``gens[i]``, ``gens[i] = g``, ``len``, iteration); an env without a
    generator yet holds None.

    Args:
        num_envs: B.
        use_numba: draw the per-round rows with numba (None: when it is available, see :func:`numba_kernels`).
    """

    def __init__(self, num_envs: int, use_numba: bool | None = None):
        if use_numba not in (None, True, False):
            raise TypeError(f"use_numba must be True, False or None, got {use_numba!r}")
        self._gens: list[np.random.Generator | None] = [None] * num_envs
        kernels = numba_kernels() if use_numba is not False else None
        if use_numba is True and kernels is None:
            raise ImportError("use_numba=True needs numba (pip install 'fedsllm-env[fast]') and FEDSLLM_NUMBA unset")
        self._kernels = kernels
        self._typed: Any = None  # numba's typed list of the same generators, built once every env has one

    def __getstate__(self) -> dict[str, Any]:
        # the compiled functions and numba's typed list (raw state pointers) do not travel: a copy or an unpickled
        # batch looks the kernels up again and rebuilds the list at its first draw (numpy where numba is missing)
        return {**self.__dict__, "_kernels": self._kernels is not None, "_typed": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._kernels = numba_kernels() if state["_kernels"] else None

    @property
    def uses_numba(self) -> bool:
        """Whether the per-round rows are drawn by the compiled loops."""
        return self._kernels is not None

    def __len__(self) -> int:
        return len(self._gens)

    def __iter__(self) -> Iterator[np.random.Generator | None]:
        return iter(self._gens)

    def __getitem__(self, i: int) -> np.random.Generator:
        g = self._gens[i]
        if g is None:
            raise ResetNeeded(f"env {i} of the batch has not been reset yet (no generator)")
        return g

    def __setitem__(self, i: int, g: np.random.Generator) -> None:
        if not isinstance(g, np.random.Generator):
            raise TypeError(f"env {i}: expected a numpy.random.Generator, got {type(g).__name__}")
        # the typed list holds the generator's state pointer: replace it there before the old object can go
        if self._typed is not None:
            self._typed[i] = g
        self._gens[i] = g

    def _every(self) -> list[np.random.Generator]:
        """The generators, after checking that every env has one."""
        if None in self._gens:
            missing = [i for i, g in enumerate(self._gens) if g is None]
            raise ResetNeeded(f"envs {missing[:10]} of the batch have not been reset yet (no generator)")
        return self._gens  # type: ignore[return-value]

    def _typed_list(self) -> Any:
        if self._typed is None:
            self._typed = self._kernels.make_list(self._every())
        return self._typed

    def standard_normal_rows(self, out: np.ndarray) -> None:
        """Fill row i of the (B, n) ``out`` with ``gens[i].standard_normal(n)``."""
        if self._kernels is not None:
            self._kernels.normal_rows(self._typed_list(), out)
            return
        for g, row in zip(self._every(), out):
            g.standard_normal(out=row)

    def uniform_normal_rows(self, low: float, high: float, uniforms: np.ndarray, normals: np.ndarray) -> None:
        """Per env i: ``uniforms[i] = gens[i].uniform(low, high, n_u)``, then ``normals[i] = standard_normal(n_z)``."""
        if self._kernels is not None:
            self._kernels.uniform_normal_rows(self._typed_list(), float(low), float(high), uniforms, normals)
            return
        for i, g in enumerate(self._every()):
            uniforms[i] = g.uniform(low, high, uniforms.shape[1])
            g.standard_normal(out=normals[i])

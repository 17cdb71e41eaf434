"""Open-loop (cut, rank) schedules: what a calibration run or a fidelity check plays round by round.

A schedule is written as phases separated by ``;``, each ``c<cut>r<rank>`` with an optional ``x<rounds>``
(how many rounds the phase lasts); the last phase without ``x`` lasts for the rest of the run, and a
trailing ``*`` repeats every phase in a cycle (then every phase needs ``x``)::

    "c1r64"              cut 1, rank 64 every round (a fixed decision)
    "c1r64x8;c1r8"       rank 64 for rounds 1-8, then rank 8
    "c1r64x3;c1r8x3*"    rank 64 and rank 8, three rounds each, alternating

A heterogeneous profile (SPEC.md, "Heterogeneous clients": a cut and a rank per client, fixed for a whole
run) is written ``c<cuts>r<ranks>[@<rule>]``, each of cuts and ranks one integer (every client's) or K
integers joined by ``.``, and the optional rule the aggregation of mixed ranks (``zero_pad``, the default,
or ``svd``)::

    "c1r64.16.16.4.4"            every client cuts at 1; ranks 64, 16, 16, 4, 4 (K = 5), zero-padding
    "c5.5.3.1.1r64.32.16.8.4@svd" a cut and a rank per client, FlexLoRA's SVD redistribution

numpy only; used by the calibration runner (real training), the surrogate's progress-model fit and
``fedsllm fidelity``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fedsllm_env.errors import UsageError

__all__ = ["Schedule", "parse_schedule", "DESIGNED_SCHEDULES", "CANDIDATE_SCHEDULES", "FIDELITY_SCHEDULES",
           "Profile", "parse_profile", "ProfileSchedule", "parse_profile_schedule", "is_profile_schedule",
           "PROFILE_FIDELITY_SCHEDULES",
           "DESIGNED_PROFILES", "HELD_OUT_PROFILES"]

_PHASE = re.compile(r"c(\d+)r(\d+)(?:x(\d+))?")


def _phase_at(lengths: list[int | None], cycle: bool, round_index: int) -> int:
    """Index of the phase played in round ``round_index`` (1-based) given each phase's rounds (None = until the
    end); a cycle repeats the phases, a finite schedule past its end keeps its last phase."""
    if round_index < 1:
        raise ValueError(f"rounds are counted from 1, got {round_index}")
    t = round_index - 1
    if cycle:
        t %= sum(n for n in lengths if n is not None)
    for i, n in enumerate(lengths):
        if n is None or t < n:
            return i
        t -= n
    return len(lengths) - 1


@dataclass(frozen=True)
class Schedule:
    """Phases ``(split, rank, rounds)`` (``rounds`` None = until the end) and whether they cycle."""

    phases: tuple[tuple[int, int, int | None], ...]
    cycle: bool = False

    @property
    def text(self) -> str:
        """The schedule in the notation of :func:`parse_schedule` (round-trips)."""
        body = ";".join(f"c{c}r{r}" + (f"x{n}" if n is not None else "") for c, r, n in self.phases)
        return body + ("*" if self.cycle else "")

    @property
    def name(self) -> str:
        """A file-name-safe form of :attr:`text` (``;`` -> ``_``, ``*`` -> ``_cycle``)."""
        return self.text.replace(";", "_").replace("*", "_cycle")

    @property
    def is_fixed(self) -> bool:
        """True when every round plays the same (cut, rank)."""
        return len({(c, r) for c, r, _ in self.phases}) == 1

    def at(self, round_index: int) -> tuple[int, int]:
        """(split, rank) played in round ``round_index`` (1-based)."""
        c, r, _ = self.phases[_phase_at([n for _, _, n in self.phases], self.cycle, round_index)]
        return c, r

    def decisions(self, rounds: int) -> list[tuple[int, int]]:
        """(split, rank) of rounds 1..``rounds``."""
        return [self.at(t) for t in range(1, rounds + 1)]


def parse_schedule(text: str) -> Schedule:
    """Parse ``"c1r64x8;c1r8"``-style text (see the module docstring).

    Raises:
        UsageError: text that is not in the notation, a cut or rank < 1, a phase of 0 rounds, a bounded
            last phase without ``*``, or a cycle with an unbounded phase.
    """
    raw = str(text).strip()
    cycle = raw.endswith("*")
    body = raw[:-1] if cycle else raw
    phases = []
    for part in body.split(";"):
        m = _PHASE.fullmatch(part.strip())
        if m is None:
            raise UsageError(f"schedule {text!r}: phase {part!r} is not c<cut>r<rank>[x<rounds>] "
                             "(e.g. 'c1r64x8;c1r8')")
        c, r, n = int(m[1]), int(m[2]), (int(m[3]) if m[3] is not None else None)
        if c < 1 or r < 1 or (n is not None and n < 1):
            raise UsageError(f"schedule {text!r}: phase {part!r} needs cut >= 1, rank >= 1 and rounds >= 1")
        phases.append((c, r, n))
    if cycle and any(n is None for _, _, n in phases):
        raise UsageError(f"schedule {text!r}: a cycle ('*') needs a number of rounds (x<n>) on every phase")
    if not cycle and any(n is None for _, _, n in phases[:-1]):
        raise UsageError(f"schedule {text!r}: only the last phase may omit its number of rounds")
    return Schedule(tuple(phases), cycle)


DESIGNED_SCHEDULES: tuple[str, ...] = (
    "c1r64x4;c1r8",      # rank down early
    "c1r64x12;c1r16",    # rank down later
    "c1r32x8;c1r4",      # rank down to a rank that alone never reaches the target
    "c1r64x16;c1r32",    # a small rank cut late
    "c1r8x8;c1r64",      # rank up
    "c1r4x12;c1r32",     # rank up from the censored rank
    "c1r16x20;c1r64",    # rank up late
    "c1r64x6;c5r64",     # cut deeper
    "c5r64x6;c1r64",     # cut back
    "c1r16x10;c3r16",    # cut deeper at a middle rank
    "c1r64x3;c1r8x3*",   # rank oscillation
    "c3r32x8;c1r8",      # cut back and rank down at once
    "c1r64x2;c1r32x2*",  # fast one-octave oscillation (added after the fidelity check overpriced one)
)
"""Switch schedules measured by ``fedsllm calibrate --schedules designed`` to fit the surrogate's switch model."""

CANDIDATE_SCHEDULES: tuple[str, ...] = (
    "c1r64x18;c1r32x1;c1r64",  # a late one-round rank blip (the optimizer's habit on narrow-fs-uplink)
    "c1r16x2;c1r8x2*",   # fast low-rank alternation
)
"""Switch schedules measured for a refit of the switch model that is not shipped yet (``fedsllm calibrate
--schedules designed candidates``): the fidelity misses they target are in docs/surrogate.md."""

FIDELITY_SCHEDULES: tuple[str, ...] = (
    "c1r64",
    "c1r16",
    "c5r32",
    "c1r64x8;c1r8",
    "c1r8x12;c1r32",
    "c1r64x8;c5r64",
    "c5r16x10;c1r16",
    "c1r64x5;c3r16x5*",
    "c1r32x2;c1r16x2*",
)
"""Open-loop schedules of ``fedsllm fidelity`` (none of the switch schedules is in :data:`DESIGNED_SCHEDULES`)."""


_PROFILE = re.compile(r"c(\d+(?:\.\d+)*)r(\d+(?:\.\d+)*)(?:@(\w+))?")
PROFILE_RULES = ("zero_pad", "svd")


@dataclass(frozen=True)
class Profile:
    """A fixed heterogeneous decision: (K,) cuts, (K,) ranks and the aggregation rule of mixed ranks."""

    cuts: tuple[int, ...]
    ranks: tuple[int, ...]
    aggregation: str = "zero_pad"

    @property
    def num_clients(self) -> int:
        """K (1 when both cuts and ranks are single integers: every client's)."""
        return max(len(self.cuts), len(self.ranks))

    @property
    def text(self) -> str:
        """The profile in the notation of :func:`parse_profile` (round-trips)."""
        body = "c" + ".".join(map(str, self.cuts)) + "r" + ".".join(map(str, self.ranks))
        return body + ("" if self.aggregation == "zero_pad" else f"@{self.aggregation}")

    @property
    def name(self) -> str:
        """A file-name-safe form of :attr:`text` (``@`` -> ``_``)."""
        return self.text.replace("@", "_")

    def per_client(self, num_clients: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """((K,) cuts, (K,) ranks) with a single integer repeated for every client.

        Raises:
            UsageError: the profile lists a number of clients other than ``num_clients``.
        """
        out = []
        for label, values in (("cuts", self.cuts), ("ranks", self.ranks)):
            if len(values) == 1:
                values = values * int(num_clients)
            if len(values) != int(num_clients):
                raise UsageError(f"profile {self.text!r} lists {len(values)} {label} but the run has "
                                 f"K = {num_clients} clients")
            out.append(tuple(values))
        return out[0], out[1]


def parse_profile(text: str) -> Profile:
    """Parse ``"c5.5.3.1.1r64.32.16.8.4@svd"``-style text (see the module docstring).

    Raises:
        UsageError: text not in the notation, a cut or rank < 1, cuts and ranks of different lengths
            (both > 1), or an unknown aggregation rule.
    """
    m = _PROFILE.fullmatch(str(text).strip())
    if m is None:
        raise UsageError(f"profile {text!r} is not c<cuts>r<ranks>[@rule] with K values joined by '.' "
                         "(e.g. 'c1r64.16.16.4.4' or 'c5.5.3.1.1r64.32.16.8.4@svd')")
    cuts = tuple(int(v) for v in m[1].split("."))
    ranks = tuple(int(v) for v in m[2].split("."))
    rule = m[3] or "zero_pad"
    if min(cuts) < 1 or min(ranks) < 1:
        raise UsageError(f"profile {text!r}: every cut and rank must be >= 1")
    if len(cuts) > 1 and len(ranks) > 1 and len(cuts) != len(ranks):
        raise UsageError(f"profile {text!r}: {len(cuts)} cuts but {len(ranks)} ranks (give K of each, or one)")
    if rule not in PROFILE_RULES:
        raise UsageError(f"profile {text!r}: aggregation rule {rule!r} is not one of {list(PROFILE_RULES)}")
    return Profile(cuts, ranks, rule)


_PROFILE_PHASE = re.compile(r"c(\d+(?:\.\d+)*)r(\d+(?:\.\d+)*)(?:x(\d+))?")


@dataclass(frozen=True)
class ProfileSchedule:
    """Phases ``(profile, rounds)`` of heterogeneous profiles (``rounds`` None = until the end), whether they
    cycle, and the aggregation rule of mixed ranks for the whole run."""

    phases: tuple[tuple[Profile, int | None], ...]
    cycle: bool = False
    aggregation: str = "zero_pad"

    @property
    def text(self) -> str:
        """The schedule in the notation of :func:`parse_profile_schedule` (round-trips)."""
        body = ";".join(p.text.partition("@")[0] + (f"x{n}" if n is not None else "") for p, n in self.phases)
        return body + ("*" if self.cycle else "") + ("" if self.aggregation == "zero_pad" else f"@{self.aggregation}")

    @property
    def name(self) -> str:
        """A file-name-safe form of :attr:`text`."""
        return self.text.replace(";", "_").replace("*", "_cycle").replace("@", "_")

    def at(self, round_index: int) -> Profile:
        """Profile played in round ``round_index`` (1-based); a finite schedule past its end keeps its last."""
        return self.phases[_phase_at([n for _, n in self.phases], self.cycle, round_index)][0]

    def cuts_and_ranks(self) -> tuple[set[int], set[int]]:
        """Every cut and every rank any phase uses."""
        return ({c for p, _ in self.phases for c in p.cuts}, {r for p, _ in self.phases for r in p.ranks})


def is_profile_schedule(text: str) -> bool:
    """True when ``text`` is a schedule of heterogeneous profiles (a phase lists K values, or an ``@rule``)."""
    return "." in str(text) or "@" in str(text)


def parse_profile_schedule(text: str) -> ProfileSchedule:
    """Parse ``"c1r64x8;c1r64.64.8.8.8@svd"``-style text: phases of profiles (each ``c<cuts>r<ranks>[x<n>]``,
    cuts and ranks one integer or K joined by ``.``), ``;`` between phases, an optional trailing ``*`` (cycle)
    and ``@rule`` (aggregation of mixed ranks for the whole run: ``zero_pad``, the default, or ``svd``).

    Raises:
        UsageError: text that is not in the notation, a cut or rank < 1, phases listing different numbers of
            clients, a bounded last phase without ``*``, a cycle with an unbounded phase, or an unknown rule.
    """
    raw = str(text).strip()
    body, _, rule = raw.partition("@")
    rule = rule or "zero_pad"
    if rule not in PROFILE_RULES:
        raise UsageError(f"schedule {text!r}: aggregation rule {rule!r} is not one of {list(PROFILE_RULES)}")
    cycle = body.endswith("*")
    body = body[:-1] if cycle else body
    phases: list[tuple[Profile, int | None]] = []
    for part in body.split(";"):
        m = _PROFILE_PHASE.fullmatch(part.strip())
        if m is None:
            raise UsageError(f"schedule {text!r}: phase {part!r} is not c<cuts>r<ranks>[x<rounds>] with K values "
                             "joined by '.' (e.g. 'c1r64x8;c1r64.64.8.8.8')")
        profile = parse_profile(f"c{m[1]}r{m[2]}@{rule}")
        n = int(m[3]) if m[3] is not None else None
        if n is not None and n < 1:
            raise UsageError(f"schedule {text!r}: phase {part!r} needs rounds >= 1")
        phases.append((profile, n))
    sizes = {p.num_clients for p, _ in phases} - {1}
    if len(sizes) > 1:
        raise UsageError(f"schedule {text!r}: phases list different numbers of clients {sorted(sizes)}")
    if cycle and any(n is None for _, n in phases):
        raise UsageError(f"schedule {text!r}: a cycle ('*') needs a number of rounds (x<n>) on every phase")
    if not cycle and any(n is None for _, n in phases[:-1]):
        raise UsageError(f"schedule {text!r}: only the last phase may omit its number of rounds")
    return ProfileSchedule(tuple(phases), cycle, rule)


PROFILE_FIDELITY_SCHEDULES: tuple[str, ...] = (
    "c1r64x8;c1r64.64.8.8.8",        # three clients cut their rank (the rest keep theirs)
    "c1r16x8;c1r64.64.16.16.16",     # two clients raise their rank
    "c1r64x6;c5.5.1.1.1r64",         # two clients move their cut deeper
    "c5.5.3.1.1r64.32.16.8.4x8;c1r64",  # a mixed profile back to the shared decision
)
"""Switches of heterogeneous profiles (K = 5) for ``fedsllm fidelity --schedules`` in a ``-Hetero-`` env (none
was used in any fit)."""


DESIGNED_PROFILES: tuple[str, ...] = (
    "c1r64.64.16.16.16",            # mixed ranks, two strong clients
    "c1r64.16.16.4.4",              # a wide rank spread
    "c1.1.3.5.5r16",                # mixed cuts at one rank
    "c5.5.3.1.1r64.32.16.8.4",      # both mixed: strong clients cut deep with a high rank
    "c1r64.16.16.4.4@svd",          # the wide rank spread under FlexLoRA's rule
    "c5.5.3.1.1r64.32.16.8.4@svd",  # both mixed under FlexLoRA's rule
)
"""Heterogeneous profiles (K = 5) measured by ``fedsllm calibrate --profiles designed`` to fit the surrogate's
model of E for mixed profiles."""

HELD_OUT_PROFILES: tuple[str, ...] = (
    "c1r32.32.8.8.8",
    "c3.3.3.1.1r32.32.8.8.8",
    "c1.5.1.5.1r16.64.16.64.16@svd",
    "c1r64.64.64.64.4",
)
"""Heterogeneous profiles measured the same way but never used in the fit: the model's held-out check."""

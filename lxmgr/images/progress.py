"""PURE progress parsing: debootstrap's "I: ..." lines -> (stage, overall fraction) events.

Imports nothing from lxmgr. debootstrap names each package as it retrieves, validates,
extracts, unpacks and configures it, but never says how many there are. The download stage
therefore uses an expected count (a hint, refined by earlier builds), and every later stage
uses the exact number of packages retrieved.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Overall fraction at which each stage starts; a stage ends where the next one starts.
STAGES: dict[str, float] = {
    "resolve": 0.0,
    "download": 0.02,
    "extract": 0.35,
    "install": 0.45,
    "finalize": 0.95,
    "done": 1.0,
}
_ORDER = list(STAGES)
# Unpacking and configuring interleave (required packages, then the base system), so both
# count towards one "install" stage of 2 x (packages retrieved) steps.
_VERB_STAGE = {"Validating": "download", "Extracting": "extract", "Unpacking": "install",
               "Configuring": "install"}
_PKG_RE = re.compile(r"^I: (Retrieving|Validating|Extracting|Unpacking|Configuring) "
                     r"([a-z0-9][a-z0-9+.-]*?)(:[a-z0-9]+)?( [^ .]\S*)?(\.\.\.)?$")
_INDEXES = {"Release", "InRelease", "Packages"}
_MILESTONES = {"required", "the"}  # "Unpacking required packages...", "... the base system"


@dataclass(frozen=True)
class Progress:
    """One progress event: the stage, the overall fraction in [0, 1] and a short message."""

    stage: str
    fraction: float
    message: str


def stage_span(stage: str) -> tuple[float, float]:
    """(start, end) overall fractions of a stage."""
    i = _ORDER.index(stage)
    return STAGES[stage], STAGES[_ORDER[min(i + 1, len(_ORDER) - 1)]]


def at(stage: str, within: float, message: str) -> Progress:
    """A Progress for `within` (0..1) of the way through stage."""
    start, end = stage_span(stage)
    within = min(max(within, 0.0), 1.0)
    return Progress(stage, round(start + (end - start) * within, 4), message)


class DebootstrapProgress:
    """Feed debootstrap output lines; get Progress events back (None for other lines)."""

    def __init__(self, expected_packages: int = 130) -> None:
        self.expected = max(expected_packages, 1)
        self.retrieved: set[str] = set()
        self.counts: dict[str, int] = {}
        self.stage = "resolve"

    def feed(self, line: str) -> Progress | None:
        m = _PKG_RE.match(line.strip())
        if not m:
            return self._other(line.strip())
        verb, package = m.group(1), m.group(2)
        if package in _MILESTONES:
            return None
        if package in _INDEXES and verb in ("Retrieving", "Validating"):
            return at("resolve", 0.5, f"{verb} {package}")
        if verb == "Retrieving":
            self.retrieved.add(package)
            return None  # the matching "Validating" line reports it
        stage = _VERB_STAGE[verb]
        self.stage = stage
        self.counts[stage] = self.counts.get(stage, 0) + 1
        total = self.expected if stage == "download" else len(self.retrieved) or self.expected
        total *= 2 if stage == "install" else 1
        return at(stage, min(self.counts[stage] / total, 0.99), f"{verb} {package}")

    def _other(self, line: str) -> Progress | None:
        if line.startswith("I: Base system installed successfully"):
            return at("finalize", 0.0, "Base system installed")
        if line.startswith("I: Resolving dependencies"):
            return at("resolve", 0.8, "Resolving dependencies")
        return None

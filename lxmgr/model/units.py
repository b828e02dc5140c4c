"""PURE parsers for LXD-style values: sizes, percentages, CPU sets and allowances.

Imports only lxmgr.errors.
"""

from __future__ import annotations

import re

from lxmgr.errors import InvalidConfig

_SIZE_UNITS = {
    "": 1, "b": 1, "B": 1,
    "kB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "PB": 10**15, "EB": 10**18,
    "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40, "PiB": 2**50, "EiB": 2**60,
    # Short forms LXD also accepts.
    "k": 10**3, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")


def parse_size(value: str) -> int:
    """'512MiB', '1GB', '1073741824' -> bytes."""
    m = _SIZE_RE.match(value)
    if not m or m.group(2) not in _SIZE_UNITS:
        raise InvalidConfig(f"Invalid size '{value}': expected a number with an optional unit "
                            "(kB, MB, GB, KiB, MiB, GiB, ...)")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2)])


def parse_percent(value: str) -> float:
    """'50%' -> 50.0."""
    m = re.match(r"^\s*(\d+(?:\.\d+)?)%\s*$", value)
    if not m:
        raise InvalidConfig(f"Invalid percentage '{value}'")
    pct = float(m.group(1))
    if pct <= 0 or pct > 100:
        raise InvalidConfig(f"Invalid percentage '{value}': must be in (0, 100]")
    return pct


def parse_size_or_percent(value: str, total: int) -> int:
    """'25%' of total, or an absolute size."""
    if value.strip().endswith("%"):
        return int(total * parse_percent(value) / 100)
    return parse_size(value)


def parse_cpuset(value: str) -> list[int]:
    """'0-2,4' -> [0, 1, 2, 4]."""
    cpus: set[int] = set()
    for part in value.split(","):
        part = part.strip()
        m = re.match(r"^(\d+)(?:-(\d+))?$", part)
        if not m:
            raise InvalidConfig(f"Invalid CPU set '{value}'")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise InvalidConfig(f"Invalid CPU range '{part}'")
        cpus.update(range(lo, hi + 1))
    return sorted(cpus)


def format_cpuset(cpus: list[int]) -> str:
    """[0, 1, 2, 4] -> '0-2,4'."""
    out: list[str] = []
    for cpu in sorted(set(cpus)):
        if out and "-" in out[-1] and int(out[-1].split("-")[1]) == cpu - 1:
            out[-1] = f"{out[-1].split('-')[0]}-{cpu}"
        elif out and "-" not in out[-1] and int(out[-1]) == cpu - 1:
            out[-1] = f"{out[-1]}-{cpu}"
        else:
            out.append(str(cpu))
    return ",".join(out)


def parse_limits_cpu(value: str) -> int | list[int]:
    """limits.cpu: '2' -> count 2; '0-1', '0,3', '1-1' -> explicit CPU set (LXD's rule)."""
    value = value.strip()
    if re.fullmatch(r"\d+", value):
        count = int(value)
        if count < 1:
            raise InvalidConfig(f"Invalid CPU count '{value}': must be at least 1")
        return count
    return parse_cpuset(value)


_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)(us|ms|s)\s*$")


def _duration_us(value: str) -> int:
    m = _DURATION_RE.match(value)
    if not m:
        raise InvalidConfig(f"Invalid duration '{value}': expected e.g. 25ms")
    factor = {"us": 1, "ms": 1000, "s": 1_000_000}[m.group(2)]
    return int(float(m.group(1)) * factor)


def parse_cpu_allowance(value: str) -> tuple[str, int, int]:
    """limits.cpu.allowance: '50%' -> ('share', 50, 0); '25ms/100ms' -> ('quota', 25000, 100000)."""
    if "/" in value:
        quota, period = value.split("/", 1)
        q, p = _duration_us(quota), _duration_us(period)
        if p < 1000 or p > 1_000_000 or q < 1000:
            raise InvalidConfig(f"Invalid CPU allowance '{value}': quota >= 1ms, period 1ms..1s")
        return ("quota", q, p)
    return ("share", int(parse_percent(value)), 0)


_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def parse_bool(value: str) -> bool:
    """LXD booleans: 'true'/'1'/'yes'/'on' or 'false'/'0'/'no'/'off', any case."""
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise InvalidConfig(f"Invalid boolean '{value}': expected true or false")


_BIT_RATE_UNITS = {
    "bit": 1, "kbit": 10**3, "Mbit": 10**6, "Gbit": 10**9, "Tbit": 10**12, "Pbit": 10**15,
    "Kibit": 2**10, "Mibit": 2**20, "Gibit": 2**30, "Tibit": 2**40, "Pibit": 2**50,
}
_BIT_RATE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]+)\s*$")


def parse_bit_rate(value: str) -> int:
    """NIC limits.ingress/egress: '100Mbit', '1Gbit' -> bits per second (LXD's units)."""
    m = _BIT_RATE_RE.match(value)
    if not m or m.group(2) not in _BIT_RATE_UNITS:
        raise InvalidConfig(f"Invalid bit rate '{value}': expected a number with a unit "
                            "(bit, kbit, Mbit, Gbit, ...)")
    return int(float(m.group(1)) * _BIT_RATE_UNITS[m.group(2)])

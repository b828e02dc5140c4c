"""PURE composable value validators for config keys and device options (as incus shared/validate).

A validator takes the string value and returns None, or raises InvalidConfig (or ValueError)
with a reason; callers prefix the key name. Owns no registry (see config.py, devices.py).
Imports only lxmgr.errors, lxmgr.model.units and the stdlib: no I/O (syscall names are
looked up in libseccomp's table through pyseccomp, imported lazily: see _libseccomp).
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable, Iterable

from lxmgr.errors import InvalidConfig
from lxmgr.model import units

Validator = Callable[[str], None]

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
UINT32_MAX = 2**32 - 1
# How alike a known name must be to be suggested for an unknown one (difflib's ratio): a typo
# or a truncation; difflib's default 0.6 offers 'limits.cpu' for 'limits.foo'.
SUGGEST_CUTOFF = 0.8


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """": did you mean 'limits.memory'?" when one known name is close to name, else ""."""
    match = difflib.get_close_matches(name, list(known), n=1, cutoff=SUGGEST_CUTOFF)
    return f": did you mean '{match[0]}'?" if match and match[0] != name else ""


def is_any(value: str) -> None:
    """Accept any value."""


def optional(*validators: Validator) -> Validator:
    """Accept the empty string (meaning unset), else apply every validator in turn."""

    def check(value: str) -> None:
        if value == "":
            return
        for validator in validators:
            validator(value)

    return check


def required(*validators: Validator) -> Validator:
    """Reject the empty string, else apply every validator in turn."""

    def check(value: str) -> None:
        if value == "":
            raise InvalidConfig("Value is required")
        for validator in validators:
            validator(value)

    return check


def and_(*validators: Validator) -> Validator:
    """Apply every validator in turn; the first failure wins."""

    def check(value: str) -> None:
        for validator in validators:
            validator(value)

    return check


def is_bool(value: str) -> None:
    """An LXD boolean (true/false, yes/no, on/off, 1/0)."""
    units.parse_bool(value)


def _parse_int(value: str) -> int:
    if not re.fullmatch(r"[+-]?[0-9]+", value):
        raise InvalidConfig(f"Invalid integer '{value}'")
    return int(value)


def is_int_range(low: int, high: int) -> Validator:
    """An integer in [low, high]."""

    def check(value: str) -> None:
        number = _parse_int(value)
        if not low <= number <= high:
            raise InvalidConfig(f"Value '{value}' is out of range [{low}, {high}]")

    return check


is_int64 = is_int_range(INT64_MIN, INT64_MAX)
is_int64.__doc__ = "A signed 64-bit integer."
is_uint32 = is_int_range(0, UINT32_MAX)
is_uint32.__doc__ = "An unsigned 32-bit integer."
is_priority = is_int_range(0, 10)
is_priority.__doc__ = "An LXD priority: an integer from 0 to 10."


def is_one_of(*choices: str) -> Validator:
    """One of the given strings, exactly."""

    def check(value: str) -> None:
        if value not in choices:
            raise InvalidConfig(f"Invalid value '{value}' (must be one of {', '.join(choices)})")

    return check


def is_size(value: str) -> None:
    """A byte size such as '512MiB' or '1GB'."""
    units.parse_size(value)


def is_size_or_percent(value: str) -> None:
    """A byte size or a percentage such as '25%'."""
    if value.strip().endswith("%"):
        units.parse_percent(value)
    else:
        units.parse_size(value)


def is_non_zero_size(value: str) -> None:
    """Reject an absolute size of zero bytes (percentages are checked by parse_percent)."""
    if not value.strip().endswith("%") and units.parse_size(value) == 0:
        raise InvalidConfig("Size can't be 0")


def is_cpuset_or_count(value: str) -> None:
    """A CPU count ('2') or a CPU set ('0-1,4')."""
    units.parse_limits_cpu(value)


def is_cpu_allowance(value: str) -> None:
    """A CPU share ('50%') or a quota per period ('25ms/100ms')."""
    units.parse_cpu_allowance(value)


def is_bit_rate(value: str) -> None:
    """A network bit rate such as '100Mbit'."""
    units.parse_bit_rate(value)


def is_no_control(*forbidden: str) -> Validator:
    """Reject values containing any of the given characters (named in the reason)."""

    def check(value: str) -> None:
        for char in forbidden:
            if char in value:
                raise InvalidConfig(f"Value must not contain {char!r}")

    return check


def is_abs_path(value: str) -> None:
    """An absolute path without NUL bytes or '..' components."""
    if not value.startswith("/") or "\0" in value:
        raise InvalidConfig(f"Invalid path '{value}': must be absolute")
    if ".." in value.split("/"):
        raise InvalidConfig(f"Invalid path '{value}': must not contain '..'")


def is_ipv4_address(value: str) -> None:
    """A single IPv4 address."""
    try:
        ipaddress.IPv4Address(value)
    except ValueError as err:
        raise InvalidConfig(f"Invalid IPv4 address '{value}'") from err


_MAC_RE = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")


def is_mac_address(value: str) -> None:
    """A colon-separated 48-bit MAC address."""
    if not _MAC_RE.fullmatch(value):
        raise InvalidConfig(f"Invalid MAC address '{value}'")


_IFNAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,15}$")


def is_interface_name(value: str) -> None:
    """A Linux network interface name: 1-15 characters, no '/', ':' or whitespace."""
    if not _IFNAME_RE.fullmatch(value) or value in (".", ".."):
        raise InvalidConfig(f"Invalid interface name '{value}'")


is_mtu = is_int_range(68, 65535)
is_mtu.__doc__ = "A network MTU (68 to 65535)."


_SYSCALL_RE = re.compile(r"^[a-z_][a-z0-9_]*$")


# Highest syscall number looked at for suggestions (x86_64 has ~460; libseccomp stops short).
_SYSCALL_NR_MAX = 1024


def _libseccomp():  # type: ignore[no-untyped-def]
    """pyseccomp, imported here only: the one exception to this module's no-ctypes rule.
    Which names a filter can take is libseccomp's table (runtime.security adds the rules);
    resolving a name is a lookup in it, no kernel call and no file."""
    import pyseccomp

    return pyseccomp


def unknown_syscalls(names: Iterable[str]) -> list[str]:
    """The names libseccomp cannot resolve on this host (__NR_SCMP_ERROR, -1); names of
    another ABI only (socketcall on x86_64: a negative pseudo number) are known."""
    seccomp = _libseccomp()
    return [name for name in names
            if seccomp.resolve_syscall(seccomp.Arch.NATIVE, name) == -1]


def _native_syscall_names() -> list[str]:
    seccomp = _libseccomp()
    names = []
    for nr in range(_SYSCALL_NR_MAX):
        try:
            names.append(seccomp.resolve_syscall(seccomp.Arch.NATIVE, nr).decode())
        except ValueError:  # a gap in the table
            continue
    return names


def is_syscall_list(value: str) -> None:
    """A newline-separated list of syscall names libseccomp knows (LXD passes its lines to
    liblxc, which skips an unknown name silently; we refuse it)."""
    names = [line.strip() for line in value.splitlines() if line.strip()]
    for name in names:
        if not _SYSCALL_RE.fullmatch(name):
            raise InvalidConfig(f"Invalid syscall name '{name}'")
    unknown = unknown_syscalls(names)
    if unknown:
        hint = did_you_mean(unknown[0], _native_syscall_names())
        raise InvalidConfig(f"Unknown syscall '{unknown[0]}'{hint}")


# A module's name as the kernel keeps it: MODULE_NAME_LEN is 64 - sizeof(unsigned long) with
# the NUL included (include/linux/module.h); '-' and '_' are the same to modprobe. A leading
# '-' is refused: modprobe would read the name as an option.
_KERNEL_MODULE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,54}$")


def parse_kernel_modules(value: str) -> list[str]:
    """linux.kernel_modules: the comma-separated names (spaces around them ignored, as LXD
    trims them); raises InvalidConfig naming the first invalid one."""
    names = [name.strip() for name in value.split(",")] if value.strip() else []
    for name in names:
        if not _KERNEL_MODULE_RE.fullmatch(name):
            raise InvalidConfig(f"Invalid kernel module name '{name}' (letters, digits, _ "
                                "and -, at most 55 characters)")
    return names


def is_kernel_module_list(value: str) -> None:
    """A comma-separated list of kernel module names ('br_netfilter,nf_nat')."""
    parse_kernel_modules(value)


_LISTEN_RE = re.compile(r"^(tcp|udp):(\[[0-9a-fA-F:.]+\]|[^:\s\[\]]+):(\d+)(?:-(\d+))?$")


def is_proxy_address(value: str) -> None:
    """A proxy endpoint: 'tcp:ADDR:PORT[-PORT]', 'udp:...' or 'unix:PATH' ('unix:@abstract')."""
    if value.startswith("unix:"):
        path = value[len("unix:"):]
        if not path or "\0" in path:
            raise InvalidConfig(f"Invalid proxy address '{value}'")
        return
    m = _LISTEN_RE.fullmatch(value)
    if not m:
        raise InvalidConfig(f"Invalid proxy address '{value}': expected tcp:ADDR:PORT, "
                            "udp:ADDR:PORT or unix:PATH")
    for port in (m.group(3), m.group(4)):
        if port is not None and not 1 <= int(port) <= 65535:
            raise InvalidConfig(f"Invalid port '{port}' in proxy address '{value}'")

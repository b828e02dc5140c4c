"""Every validator in lxmgr.model.validate: accepted and rejected values."""

from __future__ import annotations

import pytest

from lxmgr.errors import InvalidConfig
from lxmgr.model import validate as v

CASES: list[tuple[v.Validator, list[str], list[str]]] = [
    (v.is_any, ["", "anything", "a\nb"], []),
    (v.is_bool, ["true", "false", "TRUE", "yes", "no", "on", "off", "1", "0"],
     ["", "maybe", "2", "tru"]),
    (v.is_int64, ["0", "-1", "+5", str(2**63 - 1), str(-(2**63))],
     ["", "1.5", "abc", str(2**63), "1e3", " 1"]),
    (v.is_uint32, ["0", str(2**32 - 1)], ["-1", str(2**32), "x"]),
    (v.is_priority, ["0", "5", "10"], ["-1", "11", "high"]),
    (v.is_int_range(1, 3), ["1", "3"], ["0", "4"]),
    (v.is_one_of("hard", "soft"), ["hard", "soft"], ["", "Hard", "medium"]),
    (v.is_size, ["512MiB", "1GB", "1073741824", "2G", "1.5GiB"], ["", "12 parsecs", "-1", "MiB"]),
    (v.is_size_or_percent, ["25%", "100%", "1GiB"], ["0%", "101%", "%", "abc"]),
    (v.is_non_zero_size, ["1", "25%", "1MiB"], ["0", "0MiB"]),
    (v.is_cpuset_or_count, ["1", "2", "0-1", "0,3", "1-1", "0-2,4"], ["0", "a", "2-1", "-1", ""]),
    (v.is_cpu_allowance, ["50%", "100%", "25ms/100ms", "1s/1s"],
     ["0%", "abc", "25/100", "1us/1ms"]),
    (v.is_bit_rate, ["100Mbit", "1Gbit", "10kbit", "1Gibit"], ["100", "100MB", "fast"]),
    (v.is_no_control("\n", "\0"), ["plain", "tab\tok"], ["a\nb", "a\0b"]),
    (v.is_abs_path, ["/", "/mnt/data"], ["relative", "", "/a/../b"]),
    (v.is_ipv4_address, ["10.0.0.2"], ["10.0.0.256", "::1", "10.0.0.0/24"]),
    (v.is_mac_address, ["00:16:3e:aa:bb:cc"],
     ["00:16:3e:aa:bb", "00-16-3e-aa-bb-cc", "zz:16:3e:aa:bb:cc"]),
    (v.is_interface_name, ["eth0", "veth1a2b", "br-lan.10"], ["", "a" * 16, "eth 0", "a/b", "a:b"]),
    (v.is_mtu, ["1500", "9000"], ["0", "67", "70000"]),
    (v.is_syscall_list, ["keyctl", "keyctl\nadd_key\n", "", " getcpu \n\nsocketcall"],
     ["key ctl", "Keyctl", "1abc", "getcpu errno 1", "getcpux", "compat_sys_ioctl"]),
    (v.is_proxy_address,
     ["tcp:127.0.0.1:80", "udp:0.0.0.0:53", "tcp:[::1]:8080", "tcp:0.0.0.0:80-90",
      "unix:/run/app.sock", "unix:@abstract", "tcp:localhost:22"],
     ["tcp:127.0.0.1", "http:1.2.3.4:80", "tcp:1.2.3.4:0", "tcp:1.2.3.4:70000", "unix:", ""]),
]


@pytest.mark.parametrize(
    ("validator", "value"),
    [(case[0], good) for case in CASES for good in case[1]],
)
def test_accepts(validator: v.Validator, value: str) -> None:
    validator(value)


@pytest.mark.parametrize(
    ("validator", "value"),
    [(case[0], bad) for case in CASES for bad in case[2]],
)
def test_rejects(validator: v.Validator, value: str) -> None:
    with pytest.raises((InvalidConfig, ValueError)):
        validator(value)


def test_optional_accepts_empty_and_checks_the_rest() -> None:
    check = v.optional(v.is_bool)
    check("")
    check("true")
    with pytest.raises(InvalidConfig):
        check("nope")


def test_required_rejects_empty() -> None:
    check = v.required(v.is_any)
    check("x")
    with pytest.raises(InvalidConfig, match="required"):
        check("")


def test_and_applies_all_in_order() -> None:
    check = v.and_(v.is_int64, v.is_int_range(0, 5))
    check("3")
    with pytest.raises(InvalidConfig, match="out of range"):
        check("7")
    with pytest.raises(InvalidConfig, match="Invalid integer"):
        check("x")


def test_is_one_of_names_the_choices() -> None:
    with pytest.raises(InvalidConfig, match="must be one of hard, soft"):
        v.is_one_of("hard", "soft")("medium")


def test_int_rejects_non_ascii_digits() -> None:
    with pytest.raises(InvalidConfig):
        v.is_int64("\u0661\u0662")


@pytest.mark.parametrize(("name", "known", "said"), [
    ("limits.memroy", ["limits.memory", "limits.cpu"], ": did you mean 'limits.memory'?"),
    ("nictyp", ["nictype", "network", "name"], ": did you mean 'nictype'?"),
    ("limits.foo", ["limits.memory", "limits.cpu"], ""),  # a shared prefix is not enough
    ("x", [], ""),
])
def test_did_you_mean(name: str, known: list[str], said: str) -> None:
    assert v.did_you_mean(name, known) == said


def test_unknown_syscall_is_named_with_a_suggestion() -> None:
    with pytest.raises(InvalidConfig) as err:
        v.is_syscall_list("getcpu\nkexec_fileload\nalso_unknown")
    assert str(err.value) == "Unknown syscall 'kexec_fileload': did you mean 'kexec_file_load'?"
    with pytest.raises(InvalidConfig) as err:
        v.is_syscall_list("compat_sys_ioctl")  # a kernel function, not a syscall name
    assert str(err.value) == "Unknown syscall 'compat_sys_ioctl'"
    assert v.unknown_syscalls(["getcpu", "socketcall", "nope"]) == ["nope"]

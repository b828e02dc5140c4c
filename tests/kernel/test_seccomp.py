"""The security.syscalls.* keys in a real booted container: what a process inside gets from
the seccomp filter, for 64-bit code (perl's syscall()) and for an i386 program (int 0x80),
in `exec` sessions and in services systemd (PID 1) starts."""

from __future__ import annotations

import dataclasses
import platform
import uuid
from collections.abc import Iterator

import pytest

from tests.i386_elf import i386_program
from tests.kernel.conftest import exec_out, wait_running

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(platform.machine() != "x86_64", reason="x86_64 numbers")]

GETCPU = "my $r = syscall(309, 0, 0, 0); print $r == -1 ? ($!+0) : 'ok'"  # x86_64 number
# 32-bit programs are written from stdin and run by a shell: a signal shows as 128 + signo.
RUN_STDIN = "cat > /root/prog && chmod +x /root/prog && /root/prog; echo $?"


@pytest.fixture
def booted(manager) -> Iterator:  # type: ignore[no-untyped-def]
    """Boot a container with the given config; the manager fixture deletes it."""
    def boot(config: dict[str, str]) -> str:
        name = f"s{uuid.uuid4().hex[:8]}"
        manager.create(name, "debian", config=config)
        manager.start(name)
        assert wait_running(manager, name) == "running"
        return name
    yield boot


def perl(manager, name: str, script: str) -> str:  # type: ignore[no-untyped-def]
    code, out, err = exec_out(manager, name, ["perl", "-e", script])
    assert code == 0, err
    return out


def run_i386(manager, name: str, syscall: str) -> int:  # type: ignore[no-untyped-def]
    """Exit status of the i386 program making `syscall`: its errno, 0 when it worked."""
    code, out, err = exec_out(manager, name, ["sh", "-c", RUN_STDIN],
                              stdin=i386_program(syscall))
    assert code == 0, err
    return int(out)


def in_service(manager, name: str, script: str) -> str:  # type: ignore[no-untyped-def]
    """perl run as a transient service of the container's systemd (PID 1's filter)."""
    code, out, err = exec_out(manager, name, ["systemd-run", "--quiet", "--wait", "--pipe",
                                              "perl", "-e", script])
    assert code == 0, err
    return out


def test_deny_key_denies_with_eperm_on_both_abis(manager, booted) -> None:  # type: ignore[no-untyped-def]
    name = booted({"security.syscalls.deny": "getcpu"})
    assert perl(manager, name, GETCPU) == "1"  # EPERM
    assert in_service(manager, name, GETCPU) == "1"
    assert run_i386(manager, name, "getcpu") == 1  # no way around it through int 0x80
    assert run_i386(manager, name, "open_by_handle_at") == 38  # the default list: ENOSYS


def test_without_keys_the_syscall_and_32bit_programs_work(manager, container) -> None:  # type: ignore[no-untyped-def]
    assert perl(manager, container, GETCPU) == "ok"
    assert in_service(manager, container, GETCPU) == "ok"
    assert run_i386(manager, container, "getcpu") == 0  # as on LXD: deny_compat is false
    assert run_i386(manager, container, "open_by_handle_at") == 38


def test_deny_compat_stops_32bit_programs(manager, booted) -> None:  # type: ignore[no-untyped-def]
    name = booted({"security.syscalls.deny_compat": "true",
                   "security.syscalls.deny_default": "false"})
    # getcpu and exit_group both fail with ENOSYS: the program runs into ud2 (SIGILL, 4).
    assert run_i386(manager, name, "getcpu") == 128 + 4
    assert perl(manager, name, GETCPU) == "ok"
    # Without the default list open_by_handle_at reaches the kernel (no ENOSYS).
    assert perl(manager, name, "my $r = syscall(304, 0, 0, 0); print $!+0") not in ("38", "0")


def test_a_name_stored_before_validation_fails_the_start(manager, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from lxmgr.errors import LxmgrError
    from lxmgr.model import config, validate

    key = config.KEYS["security.syscalls.deny"]
    # As if stored by an older lxmgr, or valid for the libseccomp of another host.
    monkeypatch.setitem(config.KEYS, key.name, dataclasses.replace(key, validator=validate.is_any))
    manager.create("old1", "debian", config={key.name: "getcpu\nno_such_call"})
    with pytest.raises(LxmgrError) as err:
        manager.start("old1")
    assert "Unknown syscall 'no_such_call' in security.syscalls.deny" in str(err.value)
    assert "\n" not in str(err.value)

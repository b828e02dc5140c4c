"""The seccomp filter as libseccomp would load it and loaded in a forked child (native and
i386 syscalls), and the bounding-set drop via the recorder."""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import signal
import tempfile
from collections.abc import Callable

import pyseccomp
import pytest

from lxmgr.errors import InvalidConfig
from lxmgr.linux import consts as c
from lxmgr.linux import libc
from lxmgr.runtime.plan import SECCOMP_DENY
from lxmgr.runtime.security import build_seccomp, compat_arches, drop_bounding_caps, load_seccomp
from tests.fakes.syscalls import RecordingSyscalls
from tests.i386_elf import host_runs_i386, write_program
from tests.unit.runtime.conftest import make_plan

DENY = [row[0] for row in SECCOMP_DENY]
X86_64_ONLY = pytest.mark.skipif(platform.machine() != "x86_64", reason="x86_64 ABIs")


def export_pfc(flt: pyseccomp.SyscallFilter) -> str:
    with tempfile.TemporaryFile() as f:
        flt.export_pfc(f)
        f.seek(0)
        return f.read().decode()


def rules(flt: pyseccomp.SyscallFilter) -> dict[str, dict[str, str]]:
    """{arch: {syscall: the pfc lines of its rule}} from libseccomp's pseudo filter code."""
    out: dict[str, dict[str, str]] = {}
    arch = name = ""
    for line in export_pfc(flt).splitlines():
        line = line.strip()
        if line.startswith("# filter for arch "):
            arch, name = line.split()[4], ""
            out[arch] = {}
        elif line.startswith("# filter for syscall "):
            name = line.split('"')[1]
            out[arch][name] = ""
        elif line.startswith("#"):
            name = ""
        elif name:
            out[arch][name] += line + "\n"
    return out


def badarch_action(flt: pyseccomp.SyscallFilter) -> str:
    return export_pfc(flt).split("# invalid architecture action", 1)[1].split("\n")[1].strip()


def test_default_list_fails_with_enosys() -> None:
    native = rules(build_seccomp(make_plan()))[platform.machine()]
    for name in DENY:
        assert native[name].endswith(f"action ERRNO({errno.ENOSYS});\n"), name


def test_default_list_is_lxd_5_0_plus_kexec_file_load() -> None:
    assert DENY == ["kexec_load", "open_by_handle_at", "init_module", "finit_module",
                    "delete_module", "kexec_file_load"]


def test_force_umount_fails_with_eacces() -> None:
    umount2 = rules(build_seccomp(make_plan()))[platform.machine()]["umount2"]
    assert "if ($a1.lo32 & 0x00000001 == 1)" in umount2  # MNT_FORCE
    assert f"action ERRNO({errno.EACCES});" in umount2
    assert umount2.count("action") == 1  # a plain umount2 stays allowed


def test_extra_names_fail_with_eperm() -> None:
    plan = make_plan(config={"security.syscalls.deny": "getcpu\nsethostname"})
    native = rules(build_seccomp(plan))[platform.machine()]
    for name in ("getcpu", "sethostname"):
        assert native[name] == f"if ($syscall == {nr(name)})\naction ERRNO({errno.EPERM});\n"
    assert native["kexec_load"].endswith(f"ERRNO({errno.ENOSYS});\n")  # the default stays


def test_extra_name_wins_over_the_default_list() -> None:
    plan = make_plan(config={"security.syscalls.deny": "kexec_load\numount2"})
    native = rules(build_seccomp(plan))[platform.machine()]
    assert native["kexec_load"].endswith(f"action ERRNO({errno.EPERM});\n")
    assert native["umount2"].count("action") == 1  # every umount2, not only MNT_FORCE
    assert native["umount2"].endswith(f"action ERRNO({errno.EPERM});\n")


def test_deny_default_false_allows_everything() -> None:
    flt = build_seccomp(make_plan(config={"security.syscalls.deny_default": "false"}))
    assert all(not syscalls for syscalls in rules(flt).values())
    assert "ERRNO" not in export_pfc(flt).split("# invalid architecture action")[0]
    assert flt.get_attr(pyseccomp.Attr.ACT_DEFAULT) == pyseccomp.ALLOW


@X86_64_ONLY
def test_compat_abis_get_the_same_rules_by_default() -> None:
    plan = make_plan(config={"security.syscalls.deny": "getcpu"})
    flt = build_seccomp(plan)
    for arch in (pyseccomp.Arch.X86_64, pyseccomp.Arch.X86, pyseccomp.Arch.X32):
        assert flt.exist_arch(arch)
    by_arch = rules(flt)
    assert set(by_arch) == {"x86_64", "x86", "x32"}
    for arch, syscalls in by_arch.items():
        missing = {"kexec_file_load"} if arch == "x86" else set()  # no such i386 syscall
        assert set(DENY) - missing | {"getcpu", "umount2"} == set(syscalls), arch
    # i386 numbers, not x86_64's: int 0x80 is no way around the list.
    assert by_arch["x86"]["getcpu"].startswith("if ($syscall == 318)")
    assert by_arch["x86"]["open_by_handle_at"].startswith("if ($syscall == 342)")
    assert by_arch["x32"]["getcpu"].startswith(f"if ($syscall == {0x40000000 | 309})")


@X86_64_ONLY
def test_deny_compat_leaves_only_the_native_abi() -> None:
    plan = make_plan(config={"security.syscalls.deny_compat": "true"})
    flt = build_seccomp(plan)
    assert flt.exist_arch(pyseccomp.Arch.X86_64)
    assert not flt.exist_arch(pyseccomp.Arch.X86)
    assert not flt.exist_arch(pyseccomp.Arch.X32)
    assert set(rules(flt)) == {"x86_64"}
    assert badarch_action(flt) == f"action ERRNO({errno.ENOSYS});"  # LXD's errno 38


def test_compat_arches() -> None:
    x86_64, x86, x32 = pyseccomp.Arch.X86_64, pyseccomp.Arch.X86, pyseccomp.Arch.X32
    assert compat_arches(x86_64, False) == (x86, x32)
    assert compat_arches(x86_64, True) == ()
    # LXD: deny_compat is a no-op on other architectures.
    assert compat_arches(pyseccomp.Arch.AARCH64, True) == (pyseccomp.Arch.ARM,)
    assert compat_arches(pyseccomp.Arch.S390X, False) == ()


def test_attributes() -> None:
    flt = build_seccomp(make_plan())
    assert flt.get_attr(pyseccomp.Attr.CTL_NNP) == 0  # setuid binaries keep working
    assert flt.get_attr(pyseccomp.Attr.ACT_BADARCH) == pyseccomp.ERRNO(errno.ENOSYS)
    assert flt.get_attr(pyseccomp.Attr.ACT_DEFAULT) == pyseccomp.ALLOW


def test_unknown_syscall_refused_at_start() -> None:
    plan = make_plan()
    plan.seccomp_deny = ["getcpu", "no_such_call"]  # a config stored before validation
    with pytest.raises(InvalidConfig) as err:
        build_seccomp(plan)
    assert str(err.value) == "Unknown syscall 'no_such_call' in security.syscalls.deny"


# -- the filter loaded: a forked child installs it (no_new_privs: no privilege needed) --------

def nr(name: str) -> int:
    return int(pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name))


def filtered(config: dict[str, str] | None, run: Callable[[], int]) -> int:
    """Exit code of run() (or -signal) in a child that loaded the filter for config first;
    without config, no filter."""
    pid = os.fork()
    if pid == 0:
        code = 255
        try:
            if config is not None:
                libc.prctl(c.PR_SET_NO_NEW_PRIVS, 1)
                load_seccomp(build_seccomp(make_plan(config=config)))
            code = run()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def native_call(name: str, *args: int | ctypes.c_char_p) -> Callable[[], int]:
    """The errno of the native syscall name(*args), 0 when it succeeds."""
    def run() -> int:
        ret = ctypes.CDLL(None, use_errno=True).syscall(nr(name), *args)
        return 0 if ret >= 0 else ctypes.get_errno()
    return run


def test_loaded_filter_denies_the_extra_names_with_eperm() -> None:
    deny = {"security.syscalls.deny": "getcpu"}
    assert filtered(None, native_call("getcpu", 0, 0, 0)) == 0
    assert filtered({}, native_call("getcpu", 0, 0, 0)) == 0
    assert filtered(deny, native_call("getcpu", 0, 0, 0)) == errno.EPERM


def test_loaded_filter_default_list_and_force_umount() -> None:
    assert filtered(None, native_call("open_by_handle_at", 0, 0, 0)) != errno.ENOSYS
    assert filtered({}, native_call("open_by_handle_at", 0, 0, 0)) == errno.ENOSYS
    no_default = {"security.syscalls.deny_default": "false"}
    assert filtered(no_default, native_call("open_by_handle_at", 0, 0, 0)) != errno.ENOSYS
    force = native_call("umount2", ctypes.c_char_p(b"/nonexistent-lxmgr-test"), c.MNT_FORCE)
    assert filtered({}, force) == errno.EACCES
    assert filtered(no_default, force) == errno.ENOENT


@pytest.fixture
def i386(tmp_path):  # type: ignore[no-untyped-def]
    """Path maker for i386 programs; skips where the kernel cannot run them."""
    if not host_runs_i386(write_program(str(tmp_path / "probe"), "getcpu")):
        pytest.skip("this kernel does not run i386 programs")
    return lambda name: write_program(str(tmp_path / name), name)


def exec_program(path: str) -> Callable[[], int]:
    def run() -> int:
        os.execv(path, [path])
    return run


@X86_64_ONLY
def test_loaded_filter_covers_i386_programs(i386) -> None:  # type: ignore[no-untyped-def]
    getcpu, handle = exec_program(i386("getcpu")), exec_program(i386("open_by_handle_at"))
    assert filtered({}, getcpu) == 0  # 32-bit binaries run, as on LXD
    assert filtered({"security.syscalls.deny": "getcpu"}, getcpu) == errno.EPERM
    assert filtered(None, handle) != errno.ENOSYS
    assert filtered({}, handle) == errno.ENOSYS


@X86_64_ONLY
def test_loaded_filter_deny_compat_stops_i386_programs(i386) -> None:  # type: ignore[no-untyped-def]
    getcpu = exec_program(i386("getcpu"))
    # Its getcpu and exit_group both fail with ENOSYS: the program falls through to ud2.
    assert filtered({"security.syscalls.deny_compat": "true"}, getcpu) == -signal.SIGILL
    assert filtered({"security.syscalls.deny_compat": "true"},
                    native_call("getcpu", 0, 0, 0)) == 0


def test_drop_bounding_caps() -> None:
    sc = RecordingSyscalls()
    drop_bounding_caps(["sys_module", "sys_time", "audit_read"], sc)
    assert sc.named("prctl") == [
        (c.PR_CAPBSET_DROP, 16, 0, 0, 0),
        (c.PR_CAPBSET_DROP, 25, 0, 0, 0),
        (c.PR_CAPBSET_DROP, 37, 0, 0, 0),
        (c.PR_CAP_AMBIENT, c.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0),
    ]


def test_drop_tolerates_caps_unknown_to_the_kernel() -> None:
    sc = RecordingSyscalls()
    sc.fail("prctl", errno.EINVAL, c.PR_CAPBSET_DROP, 37)
    drop_bounding_caps(["audit_read", "sys_module"], sc)
    assert [args[1] for args in sc.named("prctl")] == [37, 16, c.PR_CAP_AMBIENT_CLEAR_ALL]


def test_drop_raises_other_errors() -> None:
    sc = RecordingSyscalls()
    sc.fail("prctl", errno.EPERM, c.PR_CAPBSET_DROP)
    with pytest.raises(PermissionError):
        drop_bounding_caps(["sys_module"], sc)
    assert len(sc.named("prctl")) == 1


def test_unknown_capability_name() -> None:
    with pytest.raises(KeyError):
        drop_bounding_caps(["no_such_cap"], RecordingSyscalls())

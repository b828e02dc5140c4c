"""The seccomp filter as libseccomp would load it, and the bounding-set drop via the recorder."""

from __future__ import annotations

import errno
import platform
import tempfile

import pyseccomp
import pytest

from lxmgr.linux import consts as c
from lxmgr.runtime.plan import SECCOMP_DENY
from lxmgr.runtime.security import build_seccomp, drop_bounding_caps
from tests.fakes.syscalls import RecordingSyscalls

DENY = [row[0] for row in SECCOMP_DENY]


def export_pfc(flt: pyseccomp.SyscallFilter) -> str:
    with tempfile.TemporaryFile() as f:
        flt.export_pfc(f)
        f.seek(0)
        return f.read().decode()


def test_denied_syscalls_fail_with_eperm() -> None:
    pfc = export_pfc(build_seccomp(DENY))
    for name in DENY:
        nr = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name)
        block = pfc.split(f'filter for syscall "{name}" ({nr})', 1)
        assert len(block) == 2, name
        assert block[1].split("\n", 3)[2].strip() == f"action ERRNO({errno.EPERM});"
    assert "action ALLOW;" in pfc  # allow by default


def test_empty_deny_list_allows_everything() -> None:
    pfc = export_pfc(build_seccomp([]))
    assert "ERRNO(1)" not in pfc
    assert "action ALLOW;" in pfc


@pytest.mark.skipif(platform.machine() != "x86_64", reason="x86_64 arch list")
def test_native_architecture_only() -> None:
    flt = build_seccomp(DENY)
    assert flt.exist_arch(pyseccomp.Arch.X86_64)
    assert not flt.exist_arch(pyseccomp.Arch.X86)
    assert not flt.exist_arch(pyseccomp.Arch.X32)
    pfc = export_pfc(flt)
    assert "filter for arch x86_64" in pfc
    assert "filter for arch x86 " not in pfc and "x32" not in pfc
    assert pfc.split("# invalid architecture action", 1)[1].split("\n")[1].strip() == \
        f"action ERRNO({errno.ENOSYS});"


def test_attributes() -> None:
    flt = build_seccomp(DENY)
    assert flt.get_attr(pyseccomp.Attr.CTL_NNP) == 0  # setuid binaries keep working
    assert flt.get_attr(pyseccomp.Attr.ACT_BADARCH) == pyseccomp.ERRNO(errno.ENOSYS)
    assert flt.get_attr(pyseccomp.Attr.ACT_DEFAULT) == pyseccomp.ALLOW


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

"""linux.kernel_modules: each module is loaded with the real code path against a fake
`modprobe` first on PATH (a script recording its argv) and a fake /sys/module; a module
already there is not asked for again, a failure names the module and modprobe's reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from lxmgr.errors import HostNotReady, InvalidConfig
from lxmgr.instances import host

FAKE_MODPROBE = """#!/bin/sh
echo "$@" >> "{log}"
case "$3" in
  nosuch) echo "modprobe: FATAL: Module nosuch not found in directory /lib/modules/x" >&2
          exit 1 ;;
  silent) exit 3 ;;
esac
mkdir -p "{sys}/$(echo "$3" | tr - _)"
"""


@pytest.fixture
def modprobe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fake's log; /sys/module is tmp_path/sys with `loaded` in it."""
    bindir, sysdir, log = tmp_path / "bin", tmp_path / "sys", tmp_path / "argv.log"
    bindir.mkdir()
    (sysdir / "loaded").mkdir(parents=True)
    script = bindir / "modprobe"
    script.write_text(FAKE_MODPROBE.format(log=log, sys=sysdir))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    monkeypatch.setattr(host, "SYS_MODULE", str(sysdir))
    return log


def calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_loads_each_missing_module_in_order(modprobe: Path) -> None:
    host.load_kernel_modules("br_netfilter, loaded ,nf-nat")
    assert calls(modprobe) == ["-b -- br_netfilter", "-b -- nf-nat"]
    host.load_kernel_modules("br_netfilter,nf_nat")  # both are in /sys/module now
    assert len(calls(modprobe)) == 2


def test_unset_loads_nothing(modprobe: Path) -> None:
    host.load_kernel_modules("")
    assert calls(modprobe) == []


def test_failure_names_the_module_and_stops(modprobe: Path) -> None:
    with pytest.raises(HostNotReady) as err:
        host.load_kernel_modules("nosuch,br_netfilter")
    assert str(err.value) == ("Failed to load kernel module 'nosuch': modprobe: FATAL: Module "
                              "nosuch not found in directory /lib/modules/x")
    assert calls(modprobe) == ["-b -- nosuch"]


def test_failure_without_output(modprobe: Path) -> None:
    with pytest.raises(HostNotReady, match="^Failed to load kernel module 'silent': "
                                           "modprobe exited with status 3$"):
        host.load_kernel_modules("silent")


def test_missing_modprobe(modprobe: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host, "_modprobe", lambda: "/nonexistent/modprobe")
    with pytest.raises(HostNotReady, match="^Failed to load kernel module 'x': "
                                           "modprobe is not installed \\(Debian package "
                                           "kmod\\)$"):
        host.load_kernel_modules("x")


def test_bad_names_never_reach_modprobe(modprobe: Path) -> None:
    for value in ("-r", "a,,b", "a b", "../x", "x" * 56):
        with pytest.raises(InvalidConfig, match="Invalid kernel module name"):
            host.load_kernel_modules(value)
    assert calls(modprobe) == []

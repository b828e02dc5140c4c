"""Host readiness checks with the host's files replaced by fakes."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from lxmgr.errors import HostNotReady
from lxmgr.instances import host
from lxmgr.runtime.idmap import SubIdRange


def fake_files(monkeypatch: pytest.MonkeyPatch, contents: dict[str, str]) -> None:
    monkeypatch.setattr(host, "_read", lambda path: contents.get(path, ""))


def test_subids_present(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_files(monkeypatch, {"/etc/subuid": "root:100000:65536",
                             "/etc/subgid": "root:200000:65536"})
    check = host._check_subids(fix=False)
    assert check.ok and check.fatal
    assert check.detail == "root has uids from 100000, gids from 200000"


def test_subids_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_files(monkeypatch, {"/etc/subuid": "root:100000:65536",
                             "/etc/subgid": "root:200000:1000"})  # too small
    monkeypatch.setattr(host.idmaps, "ensure_subids", lambda: pytest.fail("fixed"))
    check = host._check_subids(fix=False)
    assert not check.ok and check.fatal
    assert "tee -a /etc/subuid /etc/subgid" in check.fix


def test_subids_fixed(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_files(monkeypatch, {})
    calls: list[str] = []

    def ensure() -> tuple[SubIdRange, SubIdRange]:
        calls.append("ensure")
        return SubIdRange(1000000, 1000000000), SubIdRange(1000000, 1000000000)

    monkeypatch.setattr(host.idmaps, "ensure_subids", ensure)
    check = host._check_subids(fix=True)
    assert check.ok and calls == ["ensure"]
    assert check.detail == "added root:1000000:1000000000"


INOTIFY = "/proc/sys/fs/inotify/max_user_instances"


def fake_open(monkeypatch: pytest.MonkeyPatch) -> dict[str, io.StringIO]:
    """Capture writes through host's `open` (a module global shadows the builtin)."""
    written: dict[str, io.StringIO] = {}

    class Capture(io.StringIO):
        def __init__(self, path: str) -> None:
            super().__init__()
            self.path = path

        def close(self) -> None:
            written[self.path] = io.StringIO(self.getvalue())
            super().close()

    def opener(path: str, mode: str = "r") -> io.StringIO:
        assert mode == "w"
        return Capture(path)

    monkeypatch.setattr(host, "open", opener, raising=False)
    return written


@pytest.mark.parametrize(("value", "ok"), [("128", False), ("1024", True), ("8192", True),
                                           ("", False)])
def test_inotify_check(monkeypatch: pytest.MonkeyPatch, value: str, ok: bool) -> None:
    fake_files(monkeypatch, {INOTIFY: value})
    written = fake_open(monkeypatch)
    check = host._check_inotify(fix=False)
    assert check.ok is ok and not check.fatal
    assert check.detail == f"fs.inotify.max_user_instances={value or 0}"
    assert written == {}


def test_inotify_fix_raises_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_files(monkeypatch, {INOTIFY: "128"})
    written = fake_open(monkeypatch)
    check = host._check_inotify(fix=True)
    assert check.ok
    assert check.detail == "raised from 128 to 1024"
    assert written[INOTIFY].getvalue() == "1024"


def test_inotify_fix_leaves_a_high_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_files(monkeypatch, {INOTIFY: "4096"})
    written = fake_open(monkeypatch)
    assert host._check_inotify(fix=True).ok
    assert written == {}


def test_ensure_host_ready_names_the_first_fatal_problem(
        monkeypatch: pytest.MonkeyPatch) -> None:
    checks = [host.Check("overlayfs", False, "missing", "modprobe overlay", fatal=False),
              host.Check("user namespaces", False, "user.max_user_namespaces=0", "sysctl")]
    def check_host(fix: bool = False) -> list[host.Check]:
        assert fix
        return checks

    monkeypatch.setattr(host, "check_host", check_host)
    with pytest.raises(HostNotReady, match=r"^Host not ready: user namespaces: "
                                           r"user.max_user_namespaces=0 \(fix: sysctl\)$"):
        host.ensure_host_ready()
    checks.pop()
    assert host.ensure_host_ready() == checks


def _keys_dir(tmp_path: Path, maxkeys: int, maxbytes: int) -> str:
    (tmp_path / "maxkeys").write_text(f"{maxkeys}\n")
    (tmp_path / "maxbytes").write_text(f"{maxbytes}\n")
    return str(tmp_path)


def test_key_quota_is_raised_never_lowered(tmp_path: Path) -> None:
    root = _keys_dir(tmp_path, 200, 20000)
    check = host._check_keys(fix=False, root=root)
    assert not check.ok and not check.fatal and "kernel.keys.maxkeys=200" in check.detail
    assert "kernel.keys.maxkeys=2000" in check.fix
    check = host._check_keys(fix=True, root=root)
    assert check.ok and "from 200 to 2000" in check.detail
    assert (tmp_path / "maxkeys").read_text() == "2000"
    assert (tmp_path / "maxbytes").read_text() == "2000000"
    root = _keys_dir(tmp_path, 5000, 20000)
    assert host._check_keys(fix=True, root=root).ok
    assert (tmp_path / "maxkeys").read_text() == "5000\n"  # a higher setting stays

"""Which lxcfs the manager gives containers ($LXMGR_LXCFS, ours, Debian's, the LXD snap's),
the daemon's supervision when none can start, the release at exit and `lxmgr doctor`'s line,
on fake mount tables (a plain directory stands for a mounted lxcfs). The real lxcfs, started,
killed and restarted, is in tests/kernel/test_lxcfs.py."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from lxmgr.instances import lxcfs


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private LXMGR_DIR, no lxcfs mounted, Debian's and the snap's places under tmp."""
    monkeypatch.setenv("LXMGR_DIR", str(tmp_path / "state"))
    monkeypatch.delenv(lxcfs.ENV, raising=False)
    monkeypatch.setattr(lxcfs, "MOUNTINFO", str(tmp_path / "mountinfo"))
    monkeypatch.setattr(lxcfs, "FOREIGN", (tmp_path / "debian", tmp_path / "snap"))
    (tmp_path / "mountinfo").write_text("")
    return tmp_path


def fake_lxcfs(host: Path, where: Path) -> Path:
    """A directory that answers like a mounted lxcfs, listed in the fake mountinfo."""
    (where / "proc").mkdir(parents=True)
    for name in ("meminfo", "uptime"):
        (where / "proc" / name).write_text("")
    with open(host / "mountinfo", "a") as f:
        f.write(f"90 27 0:50 / {where} rw,nosuid,nodev - fuse.lxcfs lxcfs rw,allow_other\n")
    return where


def test_none_found_is_no_binds_and_a_warning(host: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    (host / "debian" / "proc").mkdir(parents=True)  # a directory, not a mount: ignored
    assert lxcfs.find() is None
    with caplog.at_level(logging.WARNING, logger="lxmgr.instances.lxcfs"):
        assert lxcfs.plan_binds("c1") == []
    assert caplog.messages == ["Instance 'c1' starts without lxcfs: none answers "
                               "(lxmgr doctor)"]


def test_ours_first_then_debian_then_the_snap(host: Path) -> None:
    snap = fake_lxcfs(host, host / "snap")
    assert lxcfs.find() == snap
    debian = fake_lxcfs(host, host / "debian")
    assert lxcfs.find() == debian
    ours = fake_lxcfs(host, host / "state" / "lxcfs")
    assert lxcfs.find() == ours == lxcfs.own().mount
    assert lxcfs.plan_binds("c1") == [[f"{ours}/proc/meminfo", "/proc/meminfo"],
                                      [f"{ours}/proc/uptime", "/proc/uptime"]]


def test_a_stale_mount_does_not_answer(host: Path) -> None:
    debian = fake_lxcfs(host, host / "debian")
    (debian / "proc" / "meminfo").unlink()  # as ENOTCONN: stat fails
    assert lxcfs.find() is None


def test_setting_names_the_one_to_use_or_none(host: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    fake_lxcfs(host, host / "debian")
    private = fake_lxcfs(host, host / "private")
    monkeypatch.setenv(lxcfs.ENV, str(private))
    assert lxcfs.find() == private
    monkeypatch.setenv(lxcfs.ENV, str(host / "elsewhere"))
    assert lxcfs.find() is None
    check = lxcfs.check()
    assert (check.ok, check.fatal) == (False, False)
    assert check.detail == f"no lxcfs answers at {host}/elsewhere (LXMGR_LXCFS)"
    monkeypatch.setenv(lxcfs.ENV, "none")
    assert lxcfs.find() is None and lxcfs.plan_binds("c1") == []
    assert lxcfs.check().ok
    assert lxcfs.check().detail == ("not used (LXMGR_LXCFS=none): containers see the host's "
                                    "/proc files")


def test_the_daemon_starts_nothing_when_told_or_when_one_answers(
        host: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lxcfs.Lxcfs, "start", lambda self: pytest.fail("started"))
    monkeypatch.setenv(lxcfs.ENV, "none")
    assert lxcfs.Supervisor().ensure() is None
    monkeypatch.delenv(lxcfs.ENV)
    fake_lxcfs(host, host / "debian")
    assert lxcfs.Supervisor().ensure() is None
    check = lxcfs.check()
    assert check.ok and check.detail == f"mounted at {host}/debian (not started by lxmgr)"


def test_a_missing_binary_is_reported_once(host: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lxcfs, "LXCFS", str(host / "no-lxcfs"))
    duty = lxcfs.Supervisor()
    level, message = duty.ensure() or (0, "")
    assert level == logging.WARNING
    assert message == ("lxcfs could not be started, containers see the host's /proc files: "
                       f"{host}/no-lxcfs is not installed (apt-get install lxcfs)")
    assert duty.ensure() is None  # within RETRY_INTERVAL
    monkeypatch.setattr(lxcfs, "RETRY_INTERVAL", 0.0)
    duty._retry_at = 0.0
    assert duty.ensure() is None  # retried, same failure: not reported again
    check = lxcfs.check()
    assert (check.ok, check.fatal) == (False, False)
    assert check.detail == "not running: containers see the host's memory, CPUs and uptime"
    assert check.fix == "apt-get install lxcfs && systemctl restart lxmgr.service"


def test_argv_is_foreground_with_loadavg_and_our_pid_file(host: Path) -> None:
    own = lxcfs.own()
    assert own.argv() == ["/usr/bin/lxcfs", "-f", "-l", "-p", f"{host}/state/run/lxcfs.pid",
                          f"{host}/state/lxcfs"]
    assert own.pid() is None and not own.is_mounted()


def test_release_leaves_it_to_running_instances_and_anyone_elses(
        host: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stopped: list[Path] = []
    monkeypatch.setattr(lxcfs.Lxcfs, "stop", lambda self: stopped.append(self.mount))
    fake_lxcfs(host, host / "state" / "lxcfs")
    lxcfs.release(instances_running=True)
    assert stopped == []
    lxcfs.release(instances_running=False)
    assert stopped == [host / "state" / "lxcfs"]
    monkeypatch.setenv(lxcfs.ENV, str(host / "state" / "lxcfs"))
    lxcfs.release(instances_running=False)  # $LXMGR_LXCFS's: someone else's
    assert stopped == [host / "state" / "lxcfs"]


async def test_the_daemon_starts_it_first_and_releases_it_at_exit(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import asyncio
    import threading

    from lxmgr.instances import lifecycle

    calls: list[object] = []
    started, go_on = threading.Event(), threading.Event()

    class FakeManager:
        class pools:  # noqa: N801 - the attribute the lifecycle uses
            @staticmethod
            def mount_all() -> None:
                calls.append("pools")
                started.set()
                go_on.wait(10)

        def list(self) -> list[str]:
            return ["a", "b"]

        def statuses_fast(self, names: list[str]) -> list[str | None]:
            return ["Stopped", "Running"]

    monkeypatch.setattr(lxcfs.Supervisor, "ensure", lambda self: calls.append("ensure") or
                        (logging.INFO, "lxcfs started (pid 1, /x)"))
    monkeypatch.setattr(lxcfs, "release", lambda running: calls.append(("release", running)))
    with caplog.at_level(logging.INFO, logger="lxmgr.instances.lifecycle"):
        task = asyncio.create_task(lifecycle.run(FakeManager()))  # type: ignore[arg-type]
        await asyncio.to_thread(started.wait, 10)
        task.cancel()
        go_on.set()
        await asyncio.gather(task, return_exceptions=True)
    assert calls == ["ensure", "pools", ("release", True)]  # b runs: it keeps its lxcfs
    assert caplog.messages == ["lxcfs started (pid 1, /x)"]

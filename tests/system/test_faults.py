"""The daemon killed with SIGKILL at each step of create, copy, import, delete, snapshot,
snapshot delete, rename, restore, publish, export, start and stop (deterministic points:
LXMGR_FAULT names the checkpoint where it kills itself, lxmgr.instances.checkpoints), then
started again: every instance fully exists and works or does not exist, and nothing is
left of what does not exist (directory, volume, snapshot, cgroup, supervisor, intent,
staging); the API answers the truth."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_images_api import tiny_image

pytestmark = [pytest.mark.kernel, pytest.mark.system]


def crash_at(daemon: Any, point: str, action: Callable[[], Any]) -> None:
    """Run action on a daemon that kills itself at `point`, then start a normal one."""
    daemon.stop()
    daemon.env["LXMGR_FAULT"] = point
    try:
        daemon.start()
        proc = daemon.proc
        try:
            action()
        except (OSError, AssertionError, ValueError):
            pass  # the daemon died under the request
        assert proc.wait(timeout=60) == -signal.SIGKILL, f"{point} was not reached"
        daemon.proc = None
    finally:
        daemon.env.pop("LXMGR_FAULT", None)
    daemon.start()


def names(daemon: Any) -> list[str]:
    return sorted(u.rsplit("/", 1)[-1] for u in daemon.api("GET", "/1.0/instances")["metadata"])


def snapshots(daemon: Any, name: str) -> list[str]:
    return sorted(u.rsplit("/", 1)[-1] for u in
                  daemon.api("GET", f"/1.0/instances/{name}/snapshots")["metadata"])


def op(daemon: Any, method: str, path: str, body: Any = None) -> None:
    """An async request; waits for its operation (the daemon may die meanwhile)."""
    resp = daemon.api(method, path, body)
    if resp.get("operation"):
        daemon.api("GET", f"{resp['operation']}/wait?timeout=60", check=False)


def consistent(daemon: Any) -> None:
    """Nothing of an instance the API does not list; no intent or staging left."""
    root = Path(daemon.root)
    listed = names(daemon)
    assert sorted(os.listdir(root / "instances")) == listed
    for pool_dir in root.glob("storage/*/containers"):
        assert sorted(p for p in os.listdir(pool_dir) if not p.startswith(".")) == listed
    assert not list((root / "intents").glob("*")) if (root / "intents").exists() else True
    staging = [p for p in (root / "backups").glob(".*")] if (root / "backups").exists() else []
    staging += [p for p in root.glob("images/.publish-*")]
    assert staging == []
    base = daemon.env["LXMGR_CGROUP_BASE"]
    for hierarchy in ("pids", "memory", "unified"):
        top = Path(f"/sys/fs/cgroup/{hierarchy}/{base}")
        if top.is_dir():
            assert {p.name for p in top.iterdir() if p.is_dir()} <= set(listed)


def works(daemon: Any, name: str) -> None:
    daemon.cli("start", name)
    assert daemon.cli("exec", name, "--", "cat", "/etc/hostname").stdout.strip() == name
    daemon.cli("stop", name, "--force")


def test_kill_9_at_each_step(daemon, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    daemon.cli("init", "debian", "base")
    daemon.cli("exec", "base", "--", "true", check=False)
    op(daemon, "POST", "/1.0/instances/base/snapshots", {"name": "s0"})
    image = {"name": "f1", "source": {"type": "image", "alias": "debian"}}

    for point in ("create.volume", "create.files"):  # (create.record: a subset of these)
        crash_at(daemon, point, lambda: op(daemon, "POST", "/1.0/instances", image))
        assert names(daemon) == ["base"], point
        consistent(daemon)

    copy = {"name": "f2", "source": {"type": "copy", "source": "base"}}
    for point in ("copy.snapshot",):  # the volume copied, a snapshot half way
        crash_at(daemon, point, lambda: op(daemon, "POST", "/1.0/instances", copy))
        assert names(daemon) == ["base"], point
        consistent(daemon)

    crash_at(daemon, "snapshot.volume", lambda: op(
        daemon, "POST", "/1.0/instances/base/snapshots", {"name": "s1"}))
    assert snapshots(daemon, "base") == ["s0"]
    assert not list(Path(daemon.root).glob("storage/*/containers-snapshots/base/s1"))
    consistent(daemon)

    crash_at(daemon, "restore.volume", lambda: op(
        daemon, "PUT", "/1.0/instances/base", {"restore": "s0"}))
    consistent(daemon)
    works(daemon, "base")

    for point in ("rename.dir",):  # volume and directory moved, the record not yet
        crash_at(daemon, point, lambda: op(daemon, "POST", "/1.0/instances/base",
                                           {"name": "moved"}))
        assert names(daemon) in (["base"], ["moved"]), point
        consistent(daemon)
        if names(daemon) == ["moved"]:
            op(daemon, "POST", "/1.0/instances/moved", {"name": "base"})
    works(daemon, "base")

    # Publish, export and import on an instance of a one-file image (the steps are the
    # same; a whole rootfs would only make them slower).
    tiny = tmp_path / "tiny.tar.gz"
    tiny.write_bytes(tiny_image())
    daemon.cli("image", "import", str(tiny), "--alias", "tiny")
    daemon.cli("init", "tiny", "small")
    crash_at(daemon, "publish.fingerprint", lambda: op(daemon, "POST", "/1.0/images", {
        "source": {"type": "instance", "name": "small"}, "aliases": [{"name": "pub"}]}))
    assert daemon.api("GET", "/1.0/images/aliases/pub", check=False)["type"] == "error"
    consistent(daemon)

    crash_at(daemon, "export.tree", lambda: op(daemon, "POST", "/1.0/instances/small/backups",
                                               {"name": "b0"}))
    assert daemon.api("GET", "/1.0/instances/small/backups")["metadata"] == []
    consistent(daemon)

    tarball = tmp_path / "small.tar.gz"
    daemon.cli("export", "small", str(tarball))
    crash_at(daemon, "import.volume",
             lambda: daemon.cli("import", str(tarball), "f3", check=False))
    assert names(daemon) == ["base", "small"]
    consistent(daemon)
    daemon.cli("delete", "small")

    crash_at(daemon, "snapshot.deleted", lambda: op(
        daemon, "DELETE", "/1.0/instances/base/snapshots/s0"))
    assert snapshots(daemon, "base") == []
    consistent(daemon)

    crash_at(daemon, "start.config", lambda: op(
        daemon, "PUT", "/1.0/instances/base/state", {"action": "start"}))
    consistent(daemon)
    crash_at(daemon, "start.supervisor", lambda: op(
        daemon, "PUT", "/1.0/instances/base/state", {"action": "start"}))
    consistent(daemon)  # started: its supervisor does not depend on the daemon
    assert daemon.api("GET", "/1.0/instances/base")["metadata"]["status"] == "Running"
    crash_at(daemon, "stop.stopped", lambda: op(
        daemon, "PUT", "/1.0/instances/base/state", {"action": "stop", "force": True}))
    assert daemon.api("GET", "/1.0/instances/base")["metadata"]["status"] == "Stopped"
    consistent(daemon)

    for point in ("delete.volume",):  # the volume gone, the record not yet
        daemon.cli("copy", "base", "gone")
        crash_at(daemon, point, lambda: op(daemon, "DELETE", "/1.0/instances/gone"))
        assert names(daemon) == ["base"], point
        consistent(daemon)
    works(daemon, "base")

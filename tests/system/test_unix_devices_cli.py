"""A host device node for a running container, through the CLI and a real daemon: add a
unix-char device live, use it inside as the user it is given to, keep it across a
restart, remove it; a node the container was not given stays unusable; bad devices are
one-line errors. Harmless nodes only: char 1:3 (/dev/null) under another name, and char
60:1 (a major reserved for local use, no driver) that the access list must refuse."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

pytestmark = [pytest.mark.kernel, pytest.mark.system]


def test_unix_char_live(daemon, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    os.mknod(tmp_path / "sink", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    share = tmp_path / "share"
    share.mkdir()
    os.mknod(share / "local1", stat.S_IFCHR, os.makedev(60, 1))
    os.chmod(share / "local1", 0o666)
    daemon.cli("launch", "debian", "dev1")
    daemon.cli("config", "device", "add", "dev1", "share", "disk", f"source={share}",
               "path=/mnt/share")
    out = daemon.cli("config", "device", "add", "dev1", "sink", "unix-char",
                     f"source={tmp_path / 'sink'}", "path=/dev/sink", "uid=1000", "gid=1000",
                     "mode=0600").stdout
    assert out.strip() == "Device sink added to dev1"
    run = daemon.cli("exec", "dev1", "--", "stat", "-c", "%t:%T %u:%g %a", "/dev/sink").stdout
    assert run.strip() == "1:3 1000:1000 600"
    daemon.cli("exec", "dev1", "--", "setpriv", "--reuid", "1000", "--regid", "1000",
               "--clear-groups", "sh", "-c", "echo x > /dev/sink")
    refused = daemon.cli("exec", "dev1", "--", "dd", "if=/mnt/share/local1", "of=/dev/null",
                         "count=0", "status=none", check=False)
    assert refused.returncode != 0 and "Operation not permitted" in refused.stderr
    daemon.cli("restart", "dev1")
    run = daemon.cli("exec", "dev1", "--", "stat", "-c", "%u:%g %a", "/dev/sink").stdout
    assert run.strip() == "1000:1000 600"
    daemon.cli("config", "device", "remove", "dev1", "sink")
    gone = daemon.cli("exec", "dev1", "--", "test", "-e", "/dev/sink", check=False)
    assert gone.returncode == 1


@pytest.mark.parametrize("keys,message", [
    (("unix-char", "path=/dev/x", "major=10"), "'major' and 'minor' go together"),
    (("unix-char", "source=/nonexistent/node"), "Missing source path '/nonexistent/node'"),
    (("unix-block", "source=/dev/null"), "/dev/null is not a block device"),
    (("unix-char", "path=/dev/null", "mode=999"), "octal file mode"),
    (("gpu", "gputype=mig"), "gputype 'mig' is not supported"),
])
def test_bad_device_is_one_line(daemon, keys, message) -> None:  # type: ignore[no-untyped-def]
    daemon.cli("init", "debian", "w2")
    proc = daemon.cli("config", "device", "add", "w2", "bad", *keys, check=False)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], lines
    assert "bad" not in daemon.cli("config", "device", "list", "w2").stdout

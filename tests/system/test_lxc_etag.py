"""LXD's `lxc` client (5.0) edits objects as GET, then PUT with the GET's ETag in If-Match:
its `config set`, `profile set`, `storage set` and `storage volume set` go through lxmgr's
ETag check (lxmgr/daemon/etag.py) and a stale ETag is the 412 LXD answers. Skipped when lxc
is not installed; no container boots."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

pytestmark = [pytest.mark.system,
              pytest.mark.skipif(shutil.which("lxc") is None, reason="lxc is not installed")]


def test_lxc_edits_carry_the_etag(daemon, tmp_path) -> None:  # type: ignore[no-untyped-def]
    conf = tmp_path / "lxdconf"
    conf.mkdir()
    env = {**os.environ, "LXD_CONF": str(conf)}

    def lxc(*args: str) -> str:
        proc = subprocess.run(["lxc", *args], env=env, capture_output=True, text=True,
                              timeout=120, stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, f"lxc {' '.join(args)}: {proc.stderr.strip()}"
        return proc.stdout

    lxc("remote", "add", "lxm", f"unix://{daemon.socket}")
    lxc("init", "lxm:debian", "lxm:et1")
    lxc("config", "set", "lxm:et1", "user.k", "v1")
    assert lxc("config", "get", "lxm:et1", "user.k").strip() == "v1"
    lxc("profile", "create", "lxm:etp")
    lxc("profile", "set", "lxm:etp", "user.k", "v2")
    assert lxc("profile", "get", "lxm:etp", "user.k").strip() == "v2"
    lxc("storage", "volume", "create", "lxm:default", "etv")
    lxc("storage", "volume", "set", "lxm:default", "etv", "user.k", "v3")
    assert lxc("storage", "volume", "get", "lxm:default", "etv", "user.k").strip() == "v3"
    stale = subprocess.run(["curl", "-s", "--unix-socket", daemon.socket, "-X", "PATCH",
                            "-H", 'If-Match: "stale"', "-d", '{"config": {"user.k": "x"}}',
                            "http://lxd/1.0/profiles/etp"], capture_output=True, text=True,
                           timeout=30)
    assert '"error_code":412' in stale.stdout.replace(" ", ""), stale.stdout
    assert lxc("profile", "get", "lxm:etp", "user.k").strip() == "v2"
    lxc("storage", "volume", "delete", "lxm:default", "etv")
    lxc("profile", "delete", "lxm:etp")
    lxc("delete", "lxm:et1")

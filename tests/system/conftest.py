"""A real lxmgrd (subprocess) on a temp LXMGR_DIR and its own cgroup base, and the real
`lxmgr` CLI talking to it: the launcher .ci/setup installs (lxmgr.cli.launcher: Python
without site, the click-free fast path, click for the rest), written into the temp dir.
Everything is removed afterwards, even when a test fails."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lxmgr.cli import launcher
from tests.image_cache import cached_debian_image
from tests.private_state import link_cached_image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Daemon:
    """One lxmgrd process and helpers to drive it through the CLI."""

    def __init__(self, root: str, cgroup_base: str) -> None:
        self.root = root
        self.socket = f"{root}/unix.socket"
        self.env = {**os.environ, "LXMGR_DIR": root, "LXMGR_CGROUP_BASE": cgroup_base,
                    "LXMGR_DEFAULT_NETWORK": "none",
                    # The CLI's own config (remotes, current project) private to the test.
                    "LXMGR_CONF": f"{root}/client-conf",
                    "PYTHONPATH": ROOT, "COLUMNS": "200"}
        self.proc: subprocess.Popen[bytes] | None = None
        self.launcher = str(launcher.write(Path(root) / "lxmgr"))
        self.log = open(f"{root}/lxmgrd-test.log", "ab")  # noqa: SIM115 - closed in stop()

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "lxmgr.daemon"], env=self.env,
                                     stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=self.log, cwd=ROOT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = Path(self.root, "lxmgrd-test.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"lxmgrd exited with {self.proc.returncode}:\n{tail}")
            try:
                if self.api("GET", "/1.0", check=False) is not None:
                    return
            except ConnectionResetError:
                pass  # it exited with our request in its backlog: the poll above says why
            time.sleep(0.05)
        raise RuntimeError("lxmgrd did not answer within 30 s")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)
        self.proc = None

    def api(self, method: str, path: str, body: Any = None, check: bool = True) -> Any:
        """One request over the unix socket with curl-free stdlib http.client."""
        import http.client
        import socket

        class Conn(http.client.HTTPConnection):
            def connect(self) -> None:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.settimeout(120)
                self.sock.connect(self.host_socket)

        conn = Conn("unix.socket")
        conn.host_socket = self.socket  # type: ignore[attr-defined]
        try:
            data = json.dumps(body).encode() if body is not None else None
            conn.request(method, urllib.parse.quote(path, safe="/?=&;"), body=data)
            resp = json.loads(conn.getresponse().read())
        except (ConnectionRefusedError, FileNotFoundError):
            if check:
                raise
            return None
        finally:
            conn.close()
        if check and resp["type"] == "error":
            raise AssertionError(resp["error"])
        return resp

    @property
    def cli_argv(self) -> list[str]:
        return [self.launcher]

    def cli(self, *args: str, input: str | None = None, check: bool = True,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([*self.cli_argv, *args], env={**self.env, **(env or {})},
                              input=input, capture_output=True, text=True, timeout=180,
                              cwd=ROOT)
        if check and proc.returncode != 0:
            raise AssertionError(f"lxmgr {' '.join(args)} exited {proc.returncode}: "
                                 f"{proc.stderr.strip()}")
        return proc

    def cleanup(self) -> None:
        if self.proc is None:
            self.start()
        for url in self.api("GET", "/1.0/instances")["metadata"]:
            name = url.rsplit("/", 1)[-1]
            resp = self.api("DELETE", f"/1.0/instances/{name}?force=1", check=False)
            if resp and resp.get("operation"):
                self.api("GET", f"{resp['operation']}/wait?timeout=60", check=False)
        # Networks a failed test left behind: profiles first (they may use them).
        for url in self.api("GET", "/1.0/profiles")["metadata"]:
            if not url.endswith("/default"):
                self.api("DELETE", url, check=False)
        self.api("PUT", "/1.0/profiles/default", {"config": {}, "devices": {
            "root": {"type": "disk", "path": "/", "pool": "default"}}}, check=False)
        for url in self.api("GET", "/1.0/networks")["metadata"]:
            self.api("DELETE", url, check=False)
        for url in self.api("GET", "/1.0/storage-pools")["metadata"]:  # loop files, mounts
            listing = self.api("GET", f"{url}/volumes/custom", check=False) or {}
            for vol in listing.get("metadata") or []:  # a pool holding volumes stays
                if "/snapshots/" not in vol:
                    self.api("DELETE", vol, check=False)
            if not url.endswith("/default"):
                self.api("DELETE", url, check=False)
        self.stop()
        self.log.close()


@contextlib.contextmanager
def private_state(prefix: str = "lxms", *, link_image: bool = True) -> Iterator[tuple[str, str]]:
    """(state dir, cgroup base) of one test: /tmp/PREFIX-TAG, holding the cached debian image
    (a link: imported/pulled/published images stay private to the test) unless link_image
    is false (then not even made: the test's commands make it), and lxmgr-test-TAG; both are
    removed afterwards, even when the test fails."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    tag = uuid.uuid4().hex[:8]
    root, base = f"/tmp/{prefix}-{tag}", f"lxmgr-test-{tag}"
    if link_image:
        cached_debian_image()
        link_cached_image(root)
    try:
        yield root, base
    finally:
        _stop_lxcfs(root)
        _remove_cgroup_base(base)
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def running_daemon(prefix: str = "lxms", *, link_image: bool = True,
                   env: dict[str, str] | None = None) -> Iterator[Daemon]:
    """A started Daemon on private_state(); everything it made is deleted afterwards."""
    with private_state(prefix, link_image=link_image) as (root, base):
        os.makedirs(root, exist_ok=True)
        d = Daemon(root, base)
        d.env.update(env or {})
        try:
            d.start()
            yield d
        finally:
            d.cleanup()


@pytest.fixture
def daemon() -> Iterator[Daemon]:
    with running_daemon() as d:
        yield d


def https_port(daemon: Daemon) -> int:
    """Make the daemon listen over HTTPS on a free local port (core.https_address)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    daemon.api("PATCH", "/1.0", {"config": {"core.https_address": f"127.0.0.1:{port}"}})
    return port


def _stop_lxcfs(root: str) -> None:
    """The lxcfs a test daemon told to run its own (LXMGR_LXCFS unset) started in root, should
    it still run: a daemon stops it at exit only when no instance runs, a killed one never.
    Only a process whose command line names root's mount point is signalled."""
    from lxmgr.instances import lxcfs

    state = Path(root)
    try:
        lxcfs.Lxcfs(state / "lxcfs", state / "run" / "lxcfs.pid",
                    state / "logs" / "lxcfs.log").stop()
    except Exception as err:  # noqa: BLE001
        print(f"cleanup of the lxcfs in {root} failed: {err}")


def _remove_cgroup_base(base: str) -> None:
    from lxmgr.cgroups import base as cgroup_base
    from lxmgr.cgroups.detect import detect

    try:
        cgroup_base.load(detect(), base=base).delete_base()
    except Exception as err:  # noqa: BLE001
        print(f"cleanup of cgroup base {base} failed: {err}")

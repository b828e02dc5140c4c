"""Real image builds with debootstrap from the Debian archive (kernel + system tiers)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from lxmgr import paths
from lxmgr.errors import Cancelled
from lxmgr.images import debootstrap
from lxmgr.images.fingerprint import fingerprint_tree
from lxmgr.images.store import ImageStore
from tests.image_cache import cache_store, cached_debian_image
from tests.local_servers import silent_port

pytestmark = [pytest.mark.kernel, pytest.mark.system, pytest.mark.timeout(600)]


@pytest.fixture(autouse=True)
def needs_debootstrap() -> None:
    if not shutil.which("debootstrap"):
        pytest.skip("debootstrap is not installed")


def test_cached_image_is_complete() -> None:
    image = cached_debian_image()
    assert (image.os, image.release, image.architecture) == ("debian", "12", "amd64")
    assert {"debian", "debian/12"} <= set(image.aliases)
    assert image.created_at > 0 and image.size > 50_000_000
    assert len(image.recipe_sha256) == 64
    rootfs = image.rootfs
    assert (rootfs / "usr/lib/systemd/systemd").exists()
    assert (rootfs / "etc/machine-id").read_text() == ""
    assert (rootfs / "etc/systemd/system/sys-kernel-debug.mount").readlink() == Path("/dev/null")
    assert (rootfs / "etc/systemd/system/multi-user.target.wants/systemd-networkd.service"
            ).is_symlink()
    assert "DHCP=yes" in (rootfs / "etc/systemd/network/eth0.network").read_text()
    sources = (rootfs / "etc/apt/sources.list").read_text()  # as Debian's official images
    assert "deb http://deb.debian.org/debian bookworm-updates main" in sources
    assert "deb http://security.debian.org/debian-security bookworm-security main" in sources
    assert not list((rootfs / "var/cache/apt/archives").glob("*.deb"))
    assert cache_store().get("debian/12").fingerprint == image.fingerprint


def test_second_build_is_a_noop() -> None:
    first = cached_debian_image()
    started = time.monotonic()
    events = []
    again = debootstrap.build("debian", events.append, store=cache_store())
    assert time.monotonic() - started < 2
    assert again.fingerprint == first.fingerprint
    assert [e.stage for e in events] == ["done"]


def test_fingerprint_matches_tree() -> None:
    image = cached_debian_image()
    started = time.monotonic()
    assert fingerprint_tree(image.rootfs).fingerprint == image.fingerprint
    assert time.monotonic() - started < 30


def _recipe(tmp_path: Path, mirror: str) -> Path:
    recipe = tmp_path / "broken.yaml"
    recipe.write_text("name: broken\nos: debian\nrelease: '12'\nsuite: bookworm\n"
                      f"mirror: {mirror}\npackages: [systemd]\n")
    return recipe


def test_failed_build_leaves_nothing_and_names_its_log(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    store.root.mkdir()
    stale = store.root / ".build-broken-x1y2" / "rootfs"  # a killed build's leftovers
    stale.mkdir(parents=True)
    events = []
    with pytest.raises(debootstrap.ImageBuildError) as caught:
        debootstrap.build(_recipe(tmp_path, "http://127.0.0.1:9/debian"), events.append,
                          store=store)
    log_path = tmp_path / "logs" / "image-build-broken.log"
    assert str(caught.value).startswith("Failed to build image 'broken': debootstrap exited "
                                        "with status 1: E: ")
    assert str(caught.value).endswith(f"(full log: {log_path})")
    assert "\n" not in str(caught.value)
    assert "127.0.0.1:9" in log_path.read_text()
    assert list(store.root.iterdir()) == []
    assert _no_mounts_under(tmp_path)


def test_cancelled_build_stops_debootstrap_and_leaves_nothing(tmp_path: Path) -> None:
    """A mirror that never answers: debootstrap waits quietly until the cancel event."""
    with silent_port() as port:
        cancel = threading.Event()
        store = ImageStore(tmp_path / "images")
        timer = threading.Timer(2.0, cancel.set)
        timer.start()
        started = time.monotonic()
        try:
            with pytest.raises(Cancelled):
                debootstrap.build(_recipe(tmp_path, f"http://127.0.0.1:{port}/debian"),
                                  store=store, cancel=cancel)
        finally:
            timer.cancel()
        assert time.monotonic() - started < 30
    assert list(store.root.iterdir()) == []
    assert _no_mounts_under(tmp_path)
    assert not [p for p in psutil.process_iter(["cmdline"])
                if str(tmp_path) in " ".join(p.info["cmdline"] or [])]


def test_interrupted_build_leaves_nothing(tmp_path: Path) -> None:
    """KeyboardInterrupt from the progress callback mid-download: group killed, dir removed."""
    store = ImageStore(tmp_path / "images")

    def interrupt(event: object) -> None:
        if getattr(event, "stage", "") == "download":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        debootstrap.build("debian", interrupt, store=store)
    assert list(store.root.iterdir()) == []
    assert _no_mounts_under(tmp_path)


def test_sigterm_during_build_leaves_nothing(tmp_path: Path) -> None:
    """`python -m lxmgr.images build` gets SIGTERM mid-download: exits, store stays empty."""
    env = {**os.environ, "LXMGR_DIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "lxmgr.images", "build", "debian"],
                            cwd=paths.SOURCE_ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "download" in line:
                proc.send_signal(signal.SIGTERM)
                break
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()
    assert list((tmp_path / "images").iterdir()) == []
    assert _no_mounts_under(tmp_path)


def _no_mounts_under(path: Path) -> bool:
    with open("/proc/self/mountinfo") as f:
        return not any(str(path) in line for line in f)

"""Images through the CLI against a real lxmgrd: launch from a local simplestreams server by
remote alias (download, verify, import, templates), export and import back in LXD's format,
launch from the imported image. The server runs on 127.0.0.1 and serves the cached debian
image as LXD's split format (lxd.tar.xz + rootfs.squashfs), built once into the cache."""

from __future__ import annotations

import fcntl
import io
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.image_cache import CACHE_DIR, cached_debian_image
from tests.simplestreams_server import (
    SimpleStreamsServer,
    _add_product,
    _items,
    metadata_tarball,
    sha256_file,
)

pytestmark = [pytest.mark.kernel, pytest.mark.system]

SERIAL = "20261125_00:00"
REL_DIR = f"images/debian/bookworm/amd64/default/{SERIAL}"
TEMPLATES = {
    "/etc/hostname": {"when": ["create", "copy"], "template": "hostname.tpl"},
    "/etc/lxmgr-template": {"when": ["create", "start"], "template": "marker.tpl"},
}


def _metadata_tarball() -> bytes:
    return metadata_tarball(
        "Debian", "bookworm", "amd64", SERIAL, templates=TEMPLATES, creation_date=1764028800,
        description="Debian bookworm amd64 (test stream)",
        template_files={"hostname.tpl": b"{{ container.name }}\n",
                        "marker.tpl": b'{{ trigger }} {{ instance.name }} '
                                      b'{{ config_get("user.motd", "none") }}\n'})


def _stream_tree() -> Path:
    """The streams tree for the cached image (owners kept: no -all-root), built once."""
    image = cached_debian_image()
    tree = CACHE_DIR / "streams" / image.fingerprint
    with open(CACHE_DIR / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (tree / "streams" / "v1" / "index.json").exists():
            out = tree / REL_DIR
            out.mkdir(parents=True, exist_ok=True)
            (out / "lxd.tar.xz").write_bytes(_metadata_tarball())
            subprocess.run(["mksquashfs", str(image.rootfs), str(out / "rootfs.squashfs"),
                            "-noappend", "-quiet", "-no-progress", "-comp", "gzip",
                            "-wildcards", "-e", "dev/*"],  # image servers ship no devices
                           check=True, capture_output=True, timeout=300)
            paths = {"lxd.tar.xz": f"{REL_DIR}/lxd.tar.xz",
                     "squashfs": f"{REL_DIR}/rootfs.squashfs"}
            fps = {"squashfs": sha256_file(out / "lxd.tar.xz", out / "rootfs.squashfs")}
            _add_product(tree, "debian:bookworm:amd64:default", {
                "aliases": "debian/12,debian/bookworm", "arch": "amd64", "os": "Debian",
                "release": "bookworm", "release_title": "12", "variant": "default",
                "versions": {SERIAL: {"items": _items(tree, paths, fps)}}}, SERIAL)
    return tree


@pytest.fixture
def stream(daemon, tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A local image server, known to the daemon's CLI as remote `testsrv`."""
    daemon.env["LXMGR_CONF"] = str(tmp_path / "conf")
    server = SimpleStreamsServer(_stream_tree())
    with server.threaded():
        daemon.cli("remote", "add", "testsrv", server.url)
        yield server.url


def sh(daemon, name: str, script: str) -> str:  # type: ignore[no-untyped-def]
    return daemon.cli("exec", name, "-T", "--", "sh", "-c", script).stdout


def test_launch_from_remote_export_import(daemon, stream, tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert "testsrv" in daemon.cli("remote", "list").stdout
    listing = daemon.cli("image", "list", "testsrv:").stdout
    assert "debian/12" in listing
    daemon.cli("launch", "testsrv:debian/12", "rm1", "-c", "user.motd=hello")
    assert sh(daemon, "rm1", "hostname; cat /etc/lxmgr-template") == "rm1\nstart rm1 hello\n"
    images = daemon.api("GET", "/1.0/images?recursion=1")["metadata"]
    pulled = [i for i in images if i["properties"].get("description", "").endswith(
        "(test stream)")]
    assert len(pulled) == 1
    fingerprint = pulled[0]["fingerprint"]
    daemon.cli("launch", "testsrv:debian/bookworm", "rm2")  # cached: no second download
    assert sh(daemon, "rm2", "hostname") == "rm2\n"
    # The server's split image (metadata + squashfs) comes back as the files it was, as LXD.
    out = daemon.cli("image", "export", fingerprint, str(tmp_path)).stdout
    exported = [Path(p) for p in out.strip().removeprefix("Image exported to ").split(" and ")]
    assert [p.name for p in exported] == [f"meta-{fingerprint}.tar.xz", f"{fingerprint}.squashfs"]
    assert all(p.is_file() for p in exported)
    daemon.cli("delete", "-f", "rm1", "rm2")
    daemon.cli("image", "delete", fingerprint)
    daemon.cli("image", "import", *map(str, exported), "--alias", "imported")
    daemon.cli("launch", "imported", "im1")
    assert sh(daemon, "im1", "hostname; cat /etc/lxmgr-template") == "im1\nstart im1 none\n"
    bad = daemon.cli("launch", "testsrv:nosuch/1", "x1", check=False)
    assert bad.returncode == 1 and "nosuch/1" in bad.stderr and "Traceback" not in bad.stderr
    daemon.cli("delete", "-f", "im1")


def test_image_copy_and_bad_uploads(daemon, stream, tmp_path) -> None:  # type: ignore[no-untyped-def]
    daemon.cli("image", "copy", "testsrv:debian/12", "local:", "--alias", "d12")
    info = daemon.cli("image", "info", "d12").stdout
    assert "d12" in info
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(b"not an image at all")
    bad = daemon.cli("image", "import", str(garbage), check=False)
    assert bad.returncode == 1 and "Error:" in bad.stderr and "Traceback" not in bad.stderr
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        info_ = tarfile.TarInfo("rootfs/../../etc/evil")
        tar.addfile(info_, io.BytesIO(b""))
    bad = daemon.cli("image", "import", str(evil), check=False)
    assert bad.returncode == 1 and "'..'" in bad.stderr
    names = {a["name"] for i in daemon.api("GET", "/1.0/images?recursion=1")["metadata"]
             for a in i["aliases"]}
    assert "d12" in names

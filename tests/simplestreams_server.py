"""A simplestreams image server on 127.0.0.1 for tests: build_tree() makes LXD-format images
(lxd.tar.xz metadata + root.tar.xz and/or rootfs.squashfs) from a small rootfs directory with
a streams/v1 index and products file, and SimpleStreamsServer serves that tree over HTTP with
Range support and knobs to misbehave (corrupt a file, drop the connection mid-file, send more
bytes than announced, ignore Range).

Never touches the network beyond loopback. Use `async with SimpleStreamsServer(tree) as srv`
in async tests, or `with SimpleStreamsServer(tree).threaded() as srv` from synchronous code
(the server then runs its own loop in a thread); both stop the server on exit, even on failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import re
import shutil
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

INDEX = "streams/v1/index.json"
PRODUCTS = "streams/v1/images.json"
LXD_ARCH = {"amd64": "x86_64", "arm64": "aarch64"}
_RANGE_RE = re.compile(r"^bytes=(\d+)-(\d*)$")


@dataclass
class BuiltImage:
    """What build_tree wrote: relative paths by ftype and fingerprints by rootfs ftype."""

    product: str
    serial: str
    paths: dict[str, str]
    fingerprints: dict[str, str]
    tree: Path

    def file(self, ftype: str) -> Path:
        return self.tree / self.paths[ftype]


def sha256_file(*paths: Path) -> str:
    """sha256 over the files' bytes in order: LXD's combined fingerprint for two files."""
    h = hashlib.sha256()
    for path in paths:
        h.update(path.read_bytes())
    return h.hexdigest()


def build_tree(tree: Path, rootfs: Path, *, os_name: str = "Debian", release: str = "bookworm",
               arch: str = "amd64", variant: str = "default", serial: str = "20240601_05:24",
               aliases: str = "debian/12,debian/bookworm",
               formats: tuple[str, ...] = ("squashfs", "root.tar.xz")) -> BuiltImage:
    """Add one product version to the tree's products file (created on first use)."""
    product = f"{os_name.lower()}:{release}:{arch}:{variant}"
    rel_dir = f"images/{os_name.lower()}/{release}/{arch}/{variant}/{serial}"
    out = tree / rel_dir
    out.mkdir(parents=True, exist_ok=True)
    (out / "lxd.tar.xz").write_bytes(metadata_tarball(os_name, release, arch, serial))
    names = {"lxd.tar.xz": "lxd.tar.xz"}
    if "root.tar.xz" in formats:
        (out / "root.tar.xz").write_bytes(rootfs_tarball(rootfs))
        names["root.tar.xz"] = "root.tar.xz"
    if "squashfs" in formats:
        make_squashfs(rootfs, out / "rootfs.squashfs")
        names["squashfs"] = "rootfs.squashfs"
    paths = {ftype: f"{rel_dir}/{name}" for ftype, name in names.items()}
    fingerprints = {ftype: sha256_file(out / "lxd.tar.xz", out / name)
                    for ftype, name in names.items() if ftype != "lxd.tar.xz"}
    items = _items(tree, paths, fingerprints)
    entry = {"aliases": aliases, "arch": arch, "os": os_name, "release": release,
             "release_title": release, "variant": variant,
             "versions": {serial: {"items": items}}}
    _add_product(tree, product, entry, serial)
    return BuiltImage(product, serial, paths, fingerprints, tree)


def _items(tree: Path, paths: dict[str, str], fps: dict[str, str]) -> dict[str, Any]:
    items: dict[str, Any] = {}
    for ftype, rel in paths.items():
        data = (tree / rel).read_bytes()
        items[Path(rel).name] = {"ftype": ftype, "path": rel, "size": len(data),
                                 "sha256": hashlib.sha256(data).hexdigest()}
    meta = items["lxd.tar.xz"]
    if "squashfs" in fps:
        meta["combined_squashfs_sha256"] = fps["squashfs"]
    if "root.tar.xz" in fps:
        meta["combined_sha256"] = meta["combined_rootxz_sha256"] = fps["root.tar.xz"]
    return items


def _add_product(tree: Path, product: str, entry: dict[str, Any], serial: str) -> None:
    products_path = tree / PRODUCTS
    data: dict[str, Any] = {"content_id": "images", "datatype": "image-downloads",
                            "format": "products:1.0", "products": {}}
    if products_path.exists():
        data = json.loads(products_path.read_text())
    old = data["products"].get(product)
    if old is not None:  # another version of the same product
        old["versions"].update(entry["versions"])
        entry = old
    data["products"][product] = entry
    products_path.parent.mkdir(parents=True, exist_ok=True)
    products_path.write_text(json.dumps(data, indent=1))
    index = {"format": "index:1.0", "index": {"images": {
        "datatype": "image-downloads", "format": "products:1.0", "path": PRODUCTS,
        "products": sorted(data["products"])}}}
    (tree / INDEX).write_text(json.dumps(index, indent=1))


HOSTNAME_TEMPLATE = {"/etc/hostname": {"when": ["create", "copy"], "template": "hostname.tpl"}}


def metadata_tarball(os_name: str, release: str, arch: str, serial: str, *,
                     templates: dict[str, Any] | None = None,
                     template_files: dict[str, bytes] | None = None,
                     description: str = "", creation_date: int = 1717219440) -> bytes:
    """LXD's metadata tarball: metadata.yaml and its templates (default: a hostname one) in
    an xz tar."""
    metadata = {
        "architecture": LXD_ARCH.get(arch, arch),
        "creation_date": creation_date,
        "properties": {"os": os_name, "release": release, "architecture": arch,
                       "description": description or f"{os_name} {release} {arch} ({serial})"},
        "templates": HOSTNAME_TEMPLATE if templates is None else templates,
    }
    files = {"metadata.yaml": yaml.safe_dump(metadata).encode()}
    files.update({f"templates/{name}": data for name, data in (
        template_files or {"hostname.tpl": b"{{ container.name }}\n"}).items()})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tar:
        dirinfo = tarfile.TarInfo("templates")
        dirinfo.type, dirinfo.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(dirinfo)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def rootfs_tarball(rootfs: Path) -> bytes:
    """The rootfs as LXD's root.tar.xz: entries relative to '.', owned by root."""
    def as_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tar:
        tar.add(rootfs, arcname=".", filter=as_root)
    return buf.getvalue()


def make_squashfs(rootfs: Path, target: Path) -> None:
    """rootfs.squashfs with mksquashfs (all files owned by root, as image servers ship)."""
    if shutil.which("mksquashfs") is None:
        raise RuntimeError("mksquashfs is not installed (apt-get install squashfs-tools)")
    subprocess.run(["mksquashfs", str(rootfs), str(target), "-noappend", "-all-root",
                    "-quiet", "-no-progress"], check=True, capture_output=True, timeout=60)


@dataclass
class Misbehaviour:
    """Knobs, by path relative to the tree. drop: bytes to send before cutting the connection,
    for as many requests as drop_times says (default once); extra: garbage bytes appended;
    status: an HTTP error status answered instead of the file."""

    corrupt: set[str] = field(default_factory=set)
    drop: dict[str, int] = field(default_factory=dict)
    drop_times: dict[str, int] = field(default_factory=dict)
    extra: dict[str, int] = field(default_factory=dict)
    status: dict[str, int] = field(default_factory=dict)
    ranges: bool = True


class SimpleStreamsServer:
    """Serves tree on http://127.0.0.1:<free port>; requests lists (path, Range header)."""

    def __init__(self, tree: Path) -> None:
        self.tree = tree.resolve()
        self.knobs = Misbehaviour()
        self.requests: list[tuple[str, str | None]] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SimpleStreamsServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @contextlib.contextmanager
    def threaded(self) -> Iterator[SimpleStreamsServer]:
        """Run the server on its own loop in a thread, for synchronous tests."""
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="simplestreams-server",
                                  daemon=True)
        thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self.start(), loop).result(timeout=10)
            yield self
        finally:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self.stop(), loop).result(timeout=10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            loop.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        rel = request.match_info["path"]
        self.requests.append((rel, request.headers.get("Range")))
        path = (self.tree / rel).resolve()
        if not path.is_relative_to(self.tree) or not path.is_file():
            raise web.HTTPNotFound()
        if rel in self.knobs.status:
            return web.Response(status=self.knobs.status[rel])
        body = self._content(rel, path.read_bytes())
        status, start, headers = 200, 0, {}
        m = _RANGE_RE.match(request.headers.get("Range", ""))
        if m and self.knobs.ranges:
            start = int(m.group(1))
            if start >= len(body):
                raise web.HTTPRequestRangeNotSatisfiable(
                    headers={"Content-Range": f"bytes */{len(body)}"})
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(body) - 1}/{len(body)}"
        return await self._send(request, rel, body[start:], status, headers)

    def _content(self, rel: str, body: bytes) -> bytes:
        if rel in self.knobs.corrupt:
            middle = len(body) // 2
            body = body[:middle] + bytes([body[middle] ^ 0xFF]) + body[middle + 1:]
        return body + b"\0" * self.knobs.extra.get(rel, 0)

    async def _send(self, request: web.Request, rel: str, body: bytes, status: int,
                    headers: dict[str, str]) -> web.StreamResponse:
        cut = self.knobs.drop.get(rel)
        if cut is None or self.knobs.drop_times.get(rel, 1) <= 0:
            return web.Response(body=body, status=status, headers=headers)
        self.knobs.drop_times[rel] = self.knobs.drop_times.get(rel, 1) - 1
        headers["Content-Length"] = str(len(body))
        resp = web.StreamResponse(status=status, headers=headers)
        await resp.prepare(request)
        await resp.write(body[:cut])
        assert request.transport is not None
        request.transport.close()  # flushes what was written, then the body ends early
        return resp

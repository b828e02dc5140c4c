"""Simplestreams download against a local server (tests/simplestreams_server.py): products,
verified downloads into the cache, resume after a dropped connection, and corrupt, oversized
or mis-fingerprinted images refused with nothing left behind. Loopback only, no root."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from lxmgr.errors import InvalidConfig, LxmgrError, NotFound
from lxmgr.images import download
from lxmgr.images.download import DownloadProgress, fetch_image, fetch_products
from lxmgr.images.simplestreams import StreamImage, find_image
from tests.simplestreams_server import BuiltImage, SimpleStreamsServer, build_tree

RANDOM_BYTES = 1_500_000  # incompressible, so the rootfs files span several chunks


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> BuiltImage:
    rootfs = tmp_path_factory.mktemp("rootfs")
    (rootfs / "etc").mkdir()
    (rootfs / "etc/os-release").write_text('ID=debian\nVERSION_ID="12"\n')
    (rootfs / "sbin").mkdir()
    (rootfs / "sbin/init").write_bytes(os.urandom(RANDOM_BYTES))
    (rootfs / "sbin/init").chmod(0o755)
    tree = tmp_path_factory.mktemp("tree")
    return build_tree(tree, rootfs)


@pytest.fixture
async def server(built: BuiltImage) -> AsyncIterator[SimpleStreamsServer]:
    async with SimpleStreamsServer(built.tree) as srv:
        yield srv


async def image_of(server: SimpleStreamsServer, **kwargs: tuple[str, ...]) -> StreamImage:
    return find_image(await fetch_products(server.url, **kwargs), "debian/12", "x86_64")


def file_requests(server: SimpleStreamsServer) -> list[tuple[str, str | None]]:
    return [r for r in server.requests if r[0].startswith("images/")]


def left_in(cache: Path) -> list[str]:
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*"))


async def test_products_list_the_image(server: SimpleStreamsServer, built: BuiltImage) -> None:
    images = await fetch_products(server.url)
    [image] = images
    assert image.fingerprint == built.fingerprints["squashfs"]
    assert image.os == "Debian" and image.release == "bookworm"
    assert {"debian/12", "debian/bookworm", "debian/12/amd64"} <= set(image.aliases)
    assert [r[0] for r in server.requests] == ["streams/v1/index.json",
                                               "streams/v1/images.json"]


async def test_download_verifies_and_reports_progress(server: SimpleStreamsServer,
                                                      built: BuiltImage, tmp_path: Path) -> None:
    image = await image_of(server)
    events: list[DownloadProgress] = []
    paths = await fetch_image(server.url, image, tmp_path, progress=events.append)
    assert [p.name for p in paths] == ["lxd.tar.xz", "rootfs.squashfs"]
    assert paths[0].read_bytes() == built.file("lxd.tar.xz").read_bytes()
    assert paths[1].read_bytes() == built.file("squashfs").read_bytes()
    assert left_in(tmp_path) == [image.fingerprint, f"{image.fingerprint}/lxd.tar.xz",
                                 f"{image.fingerprint}/rootfs.squashfs"]
    assert [e.stage for e in events][0] == "metadata" and events[-1].stage == "rootfs"
    assert events[-1].done == events[-1].total == image.files[1].size
    assert re.fullmatch(r"rootfs: 100% \(\d+(\.\d\d[kMG])?B/s\)", events[-1].text)


async def test_root_tar_xz_and_combined_sha256(server: SimpleStreamsServer, built: BuiltImage,
                                               tmp_path: Path) -> None:
    image = await image_of(server, rootfs_preference=("root.tar.xz",))
    assert image.fingerprint == built.fingerprints["root.tar.xz"]
    async with aiohttp.ClientSession() as session:
        paths = await fetch_image(server.url, image, tmp_path, session=session)
    assert [p.name for p in paths] == ["lxd.tar.xz", "root.tar.xz"]


async def test_second_fetch_uses_the_cache(server: SimpleStreamsServer, tmp_path: Path) -> None:
    image = await image_of(server)
    first = await fetch_image(server.url, image, tmp_path)
    server.requests.clear()
    assert await fetch_image(server.url, image, tmp_path) == first
    assert file_requests(server) == []


async def test_resume_after_dropped_connection(server: SimpleStreamsServer, built: BuiltImage,
                                               tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download, "RETRY_DELAY", 0.01)
    rootfs = built.paths["squashfs"]
    server.knobs.drop[rootfs] = 600_000
    image = await image_of(server)
    paths = await fetch_image(server.url, image, tmp_path)
    assert paths[1].read_bytes() == built.file("squashfs").read_bytes()
    ranges = [rng for path, rng in file_requests(server) if path == rootfs]
    assert ranges[0] is None and re.fullmatch(r"bytes=\d+-", ranges[1] or "")
    assert int(ranges[1][6:-1]) >= 500_000  # resumed near the cut, not from zero


async def test_resume_in_a_later_call(server: SimpleStreamsServer, built: BuiltImage,
                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download, "RETRY_DELAY", 0.01)
    rootfs = built.paths["squashfs"]
    server.knobs.drop[rootfs] = 400_000

    def server_goes_away(event: DownloadProgress) -> None:
        if event.stage == "rootfs" and event.done:
            server.knobs.status[rootfs] = 503

    image = await image_of(server)
    with pytest.raises(LxmgrError, match=f"Failed to download '.*{rootfs}': 503"):
        await fetch_image(server.url, image, tmp_path, progress=server_goes_away)
    part = tmp_path / image.fingerprint / "rootfs.squashfs.part"
    assert part.stat().st_size == 400_000
    server.knobs.status.clear()
    paths = await fetch_image(server.url, image, tmp_path)
    assert [rng for path, rng in file_requests(server) if path == rootfs][-1] == "bytes=400000-"
    assert paths[1].read_bytes() == built.file("squashfs").read_bytes()
    assert not part.exists()


async def test_server_ignoring_ranges_restarts(server: SimpleStreamsServer, built: BuiltImage,
                                               tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download, "RETRY_DELAY", 0.01)
    server.knobs.drop[built.paths["squashfs"]] = 600_000
    server.knobs.ranges = False
    image = await image_of(server)
    paths = await fetch_image(server.url, image, tmp_path)
    assert paths[1].read_bytes() == built.file("squashfs").read_bytes()


async def test_corrupt_file_is_refused_and_removed(server: SimpleStreamsServer,
                                                   built: BuiltImage, tmp_path: Path) -> None:
    server.knobs.corrupt.add(built.paths["squashfs"])
    image = await image_of(server)
    with pytest.raises(InvalidConfig, match=f"Checksum mismatch for '{built.paths['squashfs']}'"):
        await fetch_image(server.url, image, tmp_path)
    assert left_in(tmp_path) == []


async def test_more_bytes_than_announced_are_refused(server: SimpleStreamsServer,
                                                     built: BuiltImage, tmp_path: Path) -> None:
    server.knobs.extra[built.paths["lxd.tar.xz"]] = 10
    image = await image_of(server)
    with pytest.raises(InvalidConfig, match="sends more than the .* bytes it announced"):
        await fetch_image(server.url, image, tmp_path)
    assert left_in(tmp_path) == []


async def test_combined_fingerprint_is_checked(server: SimpleStreamsServer, tmp_path: Path) -> None:
    image = await image_of(server)
    forged = dataclasses.replace(image, fingerprint="ab" * 32)
    with pytest.raises(InvalidConfig, match="Fingerprint mismatch for image 'debian:bookworm"):
        await fetch_image(server.url, forged, tmp_path)
    assert left_in(tmp_path) == []


async def test_missing_index_and_oversized_products(server: SimpleStreamsServer, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(NotFound, match="404"):
        await fetch_products(server.url + "/nowhere")
    monkeypatch.setattr(download, "MAX_PRODUCTS_BYTES", 100)
    with pytest.raises(InvalidConfig, match="larger than 100 bytes"):
        await fetch_products(server.url)


def test_threaded_server_from_sync_code(built: BuiltImage) -> None:
    with SimpleStreamsServer(built.tree).threaded() as srv:
        images = asyncio.run(fetch_products(srv.url))
    assert [i.fingerprint for i in images] == [built.fingerprints["squashfs"]]


async def test_vanished_file_leaves_nothing(server: SimpleStreamsServer, built: BuiltImage,
                                            tmp_path: Path) -> None:
    server.knobs.status[built.paths["squashfs"]] = 404
    image = await image_of(server)
    with pytest.raises(NotFound, match="rootfs.squashfs': 404"):
        await fetch_image(server.url, image, tmp_path)
    assert left_in(tmp_path) == []
    with pytest.raises(InvalidConfig, match="Invalid image fingerprint"):
        await fetch_image(server.url, dataclasses.replace(image, fingerprint="../x"), tmp_path)


async def test_a_stopped_server_is_unreachable_in_one_line(built: BuiltImage,
                                                            tmp_path: Path) -> None:
    async with SimpleStreamsServer(built.tree) as srv:
        url, image = srv.url, await image_of(srv)
    expected = (f"Image server {url.removeprefix('http://')} is unreachable (Connection "
                "refused): without it, use a local recipe (debian, debian-dev), `lxmgr image "
                "import`, or a reachable remote")
    with pytest.raises(download.ServerUnreachable) as err:
        await fetch_products(url)
    assert str(err.value) == expected
    with pytest.raises(download.ServerUnreachable) as err:
        await fetch_image(url, image, tmp_path, retries=1)
    assert str(err.value) == expected

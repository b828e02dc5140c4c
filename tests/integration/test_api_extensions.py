"""API extensions proven here, in-process, where no other test shows them through the API:
image_compression_algorithm, api_filtering on images, container_backup's rename,
backup_compression_algorithm, container_full's backups, operation_metadata_entity_url,
snapshot_expiry_creation, instance_force_delete and resources. The instances are made from a
tiny uploaded image (stopped: nothing boots) except the one a forced delete must stop."""

from __future__ import annotations

import io
import lzma
import tarfile
from typing import Any

import pytest

from tests.integration.conftest import call, wait
from tests.integration.test_api import launch
from tests.integration.test_images_api import tiny_image

pytestmark = pytest.mark.kernel


async def op(api, method: str, path: str, body: Any = None, status: int = 202) -> dict:  # type: ignore[no-untyped-def]
    return await wait(api, await call(api, method, path, body, status=status))


async def tiny_instance(api, name: str) -> None:  # type: ignore[no-untyped-def]
    """A stopped instance of the tiny image (uploaded once per test as alias `tiny`)."""
    if not any(a["name"] == "tiny" for a in
               (await call(api, "GET", "/1.0/images/aliases?recursion=1"))["metadata"]):
        resp = await api.post("/1.0/images", data=tiny_image(), headers={
            "Content-Type": "application/octet-stream", "X-LXD-aliases": "tiny"})
        assert resp.status == 202
        await wait(api, await resp.json())
    await op(api, "POST", "/1.0/instances", {"name": name, "source": {"alias": "tiny"}})


async def download(api, path: str) -> bytes:  # type: ignore[no-untyped-def]
    resp = await api.get(path)
    assert resp.status == 200, await resp.text()
    return await resp.read()


def members(body: bytes) -> list[str]:
    return tarfile.open(fileobj=io.BytesIO(body)).getnames()


async def test_publish_compression_and_image_filter(api) -> None:  # type: ignore[no-untyped-def]
    await tiny_instance(api, "pub1")
    source = {"type": "instance", "name": "pub1"}
    bad = await call(api, "POST", "/1.0/images", {"source": source,
                                                  "compression_algorithm": "zstd"}, status=400)
    assert bad["error"] == "Unsupported compression algorithm 'zstd': use gzip, xz or none"
    done = await op(api, "POST", "/1.0/images", {"source": source,
                                                 "compression_algorithm": "xz"})
    fp = done["metadata"]["fingerprint"]
    body = await download(api, f"/1.0/images/{fp}/export")
    assert body.startswith(b"\xfd7zXZ\x00")
    assert "rootfs/etc/os-release" in members(lzma.decompress(body))
    # The same tree published again is the same image: the new choice is recorded on it.
    again = await op(api, "POST", "/1.0/images", {"source": source,
                                                  "compression_algorithm": "none"})
    assert again["metadata"]["fingerprint"] == fp
    body = await download(api, f"/1.0/images/{fp}/export")
    assert body[257:262] == b"ustar" and "rootfs/etc/os-release" in members(body)

    listed = (await call(api, "GET", f"/1.0/images?recursion=1&filter=fingerprint eq {fp}")
              )["metadata"]
    assert [i["fingerprint"] for i in listed] == [fp]
    assert (await call(api, "GET", f"/1.0/images?filter=fingerprint ne {fp} and "
                                   "public eq false"))["metadata"] == [
        f"/1.0/images/{i['fingerprint']}" for i in
        (await call(api, "GET", "/1.0/images?recursion=1"))["metadata"]
        if i["fingerprint"] != fp]
    assert (await call(api, "GET", "/1.0/images?filter=public eq true"))["metadata"] == []
    assert "Invalid filter" in (await call(api, "GET", "/1.0/images?filter=public",
                                           status=400))["error"]


async def test_backups_rename_and_full_listing(api) -> None:  # type: ignore[no-untyped-def]
    created = await call(api, "POST", "/1.0/instances", {"source": {"alias": "debian"}},
                         status=202)  # no name: entity_url says which one was made
    url = created["metadata"]["metadata"]["entity_url"]
    assert (await wait(api, created))["metadata"]["entity_url"] == url
    await call(api, "GET", url)
    await op(api, "DELETE", url)

    await tiny_instance(api, "bk1")
    base = "/1.0/instances/bk1/backups"
    bad = await call(api, "POST", base, {"compression_algorithm": "zstd"}, status=400)
    assert "zstd" in bad["error"]
    started = await call(api, "POST", base, {"name": "b0", "compression_algorithm": "none"},
                         status=202)
    assert started["metadata"]["metadata"]["entity_url"] == f"{base}/b0"
    await wait(api, started)
    full = (await call(api, "GET", "/1.0/instances?recursion=2"))["metadata"]
    assert [b["name"] for b in next(i for i in full if i["name"] == "bk1")["backups"]] == \
        ["b0"]
    renamed = await op(api, "POST", f"{base}/b0", {"name": "b1"})
    assert renamed["metadata"]["entity_url"] == f"{base}/b1"
    assert (await call(api, "GET", base))["metadata"] == [f"{base}/b1"]
    assert (await call(api, "GET", f"{base}/b1"))["metadata"]["name"] == "b1"
    body = await download(api, f"{base}/b1/export")
    assert body[257:262] == b"ustar" and "backup/index.yaml" in members(body)
    await op(api, "POST", base, {"name": "b2"})
    assert "already exists" in (await call(api, "POST", f"{base}/b1", {"name": "b2"},
                                           status=409))["error"]
    await call(api, "POST", f"{base}/gone", {"name": "b3"}, status=404)
    await call(api, "POST", f"{base}/b1", {"name": "a/b"}, status=400)
    full = (await call(api, "GET", "/1.0/instances/bk1?recursion=2"))["metadata"]
    assert sorted(b["name"] for b in full["backups"]) == ["b1", "b2"]
    assert all("file" not in b for b in full["backups"])


async def test_snapshot_expiry_at_creation(api) -> None:  # type: ignore[no-untyped-def]
    await tiny_instance(api, "sx1")
    await op(api, "POST", "/1.0/instances/sx1/snapshots",
             {"name": "s0", "expires_at": "2099-05-01T10:00:00Z"})
    snap = (await call(api, "GET", "/1.0/instances/sx1/snapshots/s0"))["metadata"]
    assert snap["expires_at"].startswith("2099-05-01T10:00:00")


async def test_force_delete_stops_a_running_instance(api) -> None:  # type: ignore[no-untyped-def]
    await launch(api, "fd1")
    assert "running" in (await call(api, "DELETE", "/1.0/instances/fd1", status=400))["error"]
    await op(api, "DELETE", "/1.0/instances/fd1?force=1")
    await call(api, "GET", "/1.0/instances/fd1", status=404)


async def test_resources(api) -> None:  # type: ignore[no-untyped-def]
    res = (await call(api, "GET", "/1.0/resources"))["metadata"]
    assert res["cpu"]["total"] >= 1 and res["memory"]["total"] > res["memory"]["used"] > 0

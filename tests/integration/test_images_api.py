"""Image uploads, edits and exports through the API, in-process, on a tiny LXD image."""

from __future__ import annotations

import hashlib
import io
import tarfile

import aiohttp
import pytest
import yaml

from tests.integration.conftest import call, wait

pytestmark = pytest.mark.kernel


def tiny_image() -> bytes:
    """A unified LXD image: metadata.yaml and a rootfs with one file."""
    meta = yaml.safe_dump({"architecture": "x86_64", "creation_date": 1764028800,
                           "properties": {"os": "tiny", "release": "1",
                                          "description": "tiny test image"}}).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in (("metadata.yaml", meta), ("rootfs/etc/os-release", b"ID=tiny\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


async def test_upload_edit_export(api) -> None:  # type: ignore[no-untyped-def]
    resp = await api.post("/1.0/images", data=tiny_image(), headers={
        "Content-Type": "application/octet-stream", "X-LXD-aliases": "tiny"})
    assert resp.status == 202
    op = await wait(api, await resp.json())
    fp = op["metadata"]["fingerprint"]
    image = (await call(api, "GET", f"/1.0/images/{fp}"))["metadata"]
    assert image["properties"]["description"] == "tiny test image"
    assert [a["name"] for a in image["aliases"]] == ["tiny"]
    await call(api, "PATCH", f"/1.0/images/{fp}", {"properties": {"owner": "ops"},
                                                    "auto_update": True})
    image = (await call(api, "GET", f"/1.0/images/{fp}"))["metadata"]
    assert image["properties"]["owner"] == "ops" and image["auto_update"] is True
    await call(api, "PUT", f"/1.0/images/{fp}", {"properties": {"description": "renamed"}})
    image = (await call(api, "GET", f"/1.0/images/{fp}"))["metadata"]
    assert image["properties"]["description"] == "renamed" and "owner" not in \
        image["properties"] and image["auto_update"] is False
    await call(api, "PUT", f"/1.0/images/{fp}", {"properties": {"x": {"nested": 1}}},
               status=400)
    exported = await api.get(f"/1.0/images/{fp}/export")
    assert exported.status == 200
    body = await exported.read()
    assert tarfile.open(fileobj=io.BytesIO(body)).getmember("rootfs/etc/os-release")
    empty = await api.post("/1.0/images", data=b"", headers={
        "Content-Type": "application/octet-stream"})
    assert empty.status == 400


async def test_upload_without_content_type_then_export_the_same_bytes(api) -> None:  # type: ignore[no-untyped-def]
    """pylxd's images.create(data): the tarball as the body with no Content-Type (LXD takes
    any body that is not JSON as an upload), X-LXD-public and X-LXD-properties honoured; the
    export is the uploaded file, whose sha256 is the fingerprint."""
    data = tiny_image()
    resp = await api.post("/1.0/images", data=data, skip_auto_headers=["Content-Type"],
                          headers={"X-LXD-Public": "1",
                                   "X-LXD-properties": "owner=ops&description=mine"})
    assert resp.status == 202, await resp.text()
    fp = (await wait(api, await resp.json()))["metadata"]["fingerprint"]
    assert fp == hashlib.sha256(data).hexdigest()
    image = (await call(api, "GET", f"/1.0/images/{fp}"))["metadata"]
    assert image["public"] is True
    assert image["properties"]["owner"] == "ops"
    assert image["properties"]["description"] == "mine"
    assert image["properties"]["os"] == "tiny"
    exported = await api.get(f"/1.0/images/{fp}/export")
    assert exported.status == 200
    assert exported.headers["Content-Disposition"] == f'attachment; filename="{fp}.tar.gz"'
    assert await exported.read() == data


async def test_json_without_content_type_is_still_json(api) -> None:  # type: ignore[no-untyped-def]
    resp = await api.post("/1.0/images", data=b' {"source": {"type": "nope"}}',
                          skip_auto_headers=["Content-Type"])
    assert resp.status == 501
    assert "Unsupported image source type 'nope'" in (await resp.json())["error"]
    await call(api, "POST", "/1.0/images", raw=b"\x1f\x8b not json", status=400)


async def test_split_upload_exports_as_multipart(api) -> None:  # type: ignore[no-untyped-def]
    """A split image (metadata tarball + rootfs tarball) comes back as LXD serves it: a
    multipart body with parts 'metadata' and 'rootfs' named meta-<fp><ext> and <fp><ext>."""
    meta_buf, rootfs_buf = io.BytesIO(), io.BytesIO()
    meta = yaml.safe_dump({"architecture": "x86_64", "creation_date": 1764028800}).encode()
    with tarfile.open(fileobj=meta_buf, mode="w:xz") as tar:
        info = tarfile.TarInfo("metadata.yaml")
        info.size = len(meta)
        tar.addfile(info, io.BytesIO(meta))
    with tarfile.open(fileobj=rootfs_buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("etc/os-release")
        info.size = 8
        tar.addfile(info, io.BytesIO(b"ID=tiny\n"))
    form = aiohttp.FormData()
    form.add_field("metadata", meta_buf.getvalue(), filename="meta.tar.xz")
    form.add_field("rootfs", rootfs_buf.getvalue(), filename="rootfs.tar.gz")
    resp = await api.post("/1.0/images", data=form)
    assert resp.status == 202, await resp.text()
    fp = (await wait(api, await resp.json()))["metadata"]["fingerprint"]
    exported = await api.get(f"/1.0/images/{fp}/export")
    assert exported.status == 200
    assert exported.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    reader = aiohttp.MultipartReader.from_response(exported)  # type: ignore[arg-type]
    parts = []
    while (part := await reader.next()) is not None:
        assert isinstance(part, aiohttp.BodyPartReader)
        parts.append((part.name, part.filename, await part.read()))
    assert parts == [("metadata", f"meta-{fp}.tar.xz", meta_buf.getvalue()),
                     ("rootfs", f"{fp}.tar.gz", rootfs_buf.getvalue())]
    assert hashlib.sha256(parts[0][2] + parts[1][2]).hexdigest() == fp

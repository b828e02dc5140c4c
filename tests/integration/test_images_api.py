"""Image uploads, edits and exports through the API, in-process, on a tiny LXD image."""

from __future__ import annotations

import io
import tarfile

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

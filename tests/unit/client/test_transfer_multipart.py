"""split_multipart: an export of a split image (LXD's multipart/form-data answer) into its
files, as written by lxmgrd's stream_parts and by the client's own upload encoder."""

from __future__ import annotations

from pathlib import Path

import pytest

from lxmgr import errors
from lxmgr.client.transfer import _multipart, split_multipart


def lxd_body(boundary: str, parts: list[tuple[str, str, bytes]]) -> bytes:
    """What Go's multipart.Writer (LXD's FileResponse) and lxmgrd's stream_parts send."""
    out = b""
    for i, (name, filename, data) in enumerate(parts):
        out += (b"\r\n" if i else b"") + (
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; "
            f"filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        ).encode() + data
    return out + f"\r\n--{boundary}--\r\n".encode()


def test_split_lxd_export(tmp_path: Path) -> None:
    body = tmp_path / "body"
    rootfs = bytes(range(256)) * 5000 + b"\r\n--not-the-boundary"
    body.write_bytes(lxd_body("b0und", [("metadata", "meta-ab.tar.xz", b"META"),
                                        ("rootfs", "ab.squashfs", rootfs)]))
    out = tmp_path / "out"
    out.mkdir()
    written = split_multipart(body, "b0und", out)
    assert written == [out / "meta-ab.tar.xz", out / "ab.squashfs"]
    assert written[0].read_bytes() == b"META" and written[1].read_bytes() == rootfs


def test_split_client_encoding(tmp_path: Path) -> None:
    meta, rootfs = tmp_path / "m.tar.gz", tmp_path / "r.squashfs"
    meta.write_bytes(b"m" * 10)
    rootfs.write_bytes(b"")
    ctype, length, chunks = _multipart([("metadata", meta), ("rootfs", rootfs)])
    body = tmp_path / "body"
    body.write_bytes(b"".join(chunks))
    assert body.stat().st_size == length
    out = tmp_path / "out"
    out.mkdir()
    written = split_multipart(body, ctype.split("boundary=")[1], out)
    assert [p.read_bytes() for p in written] == [b"m" * 10, b""]


@pytest.mark.parametrize("content", [b"", b"garbage", b"--b0und\r\nno end of headers",
                                     b"--b0und\r\nContent-Disposition: form-data; "
                                     b"filename=\"x\"\r\n\r\ntruncated",
                                     b"--b0und\r\nContent-Disposition: form-data; "
                                     b"filename=\"../x\"\r\n\r\nx\r\n--b0und--\r\n"])
def test_malformed(tmp_path: Path, content: bytes) -> None:
    body = tmp_path / "body"
    body.write_bytes(content)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(errors.LxmgrError, match="^The server sent an? (empty|malformed) "
                                                "multipart export$"):
        split_multipart(body, "b0und", out)
    assert list(out.iterdir()) == []

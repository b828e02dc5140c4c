"""Big bodies over the unix socket: image uploads (POST /1.0/images with the file as the body,
or multipart `metadata` + `rootfs` for split images, as lxc sends them), backup imports
(POST /1.0/instances) and downloads (image and backup exports) streamed to and from files,
never held in memory.

Each transfer uses a connection of its own (closed after), so the Client's keep-alive
connection never carries a half-sent body. Imports only lxmgr.client.rest and the stdlib.
"""

from __future__ import annotations

import mmap
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lxmgr import errors
from lxmgr.client.rest import Client, HTTPConnection, Response, _decode, check_operation

CHUNK = 1 << 20
_FILENAME_RE = re.compile(r'filename="?([^";/]+)"?')
_BOUNDARY_RE = re.compile(r'boundary="?([^";]+)"?')


def _file_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


def _multipart(files: list[tuple[str, Path]]) -> tuple[str, int, Iterator[bytes]]:
    """(content type, length, body chunks) of a multipart/form-data body of files."""
    boundary = secrets.token_hex(16)
    heads = [(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; "
              f"filename=\"{path.name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
              ).encode() for name, path in files]
    tail = f"--{boundary}--\r\n".encode()
    length = sum(len(h) + os.path.getsize(p) + 2 for h, (_, p) in zip(heads, files,
                                                                       strict=True)) + len(tail)

    def chunks() -> Iterator[bytes]:
        for head, (_, path) in zip(heads, files, strict=True):
            yield head
            yield from _file_chunks(path)
            yield b"\r\n"
        yield tail
    return f"multipart/form-data; boundary={boundary}", length, chunks()


def _send(conn: HTTPConnection, method: str, target: str, headers: dict[str, str],
          length: int, chunks: Iterator[bytes]) -> None:
    sock = conn.connect()
    lines = [f"{method} {target} HTTP/1.1", f"Host: {conn.host}", "Connection: close",
             *[f"{k}: {v}" for k, v in headers.items()], f"Content-Length: {length}"]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    for chunk in chunks:
        sock.sendall(chunk)


def upload_file(client: Client, path: str, file: Path, headers: dict[str, str]
                ) -> dict[str, Any]:
    """POST file as the body of path (an instance backup to /1.0/instances); the created
    operation."""
    send = {"Accept": "application/json", "Content-Type": "application/octet-stream",
            **headers}
    return _post(client, path, send, os.path.getsize(file), _file_chunks(file))


def _post(client: Client, path: str, headers: dict[str, str], length: int,
          chunks: Iterator[bytes]) -> dict[str, Any]:
    conn = client.connection()
    try:
        _send(conn, "POST", client.url(path), headers, length, chunks)
        status, resp_headers = conn._read_head()
        data = conn._read_exact(int(resp_headers.get("content-length", "0")))
    except (BrokenPipeError, ConnectionResetError):
        raise errors.LxmgrError("lxmgrd closed the connection during the upload (see its "
                                "log: the file may be too large)") from None
    finally:
        conn.close()
    response = Response(status, resp_headers, _decode(data, resp_headers), data)
    response.raise_for_error()
    return check_operation((response.envelope or {}).get("metadata") or {})


def upload_image(client: Client, files: list[Path], *, aliases: tuple[str, ...] = ()
                 ) -> dict[str, Any]:
    """POST an image file (unified) or [metadata, rootfs] (split); the created operation."""
    headers = {"Accept": "application/json"}
    if aliases:
        headers["X-LXD-aliases"] = ",".join(aliases)
    if len(files) == 1:
        headers["Content-Type"] = "application/octet-stream"
        headers["X-LXD-filename"] = files[0].name
        length, chunks = os.path.getsize(files[0]), _file_chunks(files[0])
    elif len(files) == 2:
        ctype, length, chunks = _multipart([("metadata", files[0]), ("rootfs", files[1])])
        headers["Content-Type"] = ctype
    else:
        raise errors.InvalidConfig("Give one unified image file, or a metadata and a rootfs "
                                   "file")
    return _post(client, "/1.0/images", headers, length, chunks)


def download(client: Client, path: str, dest: Path) -> Path:
    """GET path into dest (a directory: the server's file name is used); the file written
    (the first one for a multipart answer, see download_files)."""
    return download_files(client, path, dest)[0]


def download_files(client: Client, path: str, dest: Path) -> list[Path]:
    """GET path into dest (a directory: the server's file names are used); the files
    written. A multipart/form-data answer (LXD's export of a split image: metadata and
    rootfs) is split into its files, which needs dest to be a directory."""
    conn = client.connection()
    try:
        _send(conn, "GET", client.url(path), {"Accept": "*/*"}, 0, iter(()))
        status, headers = conn._read_head()
        if status != 200:
            data = conn._read_to_close()
            Response(status, headers, _decode(data, headers), data).raise_for_error()
        remaining = int(headers.get("content-length", "-1"))
        boundary = _BOUNDARY_RE.search(headers.get("content-type", ""))
        if headers.get("content-type", "").startswith("multipart/") and boundary:
            if not dest.is_dir():
                raise errors.InvalidConfig(f"A split image is exported to a directory: "
                                           f"'{dest}' is not one")
            body = dest / f".download-{secrets.token_hex(8)}"
            try:
                _stream_to(conn, body, remaining)
                return split_multipart(body, boundary.group(1), dest)
            finally:
                body.unlink(missing_ok=True)
        name = _FILENAME_RE.search(headers.get("content-disposition", ""))
        target = dest / name.group(1) if dest.is_dir() and name else dest
        try:
            _stream_to(conn, target, remaining)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        return [target]
    finally:
        conn.close()


def split_multipart(body: Path, boundary: str, dest: Path) -> list[Path]:
    """The file parts of a multipart/form-data body (a file) written into dest under their
    file names, in order; read through mmap, never whole into memory."""
    delimiter = b"\r\n--" + boundary.encode()
    written: list[Path] = []
    if body.stat().st_size == 0:
        raise errors.LxmgrError("The server sent an empty multipart export")
    try:
        with open(body, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            pos = len(delimiter) - 2 if m[:len(delimiter) - 2] == delimiter[2:] else -1
            while pos >= 0 and m[pos:pos + 2] == b"\r\n":
                head_end = m.find(b"\r\n\r\n", pos)
                name = _FILENAME_RE.search(m[pos:head_end].decode("latin-1")) \
                    if head_end > 0 else None
                end = m.find(delimiter, head_end + 4) if name else -1
                if name is None or end < 0 or name.group(1) in (".", ".."):
                    break
                target = dest / name.group(1)
                written.append(target)
                with open(target, "wb") as out:
                    for at in range(head_end + 4, end, CHUNK):
                        out.write(m[at:min(at + CHUNK, end)])
                pos = end + len(delimiter)
            if pos < 0 or m[pos:pos + 2] != b"--" or not written:
                raise errors.LxmgrError("The server sent a malformed multipart export")
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return written


def _stream_to(conn: HTTPConnection, target: Path, remaining: int) -> None:
    """The rest of a response body (remaining bytes, -1: until close) into target."""
    with open(target, "wb") as out:
        out.write(bytes(conn._buf[:remaining] if remaining >= 0 else conn._buf))
        remaining -= len(conn._buf) if remaining >= 0 else 0
        conn._buf.clear()
        while remaining != 0:
            assert conn.sock is not None
            chunk = conn.sock.recv(CHUNK if remaining < 0 else min(CHUNK, remaining))
            if not chunk:
                if remaining > 0:
                    raise errors.LxmgrError(f"lxmgrd closed the connection: {target} is "
                                            "incomplete")
                break
            out.write(chunk)
            remaining -= len(chunk) if remaining > 0 else 0

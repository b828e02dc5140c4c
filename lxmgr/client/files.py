"""The instance files API from the client side (`lxmgr file`, LXD's CreateInstanceFile /
GetInstanceFile / DeleteInstanceFile): stat, pull into a stream (pull_follow: through
symlinks), push from a stream, mkdir, symlink, delete. Bodies are streamed in CHUNK pieces,
never held whole in memory.

Each transfer uses a connection of its own (closed after). Imports only lxmgr.client.rest,
lxmgr.client.transfer, lxmgr.errors and the stdlib.
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Iterator
from typing import Any, BinaryIO
from urllib.parse import quote

from lxmgr import errors
from lxmgr.client.rest import Client, HTTPConnection, Response, _decode
from lxmgr.client.transfer import CHUNK, _send


def files_path(name: str, path: str) -> str:
    return f"/1.0/instances/{quote(name, safe='')}/files?path={quote(path, safe='/')}"


def info_of(headers: dict[str, str]) -> dict[str, Any]:
    """{type, uid, gid, mode} from X-LXD-* response headers (lower-cased names)."""
    return {"type": headers.get("x-lxd-type", "file"),
            "uid": int(headers.get("x-lxd-uid", "0")), "gid": int(headers.get("x-lxd-gid", "0")),
            "mode": int(headers.get("x-lxd-mode", "0644"), 8)}


def _exchange(client: Client, method: str, target: str, headers: dict[str, str],
              length: int = 0, chunks: Iterator[bytes] | None = None) \
        -> tuple[HTTPConnection, int, dict[str, str]]:
    conn = client.connection()
    try:
        _send(conn, method, client.url(target), {"Accept": "*/*", **headers}, length,
              chunks or iter(()))
        status, resp_headers = conn._read_head()
    except (BrokenPipeError, ConnectionResetError):
        conn.close()
        raise errors.LxmgrError(f"lxmgrd closed the connection during {method} (see its "
                                "log: the file may be too large)") from None
    except BaseException:
        conn.close()
        raise
    return conn, status, resp_headers


def _body(conn: HTTPConnection, headers: dict[str, str]) -> Iterator[bytes]:
    """The response body in pieces: chunked, Content-Length or until close."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while size := int(conn._read_line().split(b";", 1)[0], 16):
            yield from _exact(conn, size)
            conn._read_line()
        while conn._read_line():
            pass
    elif "content-length" in headers:
        yield from _exact(conn, int(headers["content-length"]))
    else:
        yield conn._read_to_close()


def _exact(conn: HTTPConnection, count: int) -> Iterator[bytes]:
    while count > 0:
        if not conn._buf:
            conn._fill()
        piece = bytes(conn._buf[:min(count, CHUNK)])
        del conn._buf[:len(piece)]
        count -= len(piece)
        yield piece


def _finish(conn: HTTPConnection, status: int, headers: dict[str, str]) -> Response:
    """Read a (small) answer whole; raises its error."""
    data = b"".join(_body(conn, headers))
    conn.close()
    response = Response(status, headers, _decode(data, headers), data)
    response.raise_for_error()
    return response


def stat(client: Client, name: str, path: str) -> dict[str, Any] | None:
    """{type, uid, gid, mode} of path (HEAD), None when it does not exist."""
    conn, status, headers = _exchange(client, "HEAD", files_path(name, path), {})
    conn.close()
    if status == 404:
        return None
    if status >= 400:
        raise errors.LxmgrError(f"Failed to stat '{path}': HTTP {status}")
    return info_of(headers)


def pull(client: Client, name: str, path: str, out: BinaryIO | None) -> dict[str, Any]:
    """GET path: a file's bytes go to out; returns its info, with `entries` for a directory
    and `target` for a symlink."""
    conn, status, headers = _exchange(client, "GET", files_path(name, path), {})
    if status != 200:
        _finish(conn, status, headers)
    info = info_of(headers)
    try:
        if info["type"] == "directory":
            info["entries"] = json.loads(b"".join(_body(conn, headers)))["metadata"]
        elif info["type"] == "symlink":
            info["target"] = os.fsdecode(b"".join(_body(conn, headers)))
        else:
            for piece in _body(conn, headers):
                if out is not None:
                    out.write(piece)
    finally:
        conn.close()
    return info


# Links followed before giving up: the kernel's MAXSYMLINKS (include/linux/namei.h), which
# openat2 also applies inside one path.
MAX_LINKS = 40
MAX_PATH = 4096  # the server's limit for the `path` parameter (PATH_MAX)


def link_path(link: str, target: str) -> str:
    """The path a GET of `target` should ask for, `target` being the content of the symlink
    at `link`: an absolute target as it is, a relative one after the link's directory. Not
    normalized: the server resolves each `..` inside the container after the symlinks
    before it, as the kernel would; lexically only when the joined path grows too long."""
    if target.startswith("/"):
        return target
    joined = f"{link.rstrip('/').rpartition('/')[0]}/{target}"
    return joined if len(joined) < MAX_PATH else posixpath.normpath(joined)


def pull_follow(client: Client, name: str, path: str, out: BinaryIO | None) \
        -> dict[str, Any]:
    """pull(), following symlinks to what they point to, inside the instance: one GET per
    link, as lxc does for `lxc file pull NAME/LINK -` (lxc/file.go); the server resolves
    every path in the container's root, so no link leads out of it. The info of the file
    or directory found, with its `path`; NotFound names a dangling link."""
    current = path
    for _ in range(MAX_LINKS + 1):
        try:
            info = pull(client, name, current, out)
        except errors.NotFound:
            if current == path:
                raise
            raise errors.NotFound(f"Symlink '{path}' leads to "
                                  f"'{posixpath.normpath(current)}', which does not exist "
                                  f"in '{name}'") from None
        if info["type"] != "symlink":
            info["path"] = current
            return info
        current = link_path(current, info["target"])
    raise errors.InvalidConfig(f"Too many levels of symbolic links at '{path}'")


def _perm_headers(kind: str, uid: int | None, gid: int | None, mode: int | None,
                  modify: bool = False) -> dict[str, str]:
    headers = {"X-LXD-type": kind, "Content-Type": "application/octet-stream"}
    for key, value in (("uid", uid), ("gid", gid)):
        if value is not None:
            headers[f"X-LXD-{key}"] = str(value)
    if mode is not None:
        headers["X-LXD-mode"] = f"{mode:04o}"
    if modify:
        keys = [k for k, v in (("uid", uid), ("gid", gid), ("mode", mode)) if v is not None]
        if keys:
            headers["X-LXD-modify-perm"] = ",".join(keys)
    return headers


def push(client: Client, name: str, path: str, src: BinaryIO, length: int, *,
         uid: int | None = None, gid: int | None = None, mode: int | None = None,
         append: bool = False, modify: bool = False) -> None:
    """POST length bytes of src as the content of path; modify: apply uid/gid/mode to an
    existing file too (LXD's X-LXD-modify-perm)."""
    headers = _perm_headers("file", uid, gid, mode, modify)
    headers["X-LXD-write"] = "append" if append else "overwrite"

    def chunks() -> Iterator[bytes]:
        while piece := src.read(CHUNK):
            yield piece
    _finish(*_exchange(client, "POST", files_path(name, path), headers, length, chunks()))


def mkdir(client: Client, name: str, path: str, *, uid: int | None = None,
          gid: int | None = None, mode: int | None = None) -> None:
    """POST X-LXD-type: directory (an existing directory is fine)."""
    headers = _perm_headers("directory", uid, gid, mode)
    _finish(*_exchange(client, "POST", files_path(name, path), headers))


def mkdir_parents(client: Client, name: str, path: str, **perms: Any) -> None:
    """Create every missing ancestor directory of path (`-p`)."""
    parts = [p for p in path.split("/")[:-1] if p]
    for i in range(1, len(parts) + 1):
        parent = "/" + "/".join(parts[:i])
        if stat(client, name, parent) is None:
            mkdir(client, name, parent, **perms)


def symlink(client: Client, name: str, path: str, target: str, *, uid: int | None = None,
            gid: int | None = None) -> None:
    """POST X-LXD-type: symlink with the target as the body."""
    raw = os.fsencode(target)
    headers = _perm_headers("symlink", uid, gid, None)
    _finish(*_exchange(client, "POST", files_path(name, path), headers, len(raw), iter([raw])))


def delete(client: Client, name: str, path: str) -> None:
    """DELETE path (a file, a symlink, an empty directory)."""
    _finish(*_exchange(client, "DELETE", files_path(name, path), {}))

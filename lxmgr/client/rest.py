"""The REST half of the client: HTTP/1.1 over AF_UNIX, LXD envelopes, errors, operations.

Must not import anything but lxmgr.api, lxmgr.errors and the stdlib. Synchronous on purpose:
its users are short-lived CLI processes, where thread-free blocking calls start fastest. No
logging import either (start-up cost): pass trace= to see each request.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket

from lxmgr import errors
from lxmgr.api.envelope import FAILURE, FINAL_CODES

TYPE_CHECKING = False  # no typing import at run time: ~10 ms of every CLI start (cli.fast)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

DEFAULT_SOCKET = "/var/lib/lxmgr/unix.socket"

# error_code in an error envelope -> the exception the client raises (C8).
_ERRORS: dict[int, type[errors.LxmgrError]] = {
    400: errors.InvalidConfig,
    403: errors.Forbidden,
    404: errors.NotFound,
    409: errors.Conflict,
    501: errors.NotSupported,
    503: errors.HostNotReady,
}


class DaemonNotRunning(errors.LxmgrError):
    """The socket is missing or nobody accepts on it."""

    status = 503

    def __init__(self, socket_path: str, reason: str) -> None:
        self.socket_path = socket_path
        super().__init__(f"lxmgrd is not running (socket {socket_path}: {reason})")


# RFC 3986 unreserved characters: never percent-encoded.
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def quote(text: str, safe: str = "/") -> str:
    """urllib.parse.quote for str (UTF-8): every byte but the unreserved ones and `safe`
    percent-encoded. Here because importing urllib.parse (re, ipaddress) costs ~7 ms of
    every CLI start on a slow host."""
    keep = _UNRESERVED.union(safe.encode())
    return "".join(chr(b) if b in keep else f"%{b:02X}" for b in text.encode())


def urlencode(params: dict[str, str]) -> str:
    """A query string: key=value pairs, both quoted with nothing safe."""
    return "&".join(f"{quote(k, '')}={quote(v, '')}" for k, v in params.items())


def default_socket_path() -> str:
    """$LXMGR_SOCKET, else $LXMGR_DIR/unix.socket, else /var/lib/lxmgr/unix.socket."""
    if os.environ.get("LXMGR_SOCKET"):
        return os.environ["LXMGR_SOCKET"]
    if os.environ.get("LXMGR_DIR"):
        return os.path.join(os.environ["LXMGR_DIR"], "unix.socket")
    return DEFAULT_SOCKET


def error_for(code: int, message: str) -> errors.LxmgrError:
    """The lxmgr.errors instance matching an LXD error_code."""
    return _ERRORS.get(code, errors.LxmgrError)(message)


def operation_id(op: str | dict[str, Any]) -> str:
    """The id of an operation given as its URL, its id or its object. A URL may carry a
    query (LXD names the project of a non-default project's operation: `?project=P`)."""
    if isinstance(op, dict):
        return str(op["id"])
    return op.partition("?")[0].partition("#")[0].rstrip("/").rsplit("/", 1)[-1]


def _query_names(query: str, *names: str) -> bool:
    """Whether a raw query string (`a=1&b`) sets any of names."""
    return any(part.partition("=")[0] in names for part in query.split("&") if part)


def connect_unix(path: str, timeout: float | None = None) -> socket.socket:
    """A connected AF_UNIX stream socket; DaemonNotRunning when nobody listens on path."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except (FileNotFoundError, ConnectionRefusedError) as err:
        sock.close()
        raise DaemonNotRunning(path, err.strerror or type(err).__name__) from err
    except OSError:
        sock.close()
        raise
    return sock


class HTTPConnection:
    """HTTP/1.1 keep-alive over a unix socket: just what lxmgrd's answers need.

    Not http.client: importing it (email.parser, ssl) costs ~20 ms, a quarter of the CLI's
    start-up budget. Handles Content-Length, chunked and read-to-close bodies.
    """

    def __init__(self, socket_path: str, timeout: float | None = None, *,
                 remote: Any = None) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self.remote = remote  # a lxmgr.client.https.TlsRemote, or None for the unix socket
        self.sock: socket.socket | None = None
        self.reused = False  # True once a request on this socket completed
        self._buf = bytearray()

    @property
    def host(self) -> str:
        return "unix.socket" if self.remote is None else str(self.remote.host_header)

    def connect(self) -> socket.socket:
        """A fresh connection to the daemon (the unix socket or the remote's TLS address)."""
        self.close()
        sock: socket.socket = connect_unix(self.socket_path, self.timeout) \
            if self.remote is None else self.remote.open_socket(self.timeout)
        self.sock, self.reused = sock, False
        return sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self._buf.clear()

    def exchange(self, method: str, target: str, headers: dict[str, str],
                 body: bytes | None) -> tuple[int, dict[str, str], bytes, bool]:
        """Send one request, read the answer: (status, lower-cased headers, body, keep)."""
        sock = self.sock or self.connect()
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.host}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines.append(f"Content-Length: {len(body or b'')}")
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b""))
        status, resp_headers = self._read_head()
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            data = b""
        elif "chunked" in resp_headers.get("transfer-encoding", "").lower():
            data = self._read_chunked()
        elif "content-length" in resp_headers:
            data = self._read_exact(int(resp_headers["content-length"]))
        else:
            data = self._read_to_close()
            resp_headers["connection"] = "close"
        keep = resp_headers.get("connection", "").lower() != "close"
        self.reused = True
        return status, resp_headers, data, keep

    def _fill(self) -> None:
        assert self.sock is not None
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionResetError("lxmgrd closed the connection")
        self._buf += chunk

    def _read_line(self) -> bytes:
        while (end := self._buf.find(b"\r\n")) < 0:
            self._fill()
        line = bytes(self._buf[:end])
        del self._buf[:end + 2]
        return line

    def _read_exact(self, count: int) -> bytes:
        while len(self._buf) < count:
            self._fill()
        data = bytes(self._buf[:count])
        del self._buf[:count]
        return data

    def _read_to_close(self) -> bytes:
        with contextlib.suppress(ConnectionResetError):
            while True:
                self._fill()
        data = bytes(self._buf)
        self._buf.clear()
        return data

    def _read_head(self) -> tuple[int, dict[str, str]]:
        try:
            status_line = self._read_line()
        except ConnectionResetError as err:  # a stale keep-alive connection: caller retries
            raise StaleConnection() from err
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
            raise errors.LxmgrError(f"Malformed HTTP answer from lxmgrd: {status_line[:80]!r}")
        headers: dict[str, str] = {}
        while line := self._read_line():
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(parts[1]), headers

    def _read_chunked(self) -> bytes:
        out = bytearray()
        while size := int(self._read_line().split(b";", 1)[0], 16):
            out += self._read_exact(size)
            self._read_line()
        while self._read_line():  # trailers up to the blank line
            pass
        return bytes(out)


class StaleConnection(ConnectionError):
    """The server closed a kept-alive connection before answering: safe to resend once."""


class Response:
    """One HTTP answer: status, lower-cased headers, the decoded envelope (None if not JSON).

    A plain class, not a dataclass: building a dataclass costs ~1 ms at import.
    """

    __slots__ = ("status", "headers", "envelope", "body")

    def __init__(self, status: int, headers: dict[str, str],
                 envelope: dict[str, Any] | None, body: bytes = b"") -> None:
        self.status = status
        self.headers = headers
        self.envelope = envelope
        self.body = body

    def __repr__(self) -> str:
        return f"Response(status={self.status}, envelope={self.envelope!r})"

    @property
    def metadata(self) -> Any:
        return (self.envelope or {}).get("metadata")

    @property
    def operation(self) -> str:
        """The operation URL of an async response ('' otherwise)."""
        return str((self.envelope or {}).get("operation") or self.headers.get("location", ""))

    def raise_for_error(self) -> None:
        """Raise the lxmgr.errors class matching an error envelope or a bare HTTP error."""
        env = self.envelope
        if env is not None and env.get("type") == "error":
            code = int(env.get("error_code") or self.status)
            raise error_for(code, str(env.get("error") or f"Request failed with HTTP {code}"))
        if self.status >= 400:
            text = self.body.decode(errors="replace").strip().splitlines()
            reason = text[0] if text else "no details"
            raise error_for(self.status, f"Request failed with HTTP {self.status}: {reason}")


class Client:
    """A blocking lxmgrd client; one keep-alive connection, reopened when the server drops it."""

    def __init__(self, socket_path: str | None = None, timeout: float | None = None,
                 trace: Callable[[str], None] | None = None, *, remote: Any = None,
                 project: str | None = None) -> None:
        self.socket_path = socket_path or default_socket_path()
        self.timeout = timeout
        # The project every request works in (`project=` added by url()); None: the
        # server's default project, as an LXD client that was given none.
        self.project = project
        # A lxmgr.client.https.TlsRemote to talk HTTPS to a remote daemon instead.
        self.remote = remote
        self._conn: HTTPConnection | None = None
        self.trace: Callable[[str], None] | None = trace

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def url(self, path: str, params: dict[str, Any] | None = None) -> str:
        """The request target: path (which may have a query already) with params url-encoded
        (None values dropped, bools as 'true'/'false') and this client's project.

        As LXD's client (client/lxd.go setURLQueryAttributes), `project=` goes on every
        request, websockets and operation waits included, unless the query names a project
        or asks for `all-projects` already; and not on /1.0/projects itself: a project lives
        in no project (LXD ignores the parameter there), and a current project someone else
        deleted must not stop `lxmgr project switch default` from reaching the server.
        """
        clean = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        base, sep, query = path.partition("?")
        if self.project and not _query_names(query, "project", "all-projects") \
                and "project" not in clean and "all-projects" not in clean \
                and base.rstrip("/") != "/1.0/projects" \
                and not base.startswith("/1.0/projects/"):
            clean["project"] = self.project
        if not clean:
            return path
        return f"{path}{'&' if sep else '?'}{urlencode(clean)}"

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                body: Any = None, headers: dict[str, str] | None = None) -> Response:
        """Send one request; body is JSON-encoded unless bytes. Does not raise on errors."""
        target = self.url(path, params)
        send_headers = {"Accept": "application/json", **(headers or {})}
        payload: bytes | None = None
        if isinstance(body, bytes | bytearray):
            payload = bytes(body)
        elif body is not None:
            payload = json.dumps(body).encode()
            send_headers.setdefault("Content-Type", "application/json")
        if self.trace is not None:
            self.trace(f"{method} {target}")
        for attempt in (1, 2):
            conn = self._connection()
            try:
                status, resp_headers, data, keep = conn.exchange(method, target, send_headers,
                                                                 payload)
                break
            except (StaleConnection, BrokenPipeError):
                reused = conn.reused
                self.close()
                if attempt == 2 or not reused:  # only a kept-alive socket may be stale
                    raise errors.LxmgrError(
                        f"lxmgrd closed the connection during {method} {path}") from None
            except BaseException:
                self.close()
                raise
        if not keep:
            self.close()
        envelope = _decode(data, resp_headers)
        if status == 403 and self.remote is not None and envelope is not None \
                and str(envelope.get("error")).lower() in ("forbidden", "not authorized"):
            # LXD answers both an untrusted and a restricted certificate "not authorized"
            # (lxd/response Forbidden(nil)): GET /1.0's `auth` tells which one this is.
            envelope["error"] = f"{self.remote.url} refused {method} {path}: " + (
                "not authorized (this client's certificate is restricted to some projects)"
                if path != "/1.0" and self._trusted() else
                "this client's certificate is not trusted there (add it again with a "
                "token: `lxmgr remote remove` then `lxmgr remote add`)")
        return Response(status, resp_headers, envelope, data)

    def _trusted(self) -> bool:
        """Whether the server trusts this client's certificate (GET /1.0 `auth`)."""
        try:
            response = self.request("GET", "/1.0")
        except (errors.LxmgrError, OSError):
            return False
        metadata = response.metadata
        return isinstance(metadata, dict) and metadata.get("auth") == "trusted"

    def query(self, method: str, path: str, *, params: dict[str, Any] | None = None,
              body: Any = None, headers: dict[str, str] | None = None) -> Any:
        """request() that raises on an error envelope and returns its metadata."""
        response = self.request(method, path, params=params, body=body, headers=headers)
        response.raise_for_error()
        return response.metadata

    def raw(self, path: str, *, params: dict[str, Any] | None = None) -> bytes:
        """GET a non-JSON resource (a console log); raises on errors."""
        response = self.request("GET", path, params=params)
        response.raise_for_error()
        return response.body

    def operate(self, method: str, path: str, *, body: Any = None,
                params: dict[str, Any] | None = None, wait: bool = True) -> dict[str, Any]:
        """Start an async action; return its finished operation (or the created one)."""
        response = self.request(method, path, params=params, body=body)
        response.raise_for_error()
        env = response.envelope or {}
        if env.get("type") != "async":  # a sync answer: nothing to wait for
            return {"status_code": 200, "metadata": response.metadata or {}, "err": ""}
        op = dict(env.get("metadata") or {"id": operation_id(response.operation)})
        return self.wait_operation(op) if wait else op

    def wait_operation(self, op: str | dict[str, Any],
                       timeout: float | None = None) -> dict[str, Any]:
        """Block until the operation ends (or timeout seconds pass); raise if it failed.

        Returns the operation object; when timeout passes first it is not final yet.
        """
        op_id = operation_id(op)
        wait = -1 if timeout is None else max(int(timeout + 0.999), 0)
        response = self.request("GET", f"/1.0/operations/{quote(op_id)}/wait",
                                params={"timeout": wait})
        if timeout is not None and _error_code(response) == 504:  # timed out: current state
            return self.operation(op_id)
        response.raise_for_error()
        result = response.metadata
        if not isinstance(result, dict):
            raise errors.LxmgrError(f"Malformed operation '{op_id}'")
        return check_operation(result)

    def operation(self, op: str | dict[str, Any]) -> dict[str, Any]:
        """The current state of an operation (GET /1.0/operations/{id})."""
        return dict(self.query("GET", f"/1.0/operations/{quote(operation_id(op))}"))

    def _connection(self) -> HTTPConnection:
        if self._conn is None:
            self._conn = self.connection()
        return self._conn

    def connection(self, timeout: float | None = None) -> HTTPConnection:
        """A new, not yet connected HTTPConnection to this client's daemon."""
        return HTTPConnection(self.socket_path, timeout if timeout is not None else self.timeout,
                              remote=self.remote)

    def open_stream(self, timeout: float | None = None) -> socket.socket:
        """A connected socket for a websocket (one reader and one writer thread may use it)."""
        if self.remote is None:
            return connect_unix(self.socket_path, timeout)
        sock: socket.socket = self.remote.open_stream(timeout)
        return sock

    @property
    def host(self) -> str:
        return "unix.socket" if self.remote is None else str(self.remote.host_header)

    @property
    def where(self) -> str:
        """The daemon this client talks to, for messages."""
        return self.socket_path if self.remote is None else str(self.remote.url)


def check_operation(op: dict[str, Any]) -> dict[str, Any]:
    """op unchanged when it has not failed; else raise its error (class from err_code)."""
    code = op.get("status_code")
    if code in FINAL_CODES and code != 200:
        message = str(op.get("err") or ("Operation cancelled" if code != FAILURE
                                        else "Operation failed"))
        raise error_for(int(op.get("err_code") or 500), message)
    return op


def _error_code(response: Response) -> int:
    env = response.envelope or {}
    return int(env.get("error_code") or 0) if env.get("type") == "error" else response.status


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _decode(data: bytes, headers: dict[str, str]) -> dict[str, Any] | None:
    if "json" not in headers.get("content-type", "json") or not data:
        return None
    try:
        decoded = json.loads(data)
    except ValueError:
        return None
    return decoded if isinstance(decoded, dict) else None

"""The REST half of the client: HTTP/1.1 over AF_UNIX, LXD envelopes, errors, operations.

Must not import anything but lxmgr.api, lxmgr.errors and the stdlib. Synchronous on purpose:
its users are short-lived CLI processes, where thread-free blocking calls start fastest.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import socket
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from lxmgr import errors
from lxmgr.api.envelope import FAILURE, FINAL_CODES

logger = logging.getLogger(__name__)

DEFAULT_SOCKET = "/var/lib/lxmgr/unix.socket"

# error_code in an error envelope -> the exception the client raises (C8).
_ERRORS: dict[int, type[errors.LxmgrError]] = {
    400: errors.InvalidConfig,
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
    """The id of an operation given as its URL, its id or its object."""
    if isinstance(op, dict):
        return str(op["id"])
    return op.rstrip("/").rsplit("/", 1)[-1]


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


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a unix socket; the Host header is LXD's dummy `unix.socket`."""

    def __init__(self, socket_path: str, timeout: float | None = None) -> None:
        super().__init__("unix.socket", timeout=timeout)
        self.socket_path = socket_path

    def connect(self) -> None:
        self.sock = connect_unix(self.socket_path, self.timeout)


@dataclass
class Response:
    """One HTTP answer: status, lower-cased headers, the decoded envelope (None if not JSON)."""

    status: int
    headers: dict[str, str]
    envelope: dict[str, Any] | None
    body: bytes = field(default=b"", repr=False)

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
            reason = text[0] if text else http.client.responses.get(self.status, "error")
            raise error_for(self.status, f"Request failed with HTTP {self.status}: {reason}")


class Client:
    """A blocking lxmgrd client; one keep-alive connection, reopened when the server drops it."""

    def __init__(self, socket_path: str | None = None, timeout: float | None = None) -> None:
        self.socket_path = socket_path or default_socket_path()
        self.timeout = timeout
        self._conn: UnixHTTPConnection | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def url(self, path: str, params: dict[str, Any] | None = None) -> str:
        """path with params url-encoded (None values dropped, bools as 'true'/'false')."""
        if not params:
            return path
        clean = {k: _param(v) for k, v in params.items() if v is not None}
        return f"{path}?{urlencode(clean)}" if clean else path

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
        logger.debug("%s %s", method, target)
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request(method, target, body=payload, headers=send_headers)
                raw = conn.getresponse()
                data = raw.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # A reused keep-alive connection the server closed meanwhile: retry once.
                self.close()
                if attempt == 2:
                    raise
        else:  # pragma: no cover - the loop either breaks or raises
            raise AssertionError("unreachable")
        if raw.will_close:
            self.close()
        resp_headers = {k.lower(): v for k, v in raw.getheaders()}
        return Response(raw.status, resp_headers, _decode(data, resp_headers), data)

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
        result = self.query("GET", f"/1.0/operations/{quote(op_id)}/wait",
                            params={"timeout": wait})
        if not isinstance(result, dict):
            raise errors.LxmgrError(f"Malformed operation '{op_id}'")
        return check_operation(result)

    def operation(self, op: str | dict[str, Any]) -> dict[str, Any]:
        """The current state of an operation (GET /1.0/operations/{id})."""
        return dict(self.query("GET", f"/1.0/operations/{quote(operation_id(op))}"))

    def _connection(self) -> UnixHTTPConnection:
        if self._conn is None:
            self._conn = UnixHTTPConnection(self.socket_path, self.timeout)
        return self._conn


def check_operation(op: dict[str, Any]) -> dict[str, Any]:
    """op unchanged when it has not failed; else raise its error (class from err_code)."""
    code = op.get("status_code")
    if code in FINAL_CODES and code != 200:
        message = str(op.get("err") or ("Operation cancelled" if code != FAILURE
                                        else "Operation failed"))
        raise error_for(int(op.get("err_code") or 500), message)
    return op


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

"""The App object every command receives: the client, the consoles, abort(), operations.

Built once per invocation by the root group and stored as the click context's obj (or by
the click-free fast path, lxmgr.cli.fast). Imports neither click nor rich: the Client is
created on first use, rich only when a spinner or progress bar is shown.
"""

from __future__ import annotations

import sys
import time
from functools import cached_property

from lxmgr.errors import InvalidConfig, LxmgrError

TYPE_CHECKING = False  # no typing import at run time: ~10 ms of every CLI start (cli.fast)
if TYPE_CHECKING:
    from typing import Any, NoReturn

    from lxmgr.client import Client

_POLL_SECONDS = 1  # /wait timeout between progress refreshes
DAEMON_HINT = "start it with `lxmgr daemon start`"
LOCAL = "local"  # the built-in server remote: this host's lxmgrd
DEFAULT_PROJECT = "default"  # LXD's project of a request that names none


class App:
    """Shared state of one CLI invocation (C12)."""

    def __init__(self, *, debug: bool = False, socket_path: str | None = None,
                 client: Client | None = None, project: str | None = None) -> None:
        self.debug = debug
        self.socket_path = socket_path
        self.remote: str | None = None  # the server remote chosen by a REMOTE: prefix
        self.project_override = project or None  # --project (lxc's ProjectOverride)
        self._client = client
        self._client_ready = False  # its project set (on first use: after --project)
        if client is not None:
            self.remote = LOCAL

    @property
    def client(self) -> Client:
        """The client of the server this invocation works on (REMOTE: or the default), in
        this invocation's project."""
        if self._client is None:
            self._client = self._connect()
        if not self._client_ready:
            self._client.project = self.project
            self._client_ready = True
        return self._client

    def _connect(self) -> Client:
        trace = (lambda line: print(f"DEBUG: {line}", file=sys.stderr)) if self.debug else None
        if self.server == LOCAL:
            from lxmgr.client import Client

            return Client(self.socket_path, trace=trace)
        from lxmgr.cli.remotes import client_for

        client: Client = client_for(self.server, trace=trace)
        return client

    @cached_property
    def project(self) -> str | None:
        """The project requests go to: --project, else the current project of the server
        remote (`lxmgr project switch`); None when that is `default` or unset, as lxc sends
        a remote's project only when it is another one (lxc/config/remote.go)."""
        if self.project_override:
            return self.project_override
        stored = stored_project(self.server)
        return stored if stored and stored != DEFAULT_PROJECT else None

    @property
    def current_project(self) -> str:
        """The project this invocation works in, by name (`default` when none is chosen)."""
        return self.project or DEFAULT_PROJECT

    @cached_property
    def default_remote(self) -> str:
        """`lxmgr remote switch`'s choice; --socket and $LXMGR_SOCKET mean local."""
        if self.socket_path or not default_remote_switched():
            return LOCAL
        from lxmgr.cli.remotes import default_remote

        return default_remote()

    @property
    def server(self) -> str:
        """The server remote this invocation works on."""
        return self.remote or self.default_remote

    def target(self, ref: str) -> str:
        """'REMOTE:NAME' -> NAME, choosing REMOTE (a server remote) for this invocation; a
        bare NAME is on the default remote. All names of one command are on one remote."""
        remote, sep, rest = ref.partition(":")
        if not sep:
            remote, rest = self.default_remote, ref
        elif not remote:
            raise InvalidConfig(f"Invalid name '{ref}': expected [REMOTE:]NAME")
        if self.remote is None:
            if remote != LOCAL:
                from lxmgr.cli.remotes import server_remote

                server_remote(remote)  # NotFound, or an image server: InvalidConfig
            if self._client is not None and remote != self.default_remote:
                raise InvalidConfig(f"'{ref}': this command already works on "
                                    f"'{self.default_remote}'")
            self.remote = remote
        elif remote != self.remote:
            raise InvalidConfig(f"'{ref}' is on remote '{remote}' but this command works on "
                                f"'{self.remote}': one command works on one remote")
        return rest

    @cached_property
    def err_console(self) -> Any:
        from rich.console import Console

        return Console(stderr=True)

    def abort(self, message: str, code: int = 1) -> NoReturn:
        """Print `Error: message` on one line to stderr and exit with code."""
        print(f"Error: {message}", file=sys.stderr, flush=True)
        raise SystemExit(code)

    def echo(self, text: str = "") -> None:
        sys.stdout.write(f"{text}\n")
        sys.stdout.flush()

    def query(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.client.query(method, path, **kwargs)

    def instance_path(self, name: str, *rest: str) -> str:
        from lxmgr.client.rest import quote

        return "/".join([f"/1.0/instances/{quote(name, safe='')}", *rest])

    def operate(self, method: str, path: str, *, body: Any = None,
                params: dict[str, Any] | None = None, label: str = "") -> dict[str, Any]:
        """Run an async API action to its end; show progress while its metadata has any.
        Ctrl-C cancels the operation when it can be (as lxc's CancelableWait does)."""
        op = self.client.operate(method, path, body=body, params=params, wait=False)
        if "id" not in op:  # answered synchronously
            return op
        interrupts = 0
        while True:
            try:
                return self._wait(op, label)
            except KeyboardInterrupt:
                interrupts += 1
                self._cancel(op, interrupts)

    def _wait(self, op: dict[str, Any], label: str) -> dict[str, Any]:
        op = self.client.wait_operation(op, timeout=_POLL_SECONDS)
        if op.get("status_code") in (200, 400, 401):
            return op
        if not sys.stderr.isatty():
            return self._follow_plain(op, label)
        return self._follow(op, label)

    def _cancel(self, op: dict[str, Any], interrupts: int) -> None:
        """Ctrl-C while waiting: cancel the operation and exit once it ended (so what it
        made is gone); when it cannot be cancelled, a third Ctrl-C leaves it running."""
        from lxmgr.client.rest import quote

        try:
            self.client.query("DELETE", f"/1.0/operations/{quote(str(op['id']))}")
        except LxmgrError as err:
            if interrupts >= 3:
                self.abort("User signaled us three times, exiting. The remote operation "
                           "will keep running", code=130)
            print(f"{err} (interrupt two more times to force)", file=sys.stderr, flush=True)
            return
        try:
            self.client.wait_operation(op, timeout=120)
        except LxmgrError:
            pass
        self.abort("Remote operation canceled by user", code=130)

    def _poll(self, op: dict[str, Any]) -> dict[str, Any]:
        """The operation after waiting up to _POLL_SECONDS for it to end."""
        started = time.monotonic()
        op = self.client.wait_operation(op, timeout=_POLL_SECONDS)
        if time.monotonic() - started < 0.2 and op.get("status_code") not in (200, 400, 401):
            time.sleep(0.5)  # a server that ignores the wait timeout: do not spin
        return op

    def _follow_plain(self, op: dict[str, Any], label: str) -> dict[str, Any]:
        """Wait without a terminal: one line on stderr each time the stage changes."""
        shown = ""
        while op.get("status_code") not in (200, 400, 401):
            text, _ = progress_of(op)
            stage = " ".join(w for w in text.split() if not w.rstrip(")").endswith("%"))
            if stage and stage != shown:
                print(" ".join(filter(None, [label, stage])), file=sys.stderr, flush=True)
                shown = stage
            op = self._poll(op)
        return op

    def _follow(self, op: dict[str, Any], label: str) -> dict[str, Any]:
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

        columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn())
        with Progress(*columns, console=self.err_console, transient=True) as progress:
            task = progress.add_task(label or str(op.get("description") or "Working"),
                                     total=None)
            while op.get("status_code") not in (200, 400, 401):
                text, percent = progress_of(op)
                progress.update(task, description=" ".join(filter(None, [label, text])),
                                total=100 if percent is not None else None,
                                completed=percent or 0)
                op = self._poll(op)
        return op


def config_dir() -> str:
    """The CLI's own directory (remotes, certificates): $LXMGR_CONF, else
    $XDG_CONFIG_HOME/lxmgr, else ~/.config/lxmgr."""
    import os

    return os.environ.get("LXMGR_CONF") or os.path.join(
        os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config"), "lxmgr")


def _remotes_file() -> bytes:
    """The remotes file (lxmgr.cli.remotes.config_path), b'' when there is none."""
    import os

    try:
        with open(os.path.join(config_dir(), "remotes.yaml"), "rb") as f:
            return f.read(1 << 20)
    except OSError:
        return b""


def default_remote_switched() -> bool:
    """Whether `lxmgr remote switch` chose another server than local: a `default-remote`
    line in the remotes file (lxmgr.cli.remotes.config_path) unless --socket/$LXMGR_SOCKET.
    No yaml import (the CLI's fast path asks): a line scan of a small file."""
    import os

    if os.environ.get("LXMGR_SOCKET"):
        return False
    for line in _remotes_file().splitlines():
        if line.startswith(b"default-remote:"):
            return line.partition(b":")[2].strip().strip(b"'\"") not in (b"", LOCAL.encode())
    return False


def stored_project(remote: str) -> str:
    """The current project of a server remote (`lxmgr project switch`), '' when none is
    stored. The line scan of scan_project() when it can tell (the fast path never needs
    more), else the remotes file parsed as YAML."""
    found = scanned_project(remote)
    if found is not None:
        return found
    from lxmgr.cli.remotes import current_project

    return current_project(remote)


def scanned_project(remote: str) -> str | None:
    """scan_project() of the remotes file."""
    return scan_project(_remotes_file(), remote)


# Plain YAML scalars that are not the string they spell (null, booleans): left to the parser.
_YAML_SPECIAL = frozenset(("null", "true", "false", "yes", "no", "on", "off", "y", "n"))


def _plain_name(value: str) -> bool:
    """Whether an unquoted YAML value is surely the string it spells: ASCII, a letter first
    (no number, date or .inf), then letters, digits and _.:@+- (what yaml.safe_dump leaves
    unquoted), and not null or a boolean."""
    return value[:1].isascii() and value[:1].isalpha() and value.lower() not in \
        _YAML_SPECIAL and all(c.isascii() and (c.isalnum() or c in "_.:@+-") for c in value)


def scan_project(data: bytes, remote: str) -> str | None:
    """The project stored for remote in the remotes file's text, by a line scan (no yaml
    import: the fast path runs without site-packages): '' when none is, None when the text
    holds a project in a form this scan does not read for sure (flow style, escapes, tags,
    comments...). Reads the block style lxmgr.images.remotes writes (yaml.safe_dump):

        remotes:
          local:
            project: web
    """
    if b"project" not in data:
        return ""
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return None
    section, entry, found = "", None, ""
    for line in text.splitlines():
        body = line.lstrip(" ")
        if not body or body.startswith("#"):
            continue
        indent = len(line) - len(body)
        key, colon, value = body.partition(":")
        key, value = _scalar(key.strip()), value.strip()
        if not colon or key is None or (value and value[0] in "{[&*!|>"):
            if "project" in line:
                return None
            continue
        if indent == 0:
            section, entry = key, None
        elif section == "remotes" and indent == 2:
            entry = key
        elif section == "remotes" and indent == 4 and key == "project":
            name = _scalar(value)
            if not name or (value[0] not in "'\"" and not _plain_name(value)):
                return None
            if entry == remote:
                found = name
        elif key == "project":
            return None
    return found


def _scalar(text: str) -> str | None:
    """A YAML scalar as a string: plain, or quoted without escapes; None otherwise."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        inner = text[1:-1]
        return None if ("\\" in inner or text[0] in inner) else inner
    if not text or text[0] in "'\"" or " #" in text or "\t" in text:
        return None if text else ""
    return text


def progress_of(op: dict[str, Any]) -> tuple[str, float | None]:
    """The text and percentage of an operation's *_progress metadata ('' and None if none)."""
    meta = op.get("metadata") or {}
    for key, value in meta.items() if isinstance(meta, dict) else ():
        if not key.endswith("_progress"):
            continue
        if isinstance(value, dict):
            percent = value.get("percent")
            text = str(value.get("stage") or value.get("text") or "")
            return text or key, float(percent) if isinstance(percent, int | float) else None
        if isinstance(value, int | float):
            return "", float(value)
        text = str(value)
        return text, _percent_in(text)
    return "", None


def _percent_in(text: str) -> float | None:
    """The first 'NN%' in text (LXD's progress strings read 'rootfs: 45% (12MB/s)')."""
    for word in text.replace("(", " ").split():
        if word.endswith("%"):
            try:
                return float(word[:-1])
            except ValueError:
                continue
    return None


def describe_error(err: LxmgrError) -> str:
    """The one-line message for an error; a missing daemon gets the start hint."""
    from lxmgr.client import DaemonNotRunning

    if isinstance(err, DaemonNotRunning):
        return f"lxmgrd is not running (socket {err.socket_path}): {DAEMON_HINT}"
    return str(err) or type(err).__name__


def describe_os_error(err: OSError) -> str:
    """One line for an OSError the client let through (socket permissions and the like)."""
    return f"{err.strerror or err}" + (f": {err.filename}" if err.filename else "")

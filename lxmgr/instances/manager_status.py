"""Instance status for the Manager: status() asks the supervisor; status_fast() is cheap
enough for every instance of every listing.

The supervisor rewrites state.json (temp file + rename) on every status change. status_fast
parses each version of that file once (keyed by inode, mtime, ctime and size) and trusts it
only while its supervisor is alive, which a pidfd held per supervisor answers with one
poll(2) for all of them: no round trip, no /proc read per call, and a pid cannot be
reused while we hold its pidfd. Synchronous; safe from several of the daemon's worker
threads at once. Part of `instances`: never imports the daemon or front ends.
"""

from __future__ import annotations

import json
import os
import select
import threading
import time

from lxmgr import paths
from lxmgr.errors import LxmgrError
from lxmgr.supervisor import control, protocol

LIVE = ("Running", "Frozen", "Stopping")
SUPERVISOR_COMM = "lxmgr-sup"
# A state.json younger than this is parsed again on every read: within one timestamp tick
# a rewrite of the same size into a recycled inode would look unchanged.
RACY_NS = 1_000_000_000
NO_SOCKET = -1  # a pid for "no control socket": Stopped, as status() would find
MAX_STATES = 4096  # parsed state.json versions kept (stale names are dropped wholesale)

# A supervisor must have started before it wrote its state.json; a pid that started later
# is a recycled one (timestamps: 10 ms clock ticks and coarse mtimes, hence the slack).
START_SLACK_NS = 100_000_000
CLK_TCK = os.sysconf("SC_CLK_TCK")

StatKey = tuple[int, int, int, int]
State = tuple[str, int, int]  # status, supervisor pid, state.json's mtime (ns)


def _supervisor_start(pid: int) -> int | None:
    """When pid started (ns of CLOCK_BOOTTIME) if it is named like a supervisor, else None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    comm, _, rest = data.partition(b" (")[2].rpartition(b") ")
    if comm != SUPERVISOR_COMM.encode():
        return None
    return int(rest.split()[19]) * 1_000_000_000 // CLK_TCK  # field 22, starttime


class SupervisorWatch:
    """Parsed state.json files and pidfds of live supervisors, shared by all threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # pidfds are only polled and closed under it
        self._pidfds: dict[int, int] = {}  # supervisor pid -> pidfd
        self._started: dict[int, int] = {}  # supervisor pid -> its start (boottime ns)
        self._pids: dict[int, int] = {}  # pidfd -> supervisor pid
        self._poller = select.poll()  # every pidfd we hold: readable once its process exited
        self._states: dict[str, tuple[StatKey, State]] = {}

    def close(self) -> None:
        with self._lock:
            for pidfd in self._pids:
                os.close(pidfd)
            self._pids.clear()
            self._pidfds.clear()
            self._started.clear()
            self._poller = select.poll()

    def read_state(self, path: str) -> State:
        """(status, supervisor pid, mtime) of a state.json; OSError/ValueError if unreadable.
        A rename between our stat and open at worst files newer content under the older
        key, which the next stat no longer matches: never a stale answer."""
        st = os.stat(path)
        key = (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)
        cached = self._states.get(path)
        if cached is not None and cached[0] == key:
            return cached[1]
        with open(path, "rb") as f:
            data = json.loads(f.read())
        state = (str(data.get("status", "")), int(data.get("supervisor_pid") or 0),
                 st.st_mtime_ns)
        if time.time_ns() - st.st_mtime_ns > RACY_NS:
            if len(self._states) >= MAX_STATES:
                self._states.clear()
            self._states[path] = (key, state)
        return state

    def alive(self, pids: set[int]) -> dict[int, int]:
        """Those of pids that are running lxmgr supervisors, with their start times: one
        poll(2) for all of them (which also drops the pidfds of every one that exited)."""
        with self._lock:
            for pid in pids - self._pidfds.keys():
                self._watch(pid)
            for pidfd, _events in self._poller.poll(0):
                pid = self._pids.pop(pidfd)
                del self._pidfds[pid], self._started[pid]
                self._poller.unregister(pidfd)
                os.close(pidfd)
            return {pid: self._started[pid] for pid in pids if pid in self._pidfds}

    def _watch(self, pid: int) -> None:
        """Hold a pidfd for pid if it is a supervisor. Name and start time are read after
        the pidfd is open, so the poll that follows tells whether they were its process's."""
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:  # ESRCH: gone
            return
        started = _supervisor_start(pid)
        if started is None:
            os.close(pidfd)
            return
        self._pidfds[pid], self._pids[pidfd], self._started[pid] = pidfd, pid, started
        self._poller.register(pidfd, select.POLLIN)


class StatusMixin:
    """Manager's status queries; needs `store`, `socket_path()` and `supervisors`."""

    supervisors: SupervisorWatch

    def status(self, name: str) -> str:
        """Running, Frozen, Stopping or Stopped: one question to the supervisor, no usage."""
        self.store.get(name)  # type: ignore[attr-defined]
        try:
            return str(control.call(self.socket_path(name),  # type: ignore[attr-defined]
                                    protocol.GET_STATE, wait=5)["status"])
        except control.NotRunning:
            return "Stopped"

    def status_fast(self, name: str) -> str:
        """status() for listings: what the supervisor last wrote to state.json while it is
        alive, Stopped without its control socket (as status() finds too), else the
        supervisor's own answer (it is starting, or state.json is missing)."""
        status = self._recorded(str(paths.instances_dir()), [name])[0]
        return status if status is not None else self.status(name)

    def statuses_fast(self, names: list[str]) -> list[str | None]:
        """status_fast() of each name, None where status() fails (an instance deleted
        meanwhile); the supervisors are polled once for all of them."""
        out = self._recorded(str(paths.instances_dir()), names)
        for i, status in enumerate(out):
            if status is None:
                try:
                    out[i] = self.status(names[i])
                except LxmgrError:
                    pass
        return out

    def _recorded(self, base: str, names: list[str]) -> list[str | None]:
        """What the files say: Stopped without a control socket, a live status from
        state.json if its supervisor runs, else None (ask the supervisor)."""
        out: list[str | None] = []
        recorded: list[State | None] = []
        for name in names:
            directory = f"{base}/{name}"
            entry: State | None = None
            if not os.path.exists(f"{directory}/supervisor.sock"):
                entry = ("Stopped", NO_SOCKET, 0)
            else:
                try:
                    entry = self.supervisors.read_state(f"{directory}/state.json")
                except (OSError, ValueError, TypeError, AttributeError):
                    pass
            recorded.append(entry)
        live = self.supervisors.alive({e[1] for e in recorded
                                       if e is not None and e[0] in LIVE and e[1]})
        # state.json's mtime is wall-clock time, a process start boottime: bring them together.
        boot_offset = time.clock_gettime_ns(time.CLOCK_BOOTTIME) - time.time_ns()
        for entry in recorded:
            if entry is not None and (entry[1] == NO_SOCKET or entry[0] in LIVE and (
                    live.get(entry[1], 1 << 62) <= entry[2] + boot_offset + START_SLACK_NS)):
                out.append(entry[0])  # else its supervisor is gone, or the pid is recycled
            else:
                out.append(None)
        return out

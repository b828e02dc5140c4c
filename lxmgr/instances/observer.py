"""The engine's watch on its containers: state changes nobody asked the daemon for.

A container powers off, reboots or crashes from inside; its supervisor is killed; the host
goes down with everything on it. The supervisor records each change in state.json (status,
its pid, `boots` since it started and the `exit` of the last init: stop, poweroff, reboot,
crash), and the daemon polls those files (lxmgr.instances.lifecycle, every few seconds, and
before a start or delete of the instance). Each instance's last observation is kept in
`observed.json` beside it, so a change is announced exactly once, also when it happened
while the daemon was down:
- a reboot from inside: instance-shutdown then instance-restarted, and a stop from inside
  (poweroff, crash): instance-shutdown, as LXD's onStop does for an instance-initiated
  stop (lxd/instance/drivers/driver_lxc.go); an ephemeral instance is deleted then
  (instance-deleted);
- a supervisor gone while its state.json says the container runs (killed, or the host went
  down): what it leaves (the container's processes, cgroup, DNAT rules, IFB devices, its
  socket) is taken away and instance-stopped announced; the state becomes Stopped with exit
  `lost`.
A stop, restart or start the daemon made is announced by the code that made it; here it
only moves the observation on.

Part of `instances`: never imports the daemon or front ends.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lxmgr import paths
from lxmgr.errors import LxmgrError, NotFound
from lxmgr.instances.manager_status import START_SLACK_NS, SupervisorWatch
from lxmgr.instances.store import write_atomic

log = logging.getLogger(__name__)

LIVE = ("Running", "Frozen", "Stopping")
OBSERVED = "observed.json"
REQUESTED = ("stop",)  # exits the daemon asked for (announced by whoever asked)
LOST = "lost"
MAX_REBOOTS_ANNOUNCED = 16  # a boot loop seen late is not replayed event by event


@dataclass
class Observation:
    """What a state.json said: its supervisor, boots, status and last init exit."""

    supervisor_pid: int = 0
    boots: int = 0
    status: str = "Stopped"
    exit: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Observation:
        return cls(int(data.get("supervisor_pid") or 0), int(data.get("boots") or 0),
                   str(data.get("status") or "Stopped"), str(data.get("exit") or ""))


class Observer:
    """Announces the changes of state no API call made; explicit collaborators:
    `hold(name)` an instance's lock, `ephemeral(name)` whether it is, `responds(name)`
    whether its supervisor answers on its control socket, `announce(action, name)` the
    event, `reap(name)` what a lost supervisor left behind, `delete_ephemeral(name)` the
    delete of an ephemeral instance that stopped by itself."""

    def __init__(self, *, watch: SupervisorWatch,
                 hold: Callable[[str], AbstractContextManager[Any]],
                 try_hold: Callable[[str], AbstractContextManager[bool]],
                 ephemeral: Callable[[str], bool], responds: Callable[[str], bool],
                 announce: Callable[[str, str], None], reap: Callable[[str], None],
                 delete_ephemeral: Callable[[str], None]) -> None:
        self.watch = watch
        self.hold = hold
        self.try_hold = try_hold
        self.ephemeral = ephemeral
        self.responds = responds
        self.announce = announce
        self.reap = reap
        self.delete_ephemeral = delete_ephemeral
        self.expected: set[str] = set()  # stops the daemon asked of supervisors without `exit`

    def observe_all(self, names: list[str]) -> None:
        """Observe each instance that no operation holds now (an operation holding one
        runs its own observation where it matters: a start, a delete); the next round
        takes the others."""
        for name in names:
            try:
                with self.try_hold(name) as free:
                    if free:
                        self.observe(name)
            except NotFound:
                continue  # deleted meanwhile
            except (LxmgrError, OSError) as err:
                log.warning("Watching instance '%s': %s", name, err)

    def observe(self, name: str) -> None:
        """Announce what changed in instance `name` since its last observation."""
        with self.hold(name):
            directory = paths.instance_dir(name)
            if not directory.is_dir():
                return
            current, written = _read_state(directory)
            last = _read_observed(directory)
            if current is None:
                return  # never started
            # Lost: no such supervisor process, and (to be sure before its container is
            # taken away) nothing answers on its control socket.
            lost = current.status in LIVE and not self._alive(
                current.supervisor_pid, written) and not self.responds(name)
            if last is None and not lost:
                _save(directory, current)  # the first look: nothing to compare with
                return
            if lost:
                self._lost(name, current)
                return
            assert last is not None
            if current == last:
                return
            if current.supervisor_pid != last.supervisor_pid:
                # Another supervisor since: the daemon started it (and announced that),
                # so it began where any start begins: its first boot, running.
                last = Observation(current.supervisor_pid, min(current.boots, 1), "Running")
            _save(directory, current)
            for _ in range(max(0, min(current.boots - last.boots, MAX_REBOOTS_ANNOUNCED))):
                self.announce("instance-shutdown", name)  # LXD's onStop, target reboot
                self.announce("instance-restarted", name)
            if current.status != "Stopped" or last.status not in LIVE:
                return
            by_itself = self._by_itself(name, current)
            self.expected.discard(name)
            if by_itself:
                self.announce("instance-shutdown", name)
                if self.ephemeral(name):
                    self.delete_ephemeral(name)

    def _by_itself(self, name: str, state: Observation) -> bool:
        """Whether the container stopped without the daemon asking (poweroff, crash, a
        failed reboot); a supervisor of an older lxmgr records no exit: then only the
        stops this daemon asked for are its own."""
        if state.exit:
            return state.exit not in REQUESTED
        return name not in self.expected

    def _lost(self, name: str, current: Observation) -> None:
        log.warning("Instance '%s': its supervisor (pid %d) is gone; cleaning up after it",
                    name, current.supervisor_pid)
        self.reap(name)
        gone = Observation(current.supervisor_pid, current.boots, "Stopped", LOST)
        directory = paths.instance_dir(name)
        state = {"status": "Stopped", "pid": 0, "started_at": 0,
                 "supervisor_pid": current.supervisor_pid, "boots": current.boots,
                 "exit": LOST}
        write_atomic(directory / "state.json", json.dumps(state), 0o644)
        _save(directory, gone)
        self.expected.discard(name)
        self.announce("instance-stopped", name)
        if self.ephemeral(name):
            self.delete_ephemeral(name)

    def _alive(self, pid: int, written_ns: int) -> bool:
        """Whether supervisor pid, which wrote its state.json at written_ns (wall clock),
        still runs: not a recycled pid (it must have started before it wrote)."""
        if pid <= 0:
            return False
        started = self.watch.alive({pid}).get(pid)
        boot_offset = time.clock_gettime_ns(time.CLOCK_BOOTTIME) - time.time_ns()
        return started is not None and started <= written_ns + boot_offset + START_SLACK_NS


def _read_state(directory: os.PathLike[str]) -> tuple[Observation | None, int]:
    """state.json as an Observation and its mtime; None when missing or unreadable."""
    path = os.path.join(directory, "state.json")
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            data = json.loads(f.read())
        return Observation.from_dict(data), st.st_mtime_ns
    except (OSError, ValueError, TypeError, AttributeError):
        return None, 0


def _read_observed(directory: os.PathLike[str]) -> Observation | None:
    try:
        with open(os.path.join(directory, OBSERVED), "rb") as f:
            return Observation.from_dict(json.loads(f.read()))
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def _save(directory: os.PathLike[str], state: Observation) -> None:
    write_atomic(Path(directory) / OBSERVED, json.dumps(asdict(state)))

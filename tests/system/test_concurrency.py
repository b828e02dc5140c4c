"""Concurrency (issue 14): 4 API clients x 50 mixed operations on a real lxmgrd while its
autostart and snapshot schedule run, then the host is compared with what the API says.

The clients share a pool of 5 names, so their creates, starts, execs, stops, snapshots,
restores, renames and deletes collide all the time; three rounds behind a barrier collide on
purpose (two creates of one name, two starts of one instance, two stops, two deletes). Every
answer must be a success or a 4xx (a collision's refusal: 400 wrong state, 404 gone, 409 taken),
never a 5xx nor an operation failing with "Internal error". Afterwards:

- each instance the API says is Running has exactly one supervisor (the process named
  lxmgr-sup, found by the instance files it holds open) and exactly one process in its
  cgroup that is PID 1 of a PID namespace, state.json's pid; a Stopped one has neither;
- nothing of a name the API does not list: no instance dir, volume, snapshot dir, cgroup or
  supervisor; each instance's snapshot dirs are its API snapshots; no temp or staging file.

The autostart runs during the storm: the daemon is restarted once the first instances exist,
with boot.autostart on them, so its autostart (and the scheduled snapshots that follow it in
the lifecycle loop, lxmgr.instances.lifecycle) races the clients. LXMGR_CONCURRENCY_SEED
picks another sequence of operations (the default one is fixed, so CI runs one sequence).
"""

from __future__ import annotations

import collections
import http.client
import json
import os
import random
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.system.conftest import Daemon, running_daemon

pytestmark = [pytest.mark.kernel, pytest.mark.system]

CLIENTS = 4
STEPS = 50
POOL = ("p0", "p1", "p2", "p3", "p4")
SEED = int(os.environ.get("LXMGR_CONCURRENCY_SEED") or "14")
# Every minute, even stopped, named apart from the clients' snapshots (c<client>s<step>).
SCHEDULE = {"snapshots.schedule": "* * * * *", "snapshots.schedule.stopped": "true",
            "snapshots.pattern": "auto%d"}
WEIGHTS = {"create": 20, "start": 16, "exec": 14, "stop": 12, "snapshot": 12, "restore": 8,
           "rename": 10, "delete": 8}
# Rounds behind a barrier: at these steps every client does its part of one collision.
ROUNDS = {0: "first", 20: "second", 40: "third"}
# The clients' random steps stop after this many seconds, should operations be slow (the
# rounds still run): the test stays within its time whatever the daemon does.
STORM_BUDGET = 90.0


class Client:
    """One API client with its own keep-alive connection to the unix socket."""

    def __init__(self, socket_path: str, ident: str) -> None:
        self.socket_path = socket_path
        self.ident = ident
        self.conn: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        path = self.socket_path

        class Conn(http.client.HTTPConnection):
            def connect(self) -> None:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.settimeout(120)
                self.sock.connect(path)

        return Conn("lxmgr")

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON body); one reconnection when the server closed a kept-alive
        connection before this request (nothing of it was sent then)."""
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = self._connect()
            try:
                data = json.dumps(body).encode() if body is not None else None
                headers = {"Content-Type": "application/json"} if data is not None else {}
                self.conn.request(method, urllib.parse.quote(path, safe="/?=&"), body=data,
                                  headers=headers)
                resp = self.conn.getresponse()
                raw = resp.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if attempt == 2:
                    raise
                continue
            try:
                return resp.status, json.loads(raw)
            except ValueError:
                return resp.status, {"error": raw[:200].decode(errors="replace")}
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class Outcome:
    """What one API call came to: "ok", or the HTTP status (a sync refusal or the operation's
    err_code) of its failure, with the message."""

    def __init__(self, status: int | str, message: str = "", result: Any = None) -> None:
        self.status = status
        self.message = message
        self.result = result
        self.took = 0.0
        self.at = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def bad(self) -> bool:
        """A 5xx, an internal error, or a failure that does not say what it is."""
        if self.ok or self.status in NOTES or str(self.status).startswith("exec-returned-"):
            return False
        return not isinstance(self.status, int) or self.status >= 500 or \
            "Internal error" in self.message or "Traceback" in self.message


def call(client: Client, method: str, path: str, body: Any = None) -> Outcome:
    """One call; an operation is waited for and judged by its end."""
    status, resp = client.request(method, path, body)
    if status >= 400 or resp.get("type") == "error":
        return Outcome(status if status >= 400 else "error-envelope-with-2xx",
                       str(resp.get("error", "")))
    if resp.get("type") != "async":
        return Outcome("ok", result=resp.get("metadata"))
    op_url = resp["operation"]
    status, waited = client.request("GET", f"{op_url}/wait?timeout=120")
    if status != 200:
        return Outcome(status, f"wait for {op_url}: {waited.get('error', '')}")
    op = waited["metadata"]
    if op["status"] == "Success":
        return Outcome("ok", result=op.get("metadata"))
    if op["status"] == "Running":
        return Outcome("still-running-after-120s", op.get("description", ""))
    return Outcome(op.get("err_code") or "failure-without-err_code", op.get("err", ""))


# Outcomes that are neither a success nor a refusal, but fine: a restore found no snapshot to
# restore (nothing was asked), a command was killed by a stop racing it.
NOTES = ("no-snapshot",)
Log = list[tuple[str, int, str, str, Outcome]]  # client, step, action, name, outcome


class Storm:
    """The clients' shared record and the barrier of the deliberate collisions."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.barrier = threading.Barrier(CLIENTS, timeout=180)
        self.lock = threading.Lock()
        self.log: Log = []
        self.rounds: dict[str, list[tuple[str, Outcome]]] = collections.defaultdict(list)
        self.errors: list[str] = []
        self.scheduled_at: float | None = None
        self.started = time.monotonic()
        self.skipped = 0
        self.twin_checks: list[tuple[list[int], list[int]]] = []

    def record(self, client: Client, step: int, action: str, name: str,
               outcome: Outcome) -> Outcome:
        outcome.took = time.monotonic() - outcome.at
        with self.lock:
            self.log.append((client.ident, step, action, name, outcome))
        return outcome

    # -- the operations ------------------------------------------------------------------------

    def create(self, client: Client, name: str, config: dict[str, str] | None = None) -> Outcome:
        return call(client, "POST", "/1.0/instances", {
            "name": name, "source": {"type": "image", "alias": "debian"},
            "config": {**SCHEDULE, **(config or {})}})

    def start(self, client: Client, name: str) -> Outcome:
        return call(client, "PUT", f"/1.0/instances/{name}/state", {"action": "start"})

    def stop(self, client: Client, name: str, force: bool = True) -> Outcome:
        return call(client, "PUT", f"/1.0/instances/{name}/state",
                    {"action": "stop", "force": force, "timeout": 5})

    def exec(self, client: Client, name: str) -> Outcome:
        outcome = call(client, "POST", f"/1.0/instances/{name}/exec", {"command": ["true"]})
        if outcome.ok and (outcome.result or {}).get("return") != 0:
            # A stop racing the command may kill it: counted apart, not a failure.
            return Outcome(f"exec-returned-{(outcome.result or {}).get('return')}")
        return outcome

    def snapshot(self, client: Client, name: str, snap: str) -> Outcome:
        return call(client, "POST", f"/1.0/instances/{name}/snapshots", {"name": snap})

    def restore(self, client: Client, name: str, rng: random.Random) -> Outcome:
        status, resp = client.request("GET", f"/1.0/instances/{name}/snapshots")
        if status != 200:
            return Outcome(status, str(resp.get("error", "")))
        snaps = [url.rsplit("/", 1)[-1] for url in resp["metadata"]]
        if not snaps:
            return Outcome("no-snapshot")
        return call(client, "PUT", f"/1.0/instances/{name}", {"restore": rng.choice(snaps)})

    def rename(self, client: Client, name: str, new: str) -> Outcome:
        return call(client, "POST", f"/1.0/instances/{name}", {"name": new})

    def delete(self, client: Client, name: str, force: bool) -> Outcome:
        return call(client, "DELETE", f"/1.0/instances/{name}" + ("?force=1" if force else ""))

    def random_step(self, client: Client, step: int, rng: random.Random) -> None:
        action = rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]
        name = rng.choice(POOL)
        at = time.monotonic()
        if action == "create":
            outcome = self.create(client, name)
        elif action == "start":
            outcome = self.start(client, name)
        elif action == "exec":
            outcome = self.exec(client, name)
        elif action == "stop":
            outcome = self.stop(client, name, force=rng.random() < 0.8)
        elif action == "snapshot":
            outcome = self.snapshot(client, name, f"{client.ident}s{step}")
        elif action == "restore":
            outcome = self.restore(client, name, rng)
        elif action == "rename":
            new = rng.choice([n for n in POOL if n != name])
            outcome = self.rename(client, name, new)
            name = f"{name}->{new}"
        else:
            outcome = self.delete(client, name, force=rng.random() < 0.7)
        outcome.at = at
        self.record(client, step, action, name, outcome)

    # -- the deliberate collisions -------------------------------------------------------------

    def collide(self, client: Client, index: int, round_name: str) -> None:
        """Clients 0 and 1 do one thing to one name at the same moment, 2 and 3 another."""
        plan: dict[str, tuple[Callable[[], Outcome], str]] = {
            # Two creates of one name; two starts of one stopped instance.
            "first": (lambda: self.create(client, "dupc"), "create dupc") if index < 2 else
                     (lambda: self.start(client, "twin"), "start twin"),
            # Two starts of dupc (made in the first round, stopped); two stops of twin.
            "second": (lambda: self.start(client, "dupc"), "start dupc") if index < 2 else
                      (lambda: self.stop(client, "twin"), "stop twin"),
            # Two deletes of running dupc; twin started twice again.
            "third": (lambda: self.delete(client, "dupc", force=True), "delete dupc")
                     if index < 2 else (lambda: self.start(client, "twin"), "start twin"),
        }
        action, label = plan[round_name]
        self.barrier.wait()
        at = time.monotonic()
        outcome = action()
        outcome.at, outcome.took = at, time.monotonic() - at
        with self.lock:
            self.rounds[f"{round_name}: {label}"].append((client.ident, outcome))
            self.log.append((client.ident, -1, label, round_name, outcome))
        self.barrier.wait()
        if index == 2 and label == "start twin":  # both starts answered: one container
            self.twin_checks.append(instance_processes(self.daemon, "twin"))

    def watch_schedule(self, done: threading.Event) -> None:
        """Until the clients are done: note when sched's first scheduled snapshot shows."""
        client = Client(self.daemon.socket, "watch")
        try:
            while not done.is_set():
                status, resp = client.request("GET", "/1.0/instances/sched/snapshots")
                if status == 200 and any(url.rsplit("/", 1)[-1].startswith("auto")
                                         for url in resp["metadata"]):
                    self.scheduled_at = time.monotonic()
                    return
                done.wait(0.2)
        finally:
            client.close()

    def run_client(self, index: int) -> None:
        client = Client(self.daemon.socket, f"c{index}")
        rng = random.Random(SEED * 100 + index)
        try:
            for step in range(STEPS):
                if step in ROUNDS:
                    self.collide(client, index, ROUNDS[step])
                if time.monotonic() - self.started > STORM_BUDGET:
                    with self.lock:
                        self.skipped += 1
                    continue
                self.random_step(client, step, rng)
        except BaseException as err:  # noqa: BLE001 - reported by the test, others freed
            self.barrier.abort()
            with self.lock:
                self.errors.append(f"{client.ident}: {type(err).__name__}: {err}")
        finally:
            client.close()


def wait_op(daemon: Daemon, resp: dict[str, Any]) -> None:
    if resp.get("operation"):
        op = daemon.api("GET", f"{resp['operation']}/wait?timeout=120")["metadata"]
        assert op["status"] == "Success", op.get("err")


# -- what the host holds -----------------------------------------------------------------------

def _read(path: str) -> str | None:
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:  # the process or file went meanwhile
        return None


def _nspid(pid: str) -> list[int]:
    for line in (_read(f"/proc/{pid}/status") or "").splitlines():
        if line.startswith("NSpid:"):
            return [int(v) for v in line.split()[1:]]
    return []


def cgroup_processes(base: str) -> dict[str, list[tuple[int, list[int]]]]:
    """instance name -> [(pid, NSpid)] of every host process in a cgroup under base."""
    found: dict[str, list[tuple[int, list[int]]]] = collections.defaultdict(list)
    marker = f"/{base}/"
    for pid in filter(str.isdigit, os.listdir("/proc")):
        text = _read(f"/proc/{pid}/cgroup") or ""
        names = {line.split(marker, 1)[1].split("/")[0] for line in text.splitlines()
                 if marker in line}
        for name in names:
            found[name].append((int(pid), _nspid(pid)))
    return found


def supervisors(root: str) -> dict[int, set[str]]:
    """pid -> instance names whose files it holds open, for each lxmgr-sup process of this
    daemon (its environment names root; a warm one not yet given an instance holds none)."""
    found: dict[int, set[str]] = {}
    prefix = f"{root}/instances/"
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if (_read(f"/proc/{pid}/comm") or "").strip() != "lxmgr-sup":
            continue
        environ = (_read(f"/proc/{pid}/environ") or "").split("\0")
        if f"LXMGR_DIR={root}" not in environ:
            continue  # another daemon's
        names = set()
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith(prefix):
                names.add(target[len(prefix):].split("/")[0])
        found[int(pid)] = names
    return found


def instance_processes(daemon: Daemon, name: str) -> tuple[list[int], list[int]]:
    """(the supervisors holding name's files, the PID 1s in name's cgroup)."""
    depth = len(_nspid("self")) + 1
    inits = [pid for pid, ns in cgroup_processes(daemon.env["LXMGR_CGROUP_BASE"]).get(name, [])
             if len(ns) == depth and ns[-1] == 1]
    return [pid for pid, names in supervisors(daemon.root).items() if name in names], inits


def cgroup_dirs(base: str) -> dict[str, set[str]]:
    """hierarchy mount point -> the instance cgroups under base in it."""
    from lxmgr.cgroups import base as cgroup_base
    from lxmgr.cgroups.detect import detect

    driver = cgroup_base.load(detect(), base=base)
    found = {}
    for h in driver.hierarchies:
        top = driver.path(h)
        found[h.mountpoint] = set(os.listdir(top)) - {"cgroup.procs"} if os.path.isdir(top) \
            else set()
        found[h.mountpoint] = {n for n in found[h.mountpoint]
                               if os.path.isdir(os.path.join(top, n))}
    return found


TEMP = re.compile(r"\.tmp|^\.(export|import|publish|metadata|hosts)-|\.staging|\.new$|"
                  r"\.partial$")


def leftovers(root: str) -> list[str]:
    """Temp and staging files anywhere in the state dir but inside root filesystems and the
    image store."""
    found = []
    for dirpath, dirs, files in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        parts = [] if rel == "." else rel.split(os.sep)
        for entry in [*dirs, *files]:
            if TEMP.search(entry):
                found.append(os.path.join(rel, entry))
        # Not into images, rootfs trees (a volume: storage/<driver>/<name>/..., a snapshot:
        # storage/<driver>/.snapshots/<name>/<snap>/...), nor the logs of exec output.
        if parts[:1] == ["images"] or (len(parts) >= 3 and parts[0] == "storage" and
                                       parts[2] != ".snapshots") or \
                (len(parts) >= 5 and parts[2] == ".snapshots"):
            dirs[:] = []
    return found


def host_view(daemon: Daemon) -> list[str]:
    """What differs between the API and the host; [] when they agree."""
    root, base = daemon.root, daemon.env["LXMGR_CGROUP_BASE"]
    listed = {i["name"]: i for i in daemon.api("GET", "/1.0/instances?recursion=1")["metadata"]}
    running = {n for n, i in listed.items() if i["status"] == "Running"}
    problems = []
    for name, inst in listed.items():
        if inst["status"] not in ("Running", "Stopped"):
            problems.append(f"{name}: status {inst['status']}")
    # PID 1s and every other process, by cgroup.
    depth = len(_nspid("self")) + 1  # a container init: one PID namespace below ours
    procs = cgroup_processes(base)
    for name in sorted(set(procs) | running):
        inits = [pid for pid, ns in procs.get(name, []) if len(ns) == depth and ns[-1] == 1]
        if name not in running:
            if procs.get(name):
                problems.append(f"{name} ({listed.get(name, {}).get('status', 'not listed')}): "
                                f"processes {[p for p, _ in procs[name]]} in its cgroup")
            continue
        state = json.loads(_read(f"{root}/instances/{name}/state.json") or "{}")
        if len(inits) != 1:
            problems.append(f"{name} (Running): PID 1 processes {inits} in its cgroup")
        elif inits[0] != state.get("pid"):
            problems.append(f"{name} (Running): PID 1 is {inits[0]}, state.json says "
                            f"{state.get('pid')}")
    # Supervisors: one per running instance, none for anything else, one warm one at most.
    serving: dict[str, list[int]] = collections.defaultdict(list)
    idle = []
    for pid, names in supervisors(root).items():
        if not names:
            idle.append(pid)
        for name in names:
            serving[name].append(pid)
    if len(idle) > 1:
        problems.append(f"{len(idle)} supervisors without an instance: {idle}")
    for name in sorted(set(serving) | running):
        pids = serving.get(name, [])
        if name in running:
            state = json.loads(_read(f"{root}/instances/{name}/state.json") or "{}")
            if pids != [state.get("supervisor_pid")]:
                problems.append(f"{name} (Running): supervisors {pids}, state.json says "
                                f"{state.get('supervisor_pid')}")
        elif pids:
            problems.append(f"{name} ({listed.get(name, {}).get('status', 'not listed')}): "
                            f"supervisors {pids}")
    for mount, names in cgroup_dirs(base).items():
        if names - running:
            problems.append(f"cgroups of instances not running in {mount}: "
                            f"{sorted(names - running)}")
        if running - names:
            problems.append(f"running instances without a cgroup in {mount}: "
                            f"{sorted(running - names)}")
    # Files: instance dirs, volumes and snapshots of listed instances only.
    instance_dirs = set(os.listdir(f"{root}/instances")) if os.path.isdir(
        f"{root}/instances") else set()
    if instance_dirs - set(listed):
        problems.append(f"instance dirs not listed: {sorted(instance_dirs - set(listed))}")
    for driver_dir in Path(root, "storage").iterdir():
        volumes = {p.name for p in driver_dir.iterdir() if not p.name.startswith(".")}
        if volumes != set(listed):
            problems.append(f"{driver_dir.name} volumes {sorted(volumes)}, "
                            f"instances {sorted(listed)}")
        snapdirs = driver_dir / ".snapshots"
        on_disk = {p.name: {s.name for s in p.iterdir()} for p in snapdirs.iterdir()} \
            if snapdirs.is_dir() else {}
        if set(on_disk) - set(listed):
            problems.append(f"snapshot dirs of instances not listed: "
                            f"{sorted(set(on_disk) - set(listed))}")
        for name in sorted(listed):
            api = {url.rsplit("/", 1)[-1] for url in daemon.api(
                "GET", f"/1.0/instances/{name}/snapshots")["metadata"]}
            if on_disk.get(name, set()) != api:
                problems.append(f"{name}: snapshot dirs {sorted(on_disk.get(name, set()))}, "
                                f"API {sorted(api)}")
    stray = leftovers(root)
    if stray:
        problems.append(f"temp files left: {stray}")
    # The intent journal (lxmgr.instances.intents): each record goes when its work ended.
    journal = Path(root, "intents")
    pending = sorted(p.name for p in journal.iterdir()) if journal.is_dir() else []
    if pending:
        problems.append(f"intent records left: {pending}")
    return problems


def settled(daemon: Daemon, timeout: float = 15) -> list[str]:
    """host_view() once it is [] or, after timeout, its last answer (what a stop or delete
    started tears down on its own, a supervisor exiting, may take a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        problems = host_view(daemon)
        if not problems or time.monotonic() > deadline:
            return problems
        time.sleep(0.5)


def quiet_minute() -> None:
    """Wait until the scheduled snapshots of a minute boundary are behind us (the lifecycle
    loop takes them within seconds of it), so that none is taken while the host is read."""
    while not 5 <= datetime.now().second < 50:
        time.sleep(0.5)


def summary(log: Log) -> str:
    """One line per action and outcome: how many, how long at most, one message."""
    groups: dict[tuple[str, str], list[Outcome]] = collections.defaultdict(list)
    for _, _, action, _, o in log:
        groups[(action, str(o.status))].append(o)
    return "\n".join(f"  {a} {s}: {len(os)} (max {max(o.took for o in os):.2f} s) "
                     f"{os[0].message[:100]}" for (a, s), os in sorted(groups.items()))


def test_four_clients_fifty_mixed_operations() -> None:
    started = time.monotonic()
    with running_daemon("lxcc") as daemon:
        # Before the restart: pool instances and "sched" autostart (sched first, then a
        # second's delay, so the autostart goes on into the storm), "twin" for the
        # deliberate double starts.
        auto = {"boot.autostart": "true"}
        for name, config in (("p0", auto), ("p1", auto), ("p2", auto),
                             ("sched", {**auto, "boot.autostart.priority": "10",
                                        "boot.autostart.delay": "1"}),
                             ("twin", {})):
            wait_op(daemon, daemon.api("POST", "/1.0/instances", {
                "name": name, "source": {"type": "image", "alias": "debian"},
                "config": {**SCHEDULE, **config}}))
        daemon.stop()
        daemon.start()
        storm = Storm(daemon)
        threads = [threading.Thread(target=storm.run_client, args=(i,), name=f"client{i}")
                   for i in range(CLIENTS)]
        done = threading.Event()
        watcher = threading.Thread(target=storm.watch_schedule, args=(done,), name="watch")
        storm_start = storm.started = time.monotonic()
        for t in [*threads, watcher]:
            t.start()
        for t in threads:
            t.join(timeout=600)
        storm_time = time.monotonic() - storm_start
        done.set()
        watcher.join(timeout=60)
        assert not any(t.is_alive() for t in threads), "a client hangs"
        print(f"seed {SEED}: {len(storm.log)} calls in {storm_time:.1f} s ({storm.skipped} "
              f"steps skipped past the budget)\n{summary(storm.log)}")
        if os.environ.get("LXMGR_CONCURRENCY_LOG"):
            with open(os.environ["LXMGR_CONCURRENCY_LOG"], "w") as f:
                for c, s, a, n, o in sorted(storm.log, key=lambda e: e[4].at):
                    f.write(f"{o.at - storm_start:7.2f} {o.took:5.2f} {c} {s:3} {a} {n} "
                            f"{o.status} {o.message}\n")
        assert not storm.errors, storm.errors
        bad = [f"{c} step {s}: {a} {n} -> {o.status} {o.message}"
               for c, s, a, n, o in storm.log if o.bad]
        assert not bad, "\n".join(bad)
        # The deliberate collisions: one create and one delete of a name win; of two starts
        # of one stopped instance at least one does (the other finds it running).
        rounds = {k: [o for _, o in v] for k, v in storm.rounds.items()}
        assert sorted(rounds) == sorted(["first: create dupc", "first: start twin",
                                         "second: start dupc", "second: stop twin",
                                         "third: delete dupc", "third: start twin"]), rounds
        for label, wins in (("first: create dupc", 1), ("third: delete dupc", 1)):
            assert sum(o.ok for o in rounds[label]) == wins, \
                (label, [(o.status, o.message) for o in rounds[label]])
        for label in ("first: start twin", "second: start dupc", "third: start twin"):
            assert any(o.ok for o in rounds[label]), \
                (label, [(o.status, o.message) for o in rounds[label]])
        assert len(storm.twin_checks) == 2, storm.twin_checks
        for sups, inits in storm.twin_checks:
            assert len(sups) == 1 and len(inits) == 1, \
                f"twin after two starts: supervisors {sups}, PID 1s {inits}"
        # The autostart and the schedule ran during the storm: sched runs, and its scheduled
        # snapshot (the lifecycle loop takes it right after the autostart) showed before the
        # clients were done.
        sched = daemon.api("GET", "/1.0/instances/sched")["metadata"]
        assert sched["status"] == "Running", "sched was not autostarted"
        assert storm.scheduled_at is not None, "no scheduled snapshot during the storm"
        print(f"scheduled snapshot of sched after {storm.scheduled_at - storm_start:.1f} s")
        assert not daemon.api("GET", "/1.0/operations")["metadata"].get("running"), \
            "operations still running after the storm"
        quiet_minute()
        problems = settled(daemon)
        assert not problems, "\n".join(problems)
        final = daemon.api("GET", "/1.0/instances?recursion=1")["metadata"]
        print("at the end:", ", ".join(f"{i['name']} {i['status']}" for i in final))
        daemon_log = Path(daemon.root, "lxmgrd-test.log").read_text(errors="replace")
        assert "Traceback" not in daemon_log, daemon_log[-4000:]
    print(f"test took {time.monotonic() - started:.1f} s")



# An init that, as systemd does (it sets up its signal handlers about a second after it
# started), acts on its halt signal (SIGPWR for an init that is not systemd) only after a
# while: before that, being PID 1, it ignores it.
LATE_INIT = b"#!/bin/sh\nsleep 2\ntrap 'exit 0' PWR\nwhile :; do sleep 0.1; done\n"


def test_graceful_stop_right_after_start(daemon: Daemon) -> None:
    """A stop (not forced) that comes before init can act on it ends once it can, not after
    the stop's timeout (a restore of a running instance stops it so, with 30 s)."""
    wait_op(daemon, daemon.api("POST", "/1.0/instances", {
        "name": "quick", "source": {"type": "image", "alias": "debian"}}))
    client = Client(daemon.socket, "files")
    try:
        status, resp = client.request("DELETE", "/1.0/instances/quick/files?path=/sbin/init")
        assert status == 200, resp
        conn = client.conn
        assert conn is not None
        conn.request("POST", "/1.0/instances/quick/files?path=/sbin/init", body=LATE_INIT,
                     headers={"X-LXD-type": "file", "X-LXD-mode": "0755",
                              "Content-Type": "application/octet-stream"})
        resp = conn.getresponse()
        assert resp.status == 200, resp.read()
        resp.read()
    finally:
        client.close()
    wait_op(daemon, daemon.api("PUT", "/1.0/instances/quick/state", {"action": "start"}))
    began = time.monotonic()
    wait_op(daemon, daemon.api("PUT", "/1.0/instances/quick/state",
                               {"action": "stop", "timeout": 8}))
    took = time.monotonic() - began
    assert took < 5, f"the stop took {took:.1f} s, init acted on its signal after 2 s"

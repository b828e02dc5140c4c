"""LXD-shaped views of instances (Instance, InstanceFull, InstanceState) and the `filter=`
expressions of list calls. Built from Manager data; blocking, so routes run them in a thread.
Listings at recursion 0/1 are cached (Listing), keyed so that no answer is ever stale."""

from __future__ import annotations

import json
import platform
import re
import threading
import weakref
from typing import Any

from lxmgr.api.envelope import sync_response
from lxmgr.api.operation import format_time
from lxmgr.daemon.responses import STATE_FIELDS
from lxmgr.errors import InvalidConfig, LxmgrError, NotFound
from lxmgr.instances import metrics_cgroup as mcg
from lxmgr.instances.manager import Manager
from lxmgr.model.config import expand
from lxmgr.model.instance import InstanceSpec
from lxmgr.model.profile import Profile
from lxmgr.model.project import DEFAULT, display, instance_url, profile_parts, storage_parts
from lxmgr.model.snapshot import SnapshotSpec

STATUS_CODES = {"Running": 103, "Stopped": 102, "Frozen": 110, "Stopping": 107,
                "Starting": 106, "Error": 112}


def instance_state(manager: Manager, name: str, *, spec: InstanceSpec | None = None,
                   devices: dict[str, dict[str, str]] | None = None,
                   fields: frozenset[str] = STATE_FIELDS) -> dict[str, Any]:
    """InstanceState: status, pid, processes, cpu, memory, network (+ an empty disk);
    disk and network are null when fields (LXD's selective recursion) leaves them out.
    spec and expanded devices: when the caller has them already."""
    state = manager.state(name, spec=spec, devices=devices,
                          network="state.network" in fields)
    memory = {"usage": state["memory"]["usage"],
              "usage_peak": state["memory"].get("usage_peak", 0),
              "swap_usage": state["memory"].get("swap_usage", 0),
              "swap_usage_peak": 0, "total": 0}
    if state["pid"]:
        memory.update(_memory_state(manager, name))
    return {
        "status": state["status"],
        "status_code": STATUS_CODES.get(state["status"], 112),
        "pid": state["pid"],
        "processes": state["processes"] if state["pid"] else 0,
        "cpu": {"usage": state["cpu"]["usage"]},
        "memory": memory,
        "disk": {} if "state.disk" in fields else None,
        "network": state.get("network", {}) if "state.network" in fields else None,
    }


def _memory_state(manager: Manager, name: str) -> dict[str, int]:
    """memory.total (the effective limit, host memory when unlimited, as LXD's
    GetEffectiveMemoryLimit) and swap_usage_peak of a running instance; {} when its cgroup
    is gone (stopped meanwhile)."""
    try:
        return mcg.read_memory_state(mcg.CgroupFiles(manager.cgroups, name))
    except (LxmgrError, OSError, ValueError):
        return {}


def instance(manager: Manager, name: str, full: bool = False, *,
             spec: InstanceSpec | None = None, profiles: dict[str, Profile] | None = None,
             last_used: str | None = None,
             snapshots: list[SnapshotSpec] | None = None,
             fields: frozenset[str] = STATE_FIELDS) -> dict[str, Any]:
    """Instance (recursion=1) or InstanceFull (recursion=2, with state and snapshots).
    Only the full form reads usage from the cgroups; the short one asks for the status.
    A listing passes spec, profiles, last_used and snapshots read once for all instances."""
    spec = spec or manager.get(name)
    if last_used is None:
        last_used = manager.db.instance_last_used(name)
    out = definition(manager, spec, profiles, last_used)
    if full:
        state = instance_state(manager, name, spec=spec, devices=out["expanded_devices"],
                               fields=fields)
        if snapshots is None:
            snapshots = manager.snapshots(name)
        out.update(status=state["status"], status_code=state["status_code"], state=state,
                   snapshots=[snapshot(manager, name, s, profiles) for s in snapshots],
                   backups=manager.backups.views(name))
    else:
        status = manager.status_fast(name)
        out.update(status=status, status_code=STATUS_CODES.get(status, 112))
    return out


def definition(manager: Manager, spec: InstanceSpec, profiles: dict[str, Profile] | None,
               last_used: str) -> dict[str, Any]:
    """Instance without its status (placeholders keep the key order): what the database
    alone decides. profiles: all of them, read once by a listing (None: read here)."""
    expanded, devices = _expanded(manager, spec, profiles)
    return {
        "name": display(spec.name),
        "description": spec.description,
        "status": "",
        "status_code": 0,
        "created_at": format_time(spec.created_at),
        "last_used_at": last_used or "1970-01-01T00:00:00Z",
        "location": "none",
        "type": "container",
        "project": storage_parts(spec.name)[0],
        "architecture": platform.machine(),
        "ephemeral": spec.ephemeral,
        "stateful": False,
        "profiles": [profile_parts(p)[1] for p in spec.profiles],
        "config": dict(spec.config),
        "devices": {k: dict(v) for k, v in spec.devices.items()},
        "expanded_config": expanded,
        "expanded_devices": devices,
    }


def _expanded(manager: Manager, spec: InstanceSpec, profiles: dict[str, Profile] | None
              ) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """manager.expanded(spec), from the given profiles when a listing has read them."""
    if profiles is None:
        return manager.expanded(spec)
    missing = [p for p in spec.profiles if p not in profiles]
    if missing:
        raise NotFound(f"Profile '{missing[0]}' not found")
    return expand([profiles[p] for p in spec.profiles], spec.config, spec.devices)


def snapshot(manager: Manager, name: str, snap: SnapshotSpec,
             profiles: dict[str, Profile] | None = None) -> dict[str, Any]:
    """InstanceSnapshot: the definition the instance had when the snapshot was taken."""
    spec = snap.instance
    try:
        expanded, devices = _expanded(manager, spec, profiles)
    except LxmgrError:  # a profile of that time is gone: show the local definition
        expanded, devices = dict(spec.config), {k: dict(v) for k, v in spec.devices.items()}
    return {
        "name": snap.name,
        "created_at": format_time(snap.created_at),
        "expires_at": format_time(snap.expires_at) if snap.expires_at else
        "0001-01-01T00:00:00Z",
        "last_used_at": "0001-01-01T00:00:00Z",
        "architecture": platform.machine(),
        "ephemeral": spec.ephemeral,
        "stateful": False,
        "size": -1,
        "profiles": [profile_parts(p)[1] for p in spec.profiles],
        "config": dict(spec.config),
        "devices": {k: dict(v) for k, v in spec.devices.items()},
        "expanded_config": expanded,
        "expanded_devices": devices,
    }


def instances(manager: Manager, level: int, expr: str,
              fields: frozenset[str] = STATE_FIELDS, project: str | None = DEFAULT) -> list[Any]:
    """GET /1.0/instances at a recursion level, filtered; fields: the costly state fields
    recursion 2 includes; project: whose instances (None: every project's)."""
    names = [n for n in manager.list() if _in_project(n, project)]
    if level == 0 and not expr:
        return [instance_url(n) for n in names]
    specs = {spec.name: spec for spec in manager.db.instance_specs()}
    profiles = manager.profiles()
    last_used = manager.db.instances_last_used()
    snapshots = manager.db.snapshots_by_instance() if level >= 2 else {}
    out = []
    for name in names:
        try:
            view = instance(manager, name, full=level >= 2, spec=specs.get(name),
                            profiles=profiles, last_used=last_used.get(name, ""),
                            snapshots=snapshots.get(name, []), fields=fields)
        except LxmgrError:
            continue  # deleted while we listed
        if matches(view, expr):
            out.append(view if level else instance_url(name))
    return out


def _in_project(stored: str, project: str | None) -> bool:
    return project is None or storage_parts(stored)[0] == project


def instances_json(manager: Manager, level: int, expr: str,
                   project: str | None = DEFAULT) -> bytes:
    """instances() at level 0 or 1 as the encoded sync envelope, from the manager's
    Listing (a thread-safe cache that is never stale)."""
    if level >= 2:
        raise ValueError("instances_json() serves recursion 0 and 1 only")
    if level == 0 and not expr:  # the names alone: nothing worth caching
        return json.dumps(sync_response(instances(manager, level, expr,
                                                  project=project))).encode()
    with _LISTINGS_LOCK:
        listing = _LISTINGS.get(manager)
        if listing is None:
            listing = _LISTINGS[manager] = Listing()
    return listing.body(manager, level, expr, project)


Row = tuple[str, "dict[str, Any] | None"]  # name, definition (None: skipped, as on errors)


class Listing:
    """Encoded level-0/1 listings of one Manager. The definitions are rebuilt when the
    database generation moves (any committed write), the body when a status (read for every
    instance on every call) differs too: an answer reflects every change made before it."""

    def __init__(self) -> None:
        self._rows: tuple[tuple[int, int], list[Row]] | None = None
        self._bodies: dict[tuple[Any, ...], bytes] = {}

    def body(self, manager: Manager, level: int, expr: str, project: str | None) -> bytes:
        generation = manager.db.generation()  # before the rows it keys
        cached = self._rows
        if cached is None or cached[0] != generation:
            cached = self._rows = (generation, _definitions(manager))
        rows = cached[1]
        statuses = tuple(manager.statuses_fast([name for name, _view in rows]))
        key = (generation, level, expr, statuses, project)
        body = self._bodies.get(key)
        if body is None:
            body = json.dumps(sync_response(_select(rows, statuses, level, expr,
                                                    project))).encode()
            if len(self._bodies) >= MAX_BODIES:
                self._bodies.clear()
            self._bodies[key] = body
        return body


def _definitions(manager: Manager) -> list[Row]:
    """Every instance's definition(), from one read of specs, profiles and last-used times."""
    specs = {spec.name: spec for spec in manager.db.instance_specs()}
    profiles = manager.profiles()
    last_used = manager.db.instances_last_used()
    rows: list[Row] = []
    for name in manager.list():
        spec = specs.get(name)
        try:
            view = definition(manager, spec, profiles, last_used.get(name, "")) if spec \
                else None
        except LxmgrError:
            view = None  # a profile is missing: skipped, as instances() does
        rows.append((name, view))
    return rows


def _select(rows: list[Row], statuses: tuple[str | None, ...], level: int,
            expr: str, project: str | None) -> list[Any]:
    out: list[Any] = []
    for (name, view), status in zip(rows, statuses, strict=True):
        if view is None or status is None or not _in_project(name, project):
            continue
        full = {**view, "status": status, "status_code": STATUS_CODES.get(status, 112)}
        if matches(full, expr):
            out.append(full if level else instance_url(name))
    return out


MAX_BODIES = 16  # encoded listings kept per Manager (levels x filters x status sets)
_LISTINGS: weakref.WeakKeyDictionary[Manager, Listing] = weakref.WeakKeyDictionary()
_LISTINGS_LOCK = threading.Lock()


_TERM = re.compile(r'^\s*([\w.\-]+)\s+(eq|ne)\s+"?([^"]*?)"?\s*$')


def matches(view: dict[str, Any], expr: str) -> bool:
    """LXD's filter subset: `field eq|ne value` joined by `and` / `or` (and binds tighter);
    fields: name, status, type, description, ephemeral, config.<key>, expanded_config.<key>."""
    if not expr.strip():
        return True
    return any(all(_term(view, t) for t in re.split(r"\s+and\s+", alt))
               for alt in re.split(r"\s+or\s+", expr))


def _term(view: dict[str, Any], term: str) -> bool:
    m = _TERM.match(term)
    if not m:
        raise InvalidConfig(f"Invalid filter '{term}': expected 'field eq value'")
    field_name, op, expected = m.groups()
    value: Any = view
    for part in field_name.split(".", 1) if field_name.startswith(("config.",
                                                                   "expanded_config.")) \
            else [field_name]:
        value = value.get(part) if isinstance(value, dict) else None
    actual = str(value).lower() if isinstance(value, bool) else str(value)
    equal = actual.lower() == expected.lower() if field_name == "status" else actual == expected
    return equal if op == "eq" else not equal

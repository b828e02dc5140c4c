"""PURE: LXD's backup index (backup/index.yaml, also written as backup/container/backup.yaml)
built from our specs, and parsed back from an untrusted archive.

Imports lxmgr.errors, lxmgr.model and yaml only; no I/O. Shapes follow canonical/lxd
lxd/backup/backup_info.go (Info: name, backend, pool, snapshots, optimized,
optimized_header, type, config) and lxd/backup/config (Config: container, snapshots, pool,
volume, i.e. backup format version 1, which every LXD and Incus release imports; version 2
writers use `instance` instead of `container`, which parse_index reads too). Entries are
shaped as LXD's api.Instance, api.InstanceSnapshot, api.StoragePool and api.StorageVolume.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import yaml

from lxmgr.errors import InvalidConfig, NotSupported
from lxmgr.model.devices import root_disk
from lxmgr.model.instance import InstanceSpec, validate_instance_name
from lxmgr.model.project import profile_parts, storage_parts
from lxmgr.model.snapshot import SnapshotSpec, parse_time, validate_snapshot_name

MAX_INDEX_BYTES = 4 << 20  # an index with hundreds of snapshots stays far below this
ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time.Time: LXD's "never"
Devices = dict[str, dict[str, str]]
Expand = Callable[[InstanceSpec], tuple[dict[str, str], Devices]]


@dataclass(frozen=True)
class IndexSnapshot:
    """One snapshot of a parsed index: its name, times and the definition it had."""

    name: str
    created_at: datetime
    expires_at: datetime | None = None
    config: dict[str, str] = field(default_factory=dict)
    devices: Devices = field(default_factory=dict)
    profiles: list[str] = field(default_factory=lambda: ["default"])
    description: str = ""
    ephemeral: bool = False


@dataclass(frozen=True)
class ParsedIndex:
    """The instance fields of a parsed index; raw is the whole checked YAML mapping."""

    name: str
    architecture: str
    description: str
    config: dict[str, str]
    devices: Devices
    profiles: list[str]
    ephemeral: bool
    created_at: datetime
    snapshots: list[IndexSnapshot]
    raw: dict[str, Any]


def format_time(moment: datetime) -> str:
    """RFC 3339 with a 'Z' for UTC, as Go prints a time.Time."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# -- building -------------------------------------------------------------------------------


def build_index(spec: InstanceSpec, snapshots: list[SnapshotSpec], *, architecture: str,
                expand: Expand | None = None, pool: str = "default",
                status: str = "Stopped") -> dict[str, Any]:
    """The index.yaml mapping for spec and the snapshots exported with it (LXD key order)."""
    project, name = storage_parts(spec.name)
    index: dict[str, Any] = {"name": name, "backend": "dir", "pool": pool}
    if snapshots:
        index["snapshots"] = [s.name for s in snapshots]
    index.update(optimized=False, optimized_header=False, type="container")
    config: dict[str, Any] = {"container": _instance(spec, architecture, expand, pool, status)}
    if snapshots:
        config["snapshots"] = [_snapshot(s, architecture, expand, pool) for s in snapshots]
    config["pool"] = {"name": pool, "description": "", "driver": "dir", "status": "Created",
                      "locations": ["none"], "config": {}, "used_by": []}
    config["volume"] = {"name": name, "description": "", "type": "container",
                        "content_type": "filesystem", "config": {}, "used_by": [],
                        "location": "none", "project": project,
                        "created_at": format_time(spec.created_at)}
    index["config"] = config
    return index


def render_index(index: Mapping[str, Any]) -> bytes:
    """YAML bytes for an index mapping (keys in the order given)."""
    return yaml.safe_dump(dict(index), sort_keys=False, default_flow_style=False).encode()


def _definition(spec: InstanceSpec, architecture: str, expand: Expand | None,
                pool: str) -> dict[str, Any]:
    """The api.InstancePut part shared by instances and snapshots."""
    config = dict(spec.config)
    if spec.image_fingerprint:
        config.setdefault("volatile.base_image", spec.image_fingerprint)
    devices = {k: dict(v) for k, v in spec.devices.items()}
    expanded, expanded_devices = expand(spec) if expand else (dict(spec.config), devices)
    expanded = {**expanded, **{k: v for k, v in config.items() if k.startswith("volatile.")}}
    expanded_devices = {k: dict(v) for k, v in expanded_devices.items()}
    if root_disk(expanded_devices) is None:
        # LXD finds the instance's pool through its root disk: every real instance has one.
        expanded_devices.setdefault("root", {"path": "/", "pool": pool, "type": "disk"})
    return {"architecture": architecture, "config": config, "devices": devices,
            "ephemeral": spec.ephemeral,
            "profiles": [profile_parts(p)[1] for p in spec.profiles], "stateful": False,
            "description": spec.description, "expanded_config": expanded,
            "expanded_devices": expanded_devices}


def _instance(spec: InstanceSpec, architecture: str, expand: Expand | None, pool: str,
              status: str) -> dict[str, Any]:
    project, name = storage_parts(spec.name)
    return {"name": name, **_definition(spec, architecture, expand, pool),
            "status": status, "status_code": 103 if status == "Running" else 102,
            "created_at": format_time(spec.created_at), "last_used_at": ZERO_TIME,
            "location": "none", "type": "container", "project": project}


def _snapshot(snap: SnapshotSpec, architecture: str, expand: Expand | None,
              pool: str) -> dict[str, Any]:
    return {"name": snap.name, **_definition(snap.instance, architecture, expand, pool),
            "created_at": format_time(snap.created_at),
            "expires_at": format_time(snap.expires_at) if snap.expires_at else ZERO_TIME,
            "last_used_at": ZERO_TIME, "size": -1}


# -- parsing --------------------------------------------------------------------------------


def parse_index(raw: bytes) -> ParsedIndex:
    """Check an untrusted index.yaml; InvalidConfig names the offending field, NotSupported
    refuses virtual-machine, custom-volume and optimized (driver-specific) backups."""
    data = _load(raw)
    name = _field(data, "name", str)
    validate_instance_name(name)
    kind = data.get("type") or "container"
    if kind != "container":
        raise NotSupported(f"Backup of '{name}' is of type '{kind}': only containers are "
                           "supported")
    if data.get("optimized") is True:
        raise NotSupported(f"Backup of '{name}' is an optimized ({data.get('backend')}) "
                           "backup: only non-optimized backups can be imported")
    config = data.get("config") or {}
    if not isinstance(config, dict):
        raise InvalidConfig(f"Backup index field 'config' of '{name}' is not a mapping")
    inst = config.get("container") or config.get("instance") or {}
    if not isinstance(inst, dict):
        raise InvalidConfig(f"Backup index field 'config.container' of '{name}' is not a "
                            "mapping")
    return ParsedIndex(
        name=name, architecture=str(inst.get("architecture") or ""),
        description=_text(inst, "description", "config.container"),
        config=_string_map(inst.get("config"), "config.container.config"),
        devices=_devices(inst.get("devices"), "config.container.devices"),
        profiles=_profiles(inst.get("profiles"), "config.container.profiles"),
        ephemeral=_bool(inst, "ephemeral", "config.container"),
        created_at=_time(inst.get("created_at"), "config.container.created_at")
        or datetime.now(UTC),
        snapshots=_snapshots(data, config, name), raw=data)


def _load(raw: bytes) -> dict[str, Any]:
    if len(raw) > MAX_INDEX_BYTES:
        raise InvalidConfig(f"Backup index.yaml is larger than {MAX_INDEX_BYTES} bytes")
    try:
        # LXD never writes anchors; refusing aliases keeps a billion-laughs document from
        # expanding in whoever walks the parsed index later.
        if any(isinstance(e, yaml.AliasEvent) for e in yaml.parse(raw, Loader=yaml.SafeLoader)):
            raise InvalidConfig("Backup index.yaml uses YAML aliases")
        data = yaml.safe_load(raw)
    except (yaml.YAMLError, RecursionError, UnicodeError) as err:
        reason = str(err).replace("\n", " ")
        raise InvalidConfig(f"Backup index.yaml is not valid YAML: {reason}") from None
    if not isinstance(data, dict):
        raise InvalidConfig("Backup index.yaml is not a mapping")
    return data


def _snapshots(data: dict[str, Any], config: dict[str, Any], name: str) -> list[IndexSnapshot]:
    """The snapshots index.yaml lists, each with its config.snapshots record when present."""
    listed = data.get("snapshots") or []
    if not isinstance(listed, list):
        raise InvalidConfig(f"Backup index field 'snapshots' of '{name}' is not a list")
    records = config.get("snapshots") or []
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise InvalidConfig(f"Backup index field 'config.snapshots' of '{name}' is not a "
                            "list of mappings")
    by_name = {_snap_name(r.get("name"), name): r for r in records}
    out, seen = [], set()
    for entry in listed:
        snap = _snap_name(entry, name)
        if snap in seen:
            raise InvalidConfig(f"Backup index of '{name}' lists snapshot '{snap}' twice")
        seen.add(snap)
        out.append(_snapshot_record(snap, by_name.get(snap, {}), name))
    return out


def _snap_name(value: object, instance: str) -> str:
    """A snapshot name as LXD writes it ('snap0', or 'c1/snap0' in older records)."""
    if not isinstance(value, str):
        raise InvalidConfig(f"Backup index of '{instance}' has a snapshot name that is not "
                            "a string")
    parent, sep, snap = value.partition("/")
    if sep and parent != instance:
        validate_instance_name(parent)
        raise InvalidConfig(f"Backup index of '{instance}' has snapshot '{value}' of "
                            "another instance")
    snap = snap if sep else value
    validate_snapshot_name(snap)
    return snap


def _snapshot_record(snap: str, rec: dict[str, Any], name: str) -> IndexSnapshot:
    where = f"config.snapshots.{snap}"
    return IndexSnapshot(
        name=snap,
        created_at=_time(rec.get("created_at"), f"{where}.created_at") or datetime.now(UTC),
        expires_at=_time(rec.get("expires_at"), f"{where}.expires_at"),
        config=_string_map(rec.get("config"), f"{where}.config"),
        devices=_devices(rec.get("devices"), f"{where}.devices"),
        profiles=_profiles(rec.get("profiles"), f"{where}.profiles"),
        description=_text(rec, "description", where), ephemeral=_bool(rec, "ephemeral", where))


def _field(data: dict[str, Any], key: str, kind: type) -> Any:
    value = data.get(key)
    if not isinstance(value, kind):
        raise InvalidConfig(f"Backup index field '{key}' is missing or not a "
                            f"{kind.__name__}")
    return value


def _text(data: dict[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        raise InvalidConfig(f"Backup index field '{where}.{key}' must be a string")
    return str(value)


def _bool(data: dict[str, Any], key: str, where: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise InvalidConfig(f"Backup index field '{where}.{key}' must be a boolean")
    return value


def _string_map(value: object, where: str) -> dict[str, str]:
    """LXD config maps are strings; YAML written by hand may give numbers or booleans."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidConfig(f"Backup index field '{where}' must be a mapping")
    out = {}
    for key, item in value.items():
        if not isinstance(key, str) or isinstance(item, (dict, list)):
            raise InvalidConfig(f"Backup index field '{where}.{key}' must be a string")
        out[key] = "" if item is None else str(item).lower() if isinstance(item, bool) \
            else item.isoformat() if isinstance(item, datetime) else str(item)
    return out


def _devices(value: object, where: str) -> Devices:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidConfig(f"Backup index field '{where}' must be a mapping")
    return {str(k): _string_map(v, f"{where}.{k}") for k, v in value.items()}


def _profiles(value: object, where: str) -> list[str]:
    if value is None:
        return ["default"]
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise InvalidConfig(f"Backup index field '{where}' must be a list of names")
    return list(value)


def _time(value: object, where: str) -> datetime | None:
    """Go writes time.Time unquoted, so YAML may already have made it a datetime."""
    if isinstance(value, datetime):
        if value.year <= 1:
            return None
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return parse_time(value, where)

"""PURE rules of a project's limits.* and restricted* keys, as LXD 5.0 applies them
(lxd/project/permissions.go): counts of instances, aggregate limits summed over the
project's instances (and custom volumes for limits.disk), and the restrictions a
`restricted=true` project puts on its instances' and profiles' config and devices.

The callers (lxmgr.instances.project_limits) gather what the project holds as it would be
after a change and call check(); nothing here does I/O. Imports lxmgr.errors, .units and
.validate only (lxmgr.model.project imports this module).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from lxmgr.errors import InvalidConfig
from lxmgr.model import validate as v
from lxmgr.model.units import parse_bool, parse_size

COUNT_KEYS = ("limits.instances", "limits.containers")
AGGREGATE_KEYS = ("limits.cpu", "limits.disk", "limits.memory", "limits.processes")

# LXD 5.0's AllRestrictions and their defaults (defaultRestrictionsValues): what a
# restricted project may do when the key is not set.
RESTRICTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "restricted.containers.nesting": ("block", ("allow", "block")),
    "restricted.containers.lowlevel": ("block", ("allow", "block")),
    "restricted.containers.privilege": ("unprivileged", ("allow", "unprivileged", "isolated")),
    "restricted.virtual-machines.lowlevel": ("block", ("allow", "block")),
    "restricted.devices.unix-char": ("block", ("allow", "block")),
    "restricted.devices.unix-block": ("block", ("allow", "block")),
    "restricted.devices.unix-hotplug": ("block", ("allow", "block")),
    "restricted.devices.infiniband": ("block", ("allow", "block")),
    "restricted.devices.gpu": ("block", ("allow", "block")),
    "restricted.devices.usb": ("block", ("allow", "block")),
    "restricted.devices.nic": ("managed", ("allow", "block", "managed")),
    "restricted.devices.disk": ("managed", ("allow", "block", "managed")),
}

# Container keys a restricted project may not set unless restricted.containers.lowlevel
# =allow (LXD's isContainerLowLevelOptionForbidden; security.syscalls.* as a prefix).
LOW_LEVEL = ("boot.host_shutdown_timeout", "linux.kernel_modules", "raw.apparmor",
             "raw.idmap", "raw.lxc", "raw.seccomp", "security.devlxd.images",
             "security.idmap.base", "security.idmap.size")
LOW_LEVEL_PREFIXES = ("security.syscalls",)


def _count(value: str) -> None:
    if not value.isdigit():
        raise InvalidConfig(f"Invalid value '{value}': expected a number of instances")


def _size(value: str) -> None:
    if value.endswith("%"):
        raise InvalidConfig("Value can't be a percentage")
    v.is_size(value)


def _cpus(value: str) -> None:
    if "," in value or "-" in value:
        raise InvalidConfig("CPUs can't be pinned if project limits are used")
    _count(value)


KEYS: dict[str, v.Validator] = {
    "limits.instances": v.optional(_count),
    "limits.containers": v.optional(_count),
    "limits.cpu": v.optional(_cpus),
    "limits.memory": v.optional(_size),
    "limits.processes": v.optional(_count),
    "limits.disk": v.optional(_size),
    "restricted": v.optional(v.is_bool),
    **{key: v.optional(v.is_one_of(*choices)) for key, (_default, choices)
       in RESTRICTIONS.items()},
}


def _amount(key: str, value: str) -> int:
    return parse_size(value) if key in ("limits.memory", "limits.disk") else int(value)


def _printed(key: str, amount: int) -> str:
    if key not in ("limits.memory", "limits.disk"):
        return str(amount)
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if amount >= size:
            return f"{amount / size:.1f}{unit}".replace(".0", "")
    return f"{amount}B"


def _root_disk(devices: Mapping[str, Mapping[str, str]]) -> Mapping[str, str] | None:
    """The root disk (type disk, path /), as lxmgr.model.devices.root_disk finds it."""
    for dev in devices.values():
        if dev.get("type") == "disk" and dev.get("path") == "/":
            return dev
    return None


@dataclass(frozen=True)
class Entity:
    """An instance (expanded config and devices) or a profile of the project."""

    name: str
    config: Mapping[str, str]
    devices: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Holdings:
    """What a project holds, as it would be after the change being checked."""

    instances: list[Entity]
    profiles: list[Entity]
    volumes: list[Entity]  # custom volumes (their config: `size`)


def has_limits(config: Mapping[str, str]) -> bool:
    """LXD's projectHasLimitsOrRestrictions: nothing to check otherwise."""
    return any(k.startswith("limits.") for k in config) or restricted(config)


def restricted(config: Mapping[str, str]) -> bool:
    value = config.get("restricted", "")
    return bool(value) and parse_bool(value)


def check_count(project: str, config: Mapping[str, str], count: int) -> None:
    """Refuse one more instance where the project is at limits.instances/containers."""
    for key, message in (("limits.instances", f'Reached maximum number of instances in '
                                               f'project "{project}"'),
                         ("limits.containers", "Reached maximum number of instances of "
                                               f"type container in project {project}")):
        value = config.get(key)
        if value and count >= int(value):
            raise InvalidConfig(message)


def totals(project: str, keys: list[str], held: Holdings) -> dict[str, int]:
    """Sum of the effective values of aggregate limit keys over the project's instances
    (and, for limits.disk, its custom volumes); every one of them must set the key."""
    out = dict.fromkeys(keys, 0)
    if "limits.disk" in keys:
        for volume in held.volumes:
            size = volume.config.get("size")
            if not size:
                raise InvalidConfig(f"Custom volume {volume.name} in project {project} has "
                                    "no 'size' config set")
            out["limits.disk"] += parse_size(size)
    for instance in held.instances:
        for key in keys:
            if key == "limits.disk":
                root = _root_disk(instance.devices)
                if root is None:
                    raise InvalidConfig(f"Instance {instance.name} in project {project} has "
                                        "no root device")
                value = root.get("size", "")
                if not value:
                    raise InvalidConfig(
                        f"Instance {instance.name} in project {project} has no 'size' config "
                        "set on the root device, either directly or via a profile")
            else:
                value = instance.config.get(key, "")
                if not value:
                    raise InvalidConfig(f"Instance {instance.name} in project {project} has "
                                        f"no '{key}' config, either directly or via a profile")
            try:
                KEYS[key](value)
                out[key] += _amount(key, value)
            except (InvalidConfig, ValueError) as err:
                raise InvalidConfig(f"Parse '{key}' for instance {instance.name} in project "
                                    f"{project}: {err}") from None
    return out


def usage(key: str, held: Holdings) -> int:
    """An aggregate's usage for a project's state: the sum over what sets it."""
    if key == "limits.disk":
        values = [(_root_disk(i.devices) or {}).get("size", "") for i in held.instances]
        values += [volume.config.get("size", "") for volume in held.volumes]
    else:
        values = [instance.config.get(key, "") for instance in held.instances]
    total = 0
    for value in values:
        try:
            KEYS[key](value)
            total += _amount(key, value) if value else 0
        except (InvalidConfig, ValueError):
            continue
    return total


def limit(config: Mapping[str, str], key: str) -> int:
    """A limit's value for a project's state, -1 when unset (or not a number)."""
    value = config.get(key, "")
    try:
        return _amount(key, value) if value else -1
    except ValueError:
        return -1


def check(project: str, config: Mapping[str, str], held: Holdings) -> None:
    """LXD's checkRestrictionsAndAggregateLimits over what the project would hold."""
    keys = [k for k in AGGREGATE_KEYS if config.get(k)]
    if keys:
        found = totals(project, keys, held)
        for key in keys:
            if found[key] > _amount(key, config[key]):
                raise InvalidConfig(f'Reached maximum aggregate value "{config[key]}" for '
                                    f'"{key}" in project "{project}"')
    if restricted(config):
        check_restrictions(project, config, held)


def _restriction(config: Mapping[str, str], key: str) -> str:
    return config.get(key) or RESTRICTIONS[key][0]


def _device_check(config: Mapping[str, str]) -> dict[str, Callable[[Mapping[str, str]],
                                                                    str | None]]:
    """Device type -> a function giving the reason a device is forbidden (or None)."""
    def blocked(key: str, what: str) -> Callable[[Mapping[str, str]], str | None]:
        return lambda _dev: None if _restriction(config, key) == "allow" else \
            f"{what} are forbidden"

    def managed(key: str, blocked: str, needs: str, unmanaged: str
                ) -> Callable[[Mapping[str, str]], str | None]:
        """block: none; managed: only devices that set `needs`; allow: any."""
        def check(dev: Mapping[str, str]) -> str | None:
            mode = _restriction(config, key)
            if mode == "block":
                return blocked
            return unmanaged if mode == "managed" and not dev.get(needs) else None
        return check

    nic = managed("restricted.devices.nic", "Network devices are forbidden", "network",
                  "Only managed network devices are allowed")
    pooled = managed("restricted.devices.disk", "Disk devices are forbidden", "pool",
                     "Attaching disks not backed by a pool is forbidden")

    def disk(dev: Mapping[str, str]) -> str | None:
        if dev.get("path") == "/" and dev.get("pool"):
            return None  # the root disk is always allowed
        return pooled(dev)

    return {"unix-char": blocked("restricted.devices.unix-char", "Unix character devices"),
            "unix-block": blocked("restricted.devices.unix-block", "Unix block devices"),
            "unix-hotplug": blocked("restricted.devices.unix-hotplug", "Unix hotplug devices"),
            "infiniband": blocked("restricted.devices.infiniband", "Infiniband devices"),
            "gpu": blocked("restricted.devices.gpu", "GPU devices"),
            "usb": blocked("restricted.devices.usb", "USB devices"),
            "nic": nic, "disk": disk}


def _config_problem(config: Mapping[str, str], key: str, value: str) -> str | None:
    if key == "security.nesting":
        if _restriction(config, "restricted.containers.nesting") == "block" and \
                parse_bool(value or "false"):
            return "Container nesting is forbidden"
    elif key == "security.privileged":
        if _restriction(config, "restricted.containers.privilege") != "allow" and \
                parse_bool(value or "false"):
            return "Privileged containers are forbidden"
    elif key == "security.idmap.isolated":
        if _restriction(config, "restricted.containers.privilege") == "isolated" and \
                not parse_bool(value or "false"):
            return "Non-isolated containers are forbidden"
    return None


def check_restrictions(project: str, config: Mapping[str, str], held: Holdings) -> None:
    """LXD's checkRestrictions: every instance's and profile's config and devices."""
    low_level = _restriction(config, "restricted.containers.lowlevel") == "allow"
    devices = _device_check(config)
    entities = [("container", e) for e in held.instances] + \
        [("profile", e) for e in held.profiles]
    for kind, entity in entities:
        for key, value in sorted(entity.config.items()):
            if not low_level and (key in LOW_LEVEL or key.startswith(LOW_LEVEL_PREFIXES)):
                raise InvalidConfig(f'Use of low-level config "{key}" on {kind} '
                                    f'"{entity.name}" of project "{project}" is forbidden')
            problem = _config_problem(config, key, value)
            if problem:
                raise InvalidConfig(f'Invalid value "{value}" for config "{key}" on {kind} '
                                    f'"{entity.name}" of project "{project}": {problem}')
        if kind == "container" and _restriction(
                config, "restricted.containers.privilege") == "isolated" and \
                "security.idmap.isolated" not in entity.config:
            raise InvalidConfig(f'Invalid value "" for config "security.idmap.isolated" on '
                                f'container "{entity.name}" of project "{project}": '
                                "Non-isolated containers are forbidden")
        for dev_name, dev in sorted(entity.devices.items()):
            check_device = devices.get(dev.get("type", ""))
            problem = check_device(dev) if check_device else None
            if problem:
                raise InvalidConfig(f'Invalid device "{dev_name}" on '
                                    f'{"instance" if kind == "container" else kind} '
                                    f'"{entity.name}" of project "{project}": {problem}')


def check_update(project: str, config: Mapping[str, str], changed: list[str],
                 held: Holdings, containers: int) -> None:
    """LXD's AllowProjectUpdate: new restrictions must hold for what the project has,
    new counts and aggregate limits must not be below what it uses."""
    if any(k.startswith("restricted") for k in changed) and restricted(config):
        try:
            check_restrictions(project, config, held)
        except InvalidConfig as err:
            key = next(k for k in changed if k.startswith("restricted"))
            raise InvalidConfig(f'Conflict detected when changing "{key}" in project '
                                f'"{project}": {err}') from None
    for key in changed:
        value = config.get(key)
        if not value:
            continue
        if key in COUNT_KEYS and int(value) < containers:
            what = f"{containers} instances of type container in project {project}" \
                if key == "limits.containers" else \
                f'{containers} total instances in project "{project}"'
            raise InvalidConfig(f"Can't change \"{key}\" in project \"{project}\": '{key}' "
                                f"is too low: there currently are {what}")
        if key in AGGREGATE_KEYS:
            total = totals(project, [key], held)[key]
            if _amount(key, value) < total:
                raise InvalidConfig(f"'{key}' is too low: current total is "
                                    f"{_printed(key, total)}")

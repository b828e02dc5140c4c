"""PURE instance/profile config: the key registry (LXD names), validation and expand().

Owns which keys exist, their validators, defaults and live-update flags. Must not import
anything but lxmgr.errors, other lxmgr.model modules and the stdlib; no I/O.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lxmgr.errors import InvalidConfig
from lxmgr.model import snapshot
from lxmgr.model import validate as v
from lxmgr.model.idmap import is_raw_idmap

if TYPE_CHECKING:
    from lxmgr.model.profile import Profile


@dataclass(frozen=True)
class Key:
    """One config key: its validator, LXD default, whether it applies to a running instance."""

    name: str
    validator: v.Validator
    default: str | None
    live: bool
    doc: str


_KEY_LIST = [
    # boot.*: read by the daemon at startup/shutdown only, so changes never need a restart.
    Key("boot.autostart", v.optional(v.is_bool), None, True,
        "Always start the instance when lxmgr starts (unset: restore the last state)"),
    Key("boot.autostart.delay", v.optional(v.is_int64), "0", True,
        "Seconds to wait after starting this instance before starting the next one"),
    Key("boot.autostart.priority", v.optional(v.is_int64), "0", True,
        "Start order on autostart, highest first"),
    Key("boot.host_shutdown_timeout", v.optional(v.is_int64), "30", True,
        "Seconds to wait for a clean shutdown before the instance is killed"),
    Key("boot.stop.priority", v.optional(v.is_int64), "0", True,
        "Stop order on host shutdown, highest first"),
    # cloud-init.*: seeds read by cloud-init on (first) boot.
    Key("cloud-init.user-data", v.is_any, None, False, "cloud-init user data (seed)"),
    Key("cloud-init.vendor-data", v.is_any, None, False, "cloud-init vendor data (seed)"),
    Key("cloud-init.network-config", v.is_any, None, False,
        "cloud-init network configuration (seed)"),
    # limits.*: cgroup knobs, all rewritable while the instance runs.
    Key("limits.cpu", v.optional(v.is_cpuset_or_count), None, True,
        "Number of CPUs ('2') or a CPU set to pin to ('0-1,4')"),
    Key("limits.cpu.allowance", v.optional(v.is_cpu_allowance), "100%", True,
        "CPU share ('50%') or hard quota ('25ms/100ms')"),
    Key("limits.cpu.priority", v.optional(v.is_priority), "10", True,
        "CPU weight against other instances when overcommitted (0-10)"),
    Key("limits.memory", v.optional(v.is_size_or_percent, v.is_non_zero_size), None, True,
        "Memory limit: a size ('512MiB') or a percentage of host memory ('25%')"),
    Key("limits.memory.enforce", v.optional(v.is_one_of("hard", "soft")), "hard", True,
        "hard: never exceed limits.memory; soft: only under host memory pressure"),
    Key("limits.memory.swap", v.optional(v.is_bool), "true", True,
        "Whether the instance may swap"),
    Key("limits.memory.swap.priority", v.optional(v.is_priority), "10", True,
        "Higher means less likely to be swapped out (0-10)"),
    Key("limits.processes", v.optional(v.is_int_range(1, v.INT64_MAX)), None, True,
        "Maximum number of processes (pids.max)"),
    Key("linux.kernel_modules", v.optional(v.is_kernel_module_list), None, False,
        "Comma-separated kernel modules to load on the host before start"),
    # raw.*: low-level additions to what lxmgr generates.
    Key("raw.idmap", v.optional(is_raw_idmap), None, False,
        "Host ids mapped straight into the container, a line each: 'uid|gid|both HOST "
        "CONTAINER' (ids or ranges A-B, e.g. 'both 1000 1000'); not host root nor another "
        "instance's range; taken at the next start (overlay: while stopped, when no file "
        "there changes owner; refused without idmapped mounts)"),
    # security.*: decided when the instance starts (namespaces, idmap, seccomp).
    Key("security.privileged", v.optional(v.is_bool), "false", False,
        "Run without a user namespace (root in the instance is root on the host)"),
    Key("security.nesting", v.optional(v.is_bool), "false", False,
        "Allow running containers inside the instance"),
    Key("security.idmap.isolated", v.optional(v.is_bool), "false", False,
        "Use an idmap range not shared with other isolated instances"),
    Key("security.idmap.base", v.optional(v.is_uint32), None, False,
        "First host ID of the idmap (overrides allocation)"),
    Key("security.idmap.size", v.optional(v.is_uint32), None, False,
        "Number of IDs in the idmap"),
    Key("security.protection.delete", v.optional(v.is_bool), "false", True,
        "Refuse to delete the instance"),
    Key("security.syscalls.deny_default", v.optional(v.is_bool), "true", False,
        "Apply the default seccomp deny list"),
    Key("security.syscalls.deny_compat", v.optional(v.is_bool), "false", False,
        "On x86_64, deny compat (32-bit) syscalls"),
    Key("security.syscalls.deny", v.optional(v.is_syscall_list), None, False,
        "Newline-separated extra syscalls to deny"),
    Key("snapshots.schedule", v.optional(snapshot.is_schedule), None, True,
        "Cron spec or @hourly/@daily/@weekly/@monthly for automatic snapshots"),
    Key("snapshots.schedule.stopped", v.optional(v.is_bool), "false", True,
        "Also take scheduled snapshots while the instance is stopped"),
    Key("snapshots.pattern", v.optional(v.is_no_control("/", "\n", "\0")), "snap%d", True,
        "Name of automatic and unnamed snapshots (%d: the next free number)"),
    Key("snapshots.expiry", v.optional(snapshot.is_expiry), None, True,
        "How long automatic and unnamed snapshots live (e.g. 2w 3d, M minutes, m months)"),
]

KEYS: dict[str, Key] = {key.name: key for key in _KEY_LIST}

# Namespaces: any key under the prefix (with a non-empty suffix) uses this entry.
PREFIX_KEYS: dict[str, Key] = {
    # Newlines would let a value escape into the next line of generated config (LXD CVE, 2026);
    # NUL cannot be passed through execve at all.
    "environment.": Key("environment.*", v.is_no_control("\n", "\r", "\0"), None, True,
                        "Environment variables of exec sessions (PID 1 gets systemd's "
                        "container interface only, as services never see PID 1's)"),
    "image.": Key("image.*", v.is_any, None, True, "Copy of the source image's properties"),
    "user.": Key("user.*", v.is_any, None, True, "Free-form user key/value storage"),
    "volatile.": Key("volatile.*", v.is_any, None, True, "Internal state written by lxmgr"),
}

# Where each key takes effect: the module that reads it to act (a unit test checks every
# registered key is listed and named in that module's source). A key nothing applies must
# not be registered: refused as unknown instead of stored and ignored.
APPLIED_BY: dict[str, str] = {
    "boot.autostart": "lxmgr.instances.lifecycle",
    "boot.autostart.delay": "lxmgr.instances.lifecycle",
    "boot.autostart.priority": "lxmgr.instances.lifecycle",
    "boot.host_shutdown_timeout": "lxmgr.instances.lifecycle",
    "boot.stop.priority": "lxmgr.instances.lifecycle",
    "cloud-init.user-data": "lxmgr.instances.cloudinit",
    "cloud-init.vendor-data": "lxmgr.instances.cloudinit",
    "cloud-init.network-config": "lxmgr.instances.cloudinit",
    "limits.cpu": "lxmgr.cgroups.translate",
    "limits.cpu.allowance": "lxmgr.cgroups.translate",
    "limits.cpu.priority": "lxmgr.cgroups.translate",
    "limits.memory": "lxmgr.cgroups.translate",
    "limits.memory.enforce": "lxmgr.cgroups.translate",
    "limits.memory.swap": "lxmgr.cgroups.translate",
    "limits.memory.swap.priority": "lxmgr.cgroups.translate",
    "limits.processes": "lxmgr.cgroups.translate",
    "linux.kernel_modules": "lxmgr.instances.manager",
    "raw.idmap": "lxmgr.model.idmap",
    "security.privileged": "lxmgr.model.idmap",
    "security.nesting": "lxmgr.runtime.plan",
    "security.idmap.isolated": "lxmgr.model.idmap",
    "security.idmap.base": "lxmgr.model.idmap",
    "security.idmap.size": "lxmgr.model.idmap",
    "security.protection.delete": "lxmgr.instances.manager",
    "security.syscalls.deny_default": "lxmgr.runtime.plan",
    "security.syscalls.deny_compat": "lxmgr.runtime.plan",
    "security.syscalls.deny": "lxmgr.runtime.plan",
    "snapshots.schedule": "lxmgr.instances.manager_snapshots",
    "snapshots.schedule.stopped": "lxmgr.instances.manager_snapshots",
    "snapshots.pattern": "lxmgr.instances.manager_snapshots",
    "snapshots.expiry": "lxmgr.instances.manager_snapshots",
    "environment.": "lxmgr.daemon.routes.instance_exec",
    "image.": "lxmgr.instances.image_ops",
    # Free-form and internal keys: storing them is what they are for.
    "user.": "lxmgr.model.config",
    "volatile.": "lxmgr.model.config",
}

VOLATILE_PREFIX = "volatile."
_ENV_NAME_FORBIDDEN = ("=", "\n", "\r", "\0")


def lookup_key(name: str) -> Key:
    """The registry entry for a config key; raise InvalidConfig for unknown keys."""
    if name in KEYS:
        return KEYS[name]
    for prefix, key in PREFIX_KEYS.items():
        if name.startswith(prefix) and len(name) > len(prefix):
            return key
    raise InvalidConfig(f"Unknown config key '{name}'{v.did_you_mean(name, _known(name))}")


def _known(name: str) -> list[str]:
    """What an unknown key may have meant: the registry, and the namespaces a user sets
    with name's own suffix ('enviroment.FOO' -> 'environment.FOO')."""
    suffix = name.partition(".")[2]
    return list(KEYS) + [prefix + suffix for prefix in PREFIX_KEYS
                         if suffix and prefix != VOLATILE_PREFIX]


def to_config_value(value: object) -> str:
    """Coerce a YAML/JSON scalar to LXD's string form: True -> 'true', 2 -> '2', None -> ''."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise InvalidConfig(f"Expected a string, number or boolean, got {type(value).__name__}")


def validate_key(name: str, value: str) -> None:
    """Validate one key/value pair; raise InvalidConfig naming the key."""
    key = lookup_key(name)
    if name.startswith("environment.") and any(c in name for c in _ENV_NAME_FORBIDDEN):
        raise InvalidConfig(f"Invalid config key '{name}': invalid environment variable name")
    try:
        if "\0" in value:
            raise InvalidConfig("Value must not contain NUL")
        key.validator(value)
    except (InvalidConfig, ValueError) as err:
        raise InvalidConfig(f"Invalid config key '{name}': {err}") from err


def validate_config(config: Mapping[str, object], allow_volatile: bool = False) -> dict[str, str]:
    """Validate a whole config and return it normalised (string values, sorted keys)."""
    out: dict[str, str] = {}
    for name in sorted(config):
        if not isinstance(name, str):
            raise InvalidConfig(f"Invalid config key {name!r}: must be a string")
        if name.startswith(VOLATILE_PREFIX) and not allow_volatile:
            raise InvalidConfig(f"Invalid config key '{name}': volatile keys are set by lxmgr only")
        try:
            value = to_config_value(config[name])
        except InvalidConfig as err:
            raise InvalidConfig(f"Invalid config key '{name}': {err}") from err
        validate_key(name, value)
        out[name] = value
    return out


def config_value(config: Mapping[str, str], name: str) -> str | None:
    """The value of a key in an (expanded) config, falling back to the registry default."""
    if name in config:
        return config[name]
    return lookup_key(name).default


def expand(
    profiles: Iterable[Profile],
    local_config: Mapping[str, str],
    local_devices: Mapping[str, Mapping[str, str]],
) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """Effective config and devices: profiles in order (later wins), then the instance's own.

    Config merges key by key; a device replaces any earlier device of the same name whole,
    as LXD does (a 'type: none' device masks a profile's device).
    """
    config: dict[str, str] = {}
    devices: dict[str, dict[str, str]] = {}
    for profile in profiles:
        config.update(profile.config)
        devices.update(copy.deepcopy(profile.devices))
    config.update(local_config)
    devices.update({name: dict(dev) for name, dev in local_devices.items()})
    return config, devices


def changed_keys(old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    """Keys added, removed or changed between two configs, sorted."""
    return sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))


def is_live(name: str) -> bool:
    """Whether a key can change on a running instance (unknown keys: no)."""
    try:
        return lookup_key(name).live
    except InvalidConfig:
        return False


def restart_required(old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    """Changed keys that only take effect after a restart; unset and default are equal."""
    out = []
    for name in changed_keys(old, new):
        if is_live(name):
            continue
        default = KEYS[name].default if name in KEYS else None
        if old.get(name, default) != new.get(name, default):
            out.append(name)
    return out

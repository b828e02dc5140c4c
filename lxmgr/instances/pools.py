"""Named storage pools (LXD's /1.0/storage-pools): which driver, where, and its lifecycle.

A pool is a row (name, driver, description, config) plus a place on disk:
- `dir` and `overlay` pools live in a directory (`source`, default
  storage_dir()/pools/<name>); the `default` pool made at first start uses the default
  driver's own directory (storage_dir()/<driver>), where instances lived before pools;
- `btrfs` pools are a loop-mounted sparse file of `size` (storage_dir()/disks/<name>.img,
  as LXD makes them) or an existing block device (`source=/dev/...`), mounted at
  storage_dir()/pools/<name> and mounted again when the daemon starts (host reboots).
Instances record their pool (InstanceSpec.storage_pool); those made before pools have
none and use their driver's own directory.
"""

from __future__ import annotations

import contextlib
import logging
import re
from pathlib import Path
from typing import Any

from lxmgr import paths
from lxmgr.errors import Conflict, InvalidConfig, InvalidState, LxmgrError, NotFound
from lxmgr.instances.db import Database
from lxmgr.instances.volume_records import VolumeRecords
from lxmgr.model import validate as v
from lxmgr.model.instance import InstanceSpec
from lxmgr.storage import base as storage_base

log = logging.getLogger(__name__)

DEFAULT_POOL = "default"
DEFAULT_LOOP_SIZE = 5 * 1024**3  # LXD's minimum default is 5 GiB
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
# driver -> the config keys a pool of that driver accepts
POOL_KEYS: dict[str, dict[str, v.Validator]] = {
    "dir": {"source": v.optional(v.is_abs_path)},
    "overlay": {"source": v.optional(v.is_abs_path)},
    "btrfs": {"source": v.optional(v.is_abs_path), "size": v.optional(v.is_size),
              "btrfs.mount_options": v.is_any},
}


def validate_pool_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise InvalidConfig(f"Invalid storage pool name '{name}': use 1-63 letters, digits, "
                            "'_', '.' or '-', starting with a letter or digit")


def validate_pool_config(driver: str, config: dict[str, Any]) -> dict[str, str]:
    if driver not in POOL_KEYS:
        raise InvalidConfig(f"Unsupported storage driver '{driver}' (available: "
                            f"{', '.join(sorted(POOL_KEYS))})")
    out = {}
    for key, value in config.items():
        if key not in POOL_KEYS[driver]:
            raise InvalidConfig(f"Invalid storage pool config key '{key}' for driver "
                                f"'{driver}'{v.did_you_mean(str(key), POOL_KEYS[driver])}")
        text = str(value).lower() if isinstance(value, bool) else str(value)
        try:
            POOL_KEYS[driver][key](text)
        except InvalidConfig as err:
            raise InvalidConfig(f"Invalid value for storage pool key '{key}': {err}") from None
        out[key] = text
    return out


class Pools:
    """The pool records and a driver object per pool."""

    def __init__(self, db: Database, default_driver: str) -> None:
        self.db = db
        self.default_driver = default_driver

    def ensure_default(self) -> None:
        """The `default` pool on the default driver's own directory (first start)."""
        if DEFAULT_POOL not in self.db.pools():
            with contextlib.suppress(Conflict):
                self.db.pool_add(DEFAULT_POOL, self.default_driver, "Default storage pool",
                                 {"source": str(paths.storage_dir() / self.default_driver)})

    def list(self) -> list[dict[str, Any]]:
        self.ensure_default()
        return [self.db.pools()[n] for n in sorted(self.db.pools())]

    def get(self, name: str) -> dict[str, Any]:
        validate_pool_name(name)
        self.ensure_default()
        pool = self.db.pools().get(name)
        if pool is None:
            raise NotFound(f"Storage pool '{name}' not found")
        return pool

    def mount_dir(self, name: str) -> Path:
        return paths.storage_dir() / "pools" / name

    def pool_dir(self, pool: dict[str, Any]) -> Path:
        if pool["driver"] == "btrfs":
            return self.mount_dir(pool["name"])
        return Path(pool["config"].get("source") or self.mount_dir(pool["name"]))

    def driver(self, name: str) -> storage_base.StorageDriver:
        pool = self.get(name)
        return storage_base.load(pool["driver"], pool_dir=self.pool_dir(pool))

    def driver_for(self, spec: InstanceSpec) -> storage_base.StorageDriver:
        """The driver object holding spec's volume."""
        if spec.storage_pool:
            return self.driver(spec.storage_pool)
        return storage_base.load(spec.storage_driver)

    def resolve(self, requested: str | None) -> tuple[str, str]:
        """(pool, driver) for a create: a pool name, else (compatibility) a bare driver
        name meaning that driver's own directory, else the default pool."""
        name = requested or DEFAULT_POOL
        self.ensure_default()
        pools = self.db.pools()
        if name in pools:
            return name, pools[name]["driver"]
        if requested and requested in POOL_KEYS:
            return "", requested
        raise NotFound(f"Storage pool '{name}' not found")

    # -- lifecycle -----------------------------------------------------------------------------

    def create(self, name: str, driver: str, config: dict[str, Any] | None = None,
               description: str = "") -> dict[str, Any]:
        validate_pool_name(name)
        clean = validate_pool_config(driver, config or {})
        self.ensure_default()
        if name in self.db.pools():
            raise Conflict(f"Storage pool '{name}' already exists")
        with contextlib.ExitStack() as revert:
            if driver == "btrfs":
                source = self._create_btrfs(name, clean)
                revert.callback(self._delete_btrfs, name, clean)
                clean.update(source)
            else:
                directory = Path(clean.get("source") or self.mount_dir(name))
                if directory.exists() and any(directory.iterdir()):
                    raise Conflict(f"Storage pool source '{directory}' is not empty")
                directory.mkdir(mode=0o711, parents=True, exist_ok=True)
                clean["source"] = str(directory)
            self.db.pool_add(name, driver, description, clean)
            revert.pop_all()
        log.info("Created storage pool %s (%s)", name, driver)
        return self.get(name)

    def delete(self, name: str, users: list[str]) -> None:
        pool = self.get(name)
        if name == DEFAULT_POOL:
            raise InvalidState("The default storage pool cannot be deleted")
        if users:
            raise InvalidState(f"Storage pool '{name}' is used by instance {users[0]}")
        volumes = [r["name"] for r in VolumeRecords(self.db).list(name) if "/" not in r["name"]]
        if volumes:
            raise InvalidState(f"Storage pool '{name}' holds storage volume {volumes[0]}")
        if pool["driver"] == "btrfs":
            self._delete_btrfs(name, pool["config"])
        else:
            directory = self.pool_dir(pool)
            if directory.exists():
                storage_base.remove_tree(directory)
        self.db.pool_remove(name)
        log.info("Deleted storage pool %s", name)

    def update(self, name: str, description: str | None) -> dict[str, Any]:
        pool = self.get(name)
        self.db.pool_save(name, pool["description"] if description is None else description,
                          pool["config"])
        return self.get(name)

    def mount_all(self) -> None:
        """Mount every btrfs pool again (daemon start after a host reboot)."""
        from lxmgr.storage import btrfs_pool

        for pool in self.list():
            if pool["driver"] != "btrfs":
                continue
            try:
                btrfs_pool.mount_pool(self._source(pool["name"], pool["config"]))
            except LxmgrError as err:
                log.error("Storage pool '%s' could not be mounted: %s", pool["name"], err)

    def usage(self, name: str) -> dict[str, int]:
        return self.driver(name).usage()

    def _source(self, name: str, config: dict[str, str]) -> Any:
        from lxmgr.storage import btrfs_pool

        source = Path(config["source"])
        kind = "block" if source.is_block_device() else "loop"
        return btrfs_pool.PoolSource(kind, source, self.mount_dir(name))

    def _create_btrfs(self, name: str, config: dict[str, str]) -> dict[str, str]:
        from lxmgr.model.units import parse_size
        from lxmgr.storage import btrfs_pool

        mount_dir = self.mount_dir(name)
        if config.get("source"):
            source = Path(config["source"])
            if not source.is_block_device():
                raise InvalidConfig(f"Storage pool source '{source}' is not a block device "
                                    "(leave source unset for a loop file)")
            btrfs_pool.create_block_pool(source, mount_dir, format=True)
            return {"source": str(source)}
        size = parse_size(config["size"]) if config.get("size") else DEFAULT_LOOP_SIZE
        image = paths.storage_dir() / "disks" / f"{name}.img"
        image.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        btrfs_pool.create_loop_pool(image, size, mount_dir, label=name)
        return {"source": str(image), "size": str(size)}

    def _delete_btrfs(self, name: str, config: dict[str, str]) -> None:
        from lxmgr.storage import btrfs_pool

        source = self._source(name, config)
        if source.kind == "loop":
            btrfs_pool.delete_pool(source)
        else:
            btrfs_pool.unmount_pool(source)
        with contextlib.suppress(OSError):
            self.mount_dir(name).rmdir()

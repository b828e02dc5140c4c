"""lxmgr's state in SQLite ($LXMGR_DIR/lxmgr.db, WAL): instances, profiles, networks, storage,
projects, trust and operations, under one schema with numbered migrations. Images are not
here: the image store's metadata files are their only record (lxmgr.images.store).

Two connections shared by the daemon's worker threads, each behind its own lock: one writes
(every write is its own transaction), one reads, so that reads go on (WAL: readers never wait
for a writer) while a write waits for another process's lock. Rows hold JSON where LXD's
objects are maps (config, devices, metadata).

Faults of the file leave as one-line errors naming it (DatabaseError): a lock held by another
process (after BUSY_TIMEOUT), corruption (PRAGMA quick_check at open, SQLITE_CORRUPT later),
a full disk, an I/O error; SQL and constraint errors stay sqlite3's (they are our bugs or
are caught where they mean a conflict).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from lxmgr import paths
from lxmgr.errors import Conflict, LxmgrError, NotFound
from lxmgr.model.instance import InstanceSpec
from lxmgr.model.profile import Profile
from lxmgr.model.snapshot import SnapshotSpec

# Migration N brings the schema from version N to N + 1; never edit a shipped one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE instances (
        name TEXT PRIMARY KEY,
        spec TEXT NOT NULL,
        last_used_at TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE profiles (
        name TEXT PRIMARY KEY,
        description TEXT NOT NULL DEFAULT '',
        config TEXT NOT NULL DEFAULT '{}',
        devices TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE images (
        fingerprint TEXT PRIMARY KEY,
        info TEXT NOT NULL
    );
    CREATE TABLE operations (
        id TEXT PRIMARY KEY,
        created_at TEXT NOT NULL,
        body TEXT NOT NULL
    );
    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    """
    CREATE TABLE networks (
        name TEXT PRIMARY KEY,
        description TEXT NOT NULL DEFAULT '',
        type TEXT NOT NULL DEFAULT 'bridge',
        config TEXT NOT NULL DEFAULT '{}'
    );
    """,
    """
    CREATE TABLE snapshots (
        instance TEXT NOT NULL,
        name TEXT NOT NULL,
        spec TEXT NOT NULL,
        PRIMARY KEY (instance, name)
    );
    """,
    """
    CREATE TABLE storage_pools (
        name TEXT PRIMARY KEY,
        driver TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        config TEXT NOT NULL DEFAULT '{}'
    );
    """,
    # The HTTPS trust store (lxmgr.daemon.auth) and single-use trust tokens.
    """
    CREATE TABLE certificates (
        fingerprint TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        type TEXT NOT NULL DEFAULT 'client',
        certificate TEXT NOT NULL,
        restricted INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE trust_tokens (
        secret TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL DEFAULT ''
    );
    """,
    # Custom storage volumes and their snapshots ("vol/snap"), lxmgr.instances.volume_records.
    """
    CREATE TABLE storage_volumes (
        pool TEXT NOT NULL,
        name TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        config TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL,
        PRIMARY KEY (pool, name)
    );
    """,
    # LXD projects (lxmgr.model.project); `default` exists from the start with every feature
    # on, as LXD's (lxd/db/cluster/update.go creates it in the first schema).
    """
    CREATE TABLE projects (
        name TEXT PRIMARY KEY,
        description TEXT NOT NULL DEFAULT '',
        config TEXT NOT NULL DEFAULT '{}'
    );
    INSERT INTO projects (name, description, config) VALUES ('default', 'Default LXD project',
        '{"features.images": "true", "features.profiles": "true", ' ||
        '"features.storage.volumes": "true", "features.networks": "true"}');
    """,
    # Restricted certificates (LXD's: restricted to a list of projects), and what a trust
    # token gives the certificate that uses it.
    """
    ALTER TABLE certificates ADD COLUMN projects TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE trust_tokens ADD COLUMN restricted INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE trust_tokens ADD COLUMN projects TEXT NOT NULL DEFAULT '[]';
    """,
    # The image index: a copy of the image store that nothing read (refreshed only by some
    # routes, so stale); the store's metadata files are the one record of each image.
    """
    DROP TABLE images;
    """,
)


# How long a statement waits for a lock another process holds before it fails with
# DatabaseLocked (sqlite3's busy timeout, seconds): a request answers in seconds, not minutes.
BUSY_TIMEOUT = 5.0

# Primary result codes (sqlite3.h) of the faults of the file, as opposed to SQL errors.
SQLITE_READONLY, SQLITE_IOERR, SQLITE_CORRUPT, SQLITE_FULL, SQLITE_CANTOPEN = 8, 10, 11, 13, 14
SQLITE_BUSY, SQLITE_LOCKED, SQLITE_NOTADB = 5, 6, 26


class DatabaseError(LxmgrError):
    """The state database cannot be used: corrupt, unreadable, on a full disk."""

    status = 500


class DatabaseLocked(DatabaseError):
    """Another process holds a lock on the state database; retrying later may work."""

    status = 503


def translate_error(err: sqlite3.Error, path: Path) -> DatabaseError | None:
    """The one-line error of a fault of the database file, None for other errors (SQL,
    constraints: left to the caller)."""
    code = getattr(err, "sqlite_errorcode", -1) & 0xFF
    if code in (SQLITE_BUSY, SQLITE_LOCKED):
        return DatabaseLocked(f"Database {path} is locked by another process")
    if code in (SQLITE_CORRUPT, SQLITE_NOTADB):
        return DatabaseError(corrupt_message(path, str(err)))
    if code == SQLITE_FULL:
        return DatabaseError(f"No space left on device to write database {path}")
    if code in (SQLITE_IOERR, SQLITE_READONLY, SQLITE_CANTOPEN):
        return DatabaseError(f"Failed to access database {path}: {err}")
    return None


def corrupt_message(path: Path, detail: str) -> str:
    return (f"Database {path} is corrupt ({detail.splitlines()[0]}): restore it from a backup "
            "or move it away, then restart lxmgrd")


class Database:
    """The state database; `path` defaults to $LXMGR_DIR/lxmgr.db. Opening it checks it
    (PRAGMA quick_check, which reads every page: milliseconds for lxmgr's few rows) unless
    check is false, and raises DatabaseError if it cannot be used."""

    def __init__(self, path: Path | None = None, *, check: bool = True) -> None:
        self.path = path or paths.root() / "lxmgr.db"
        self.path.parent.mkdir(mode=0o711, parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._read_lock = threading.Lock()
        with self._errors():
            self._conn = self._reader = self._connect()
        try:
            with self._errors():
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=NORMAL")
                self._reader = self._connect()
            if check:
                self.check()
            self.migrate()
        except BaseException:
            self.close()
            raise

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                               timeout=BUSY_TIMEOUT)

    def close(self) -> None:
        with self._lock, self._read_lock:
            self._conn.close()
            self._reader.close()

    def check(self) -> None:
        """Raise DatabaseError unless PRAGMA quick_check finds the file sound."""
        with self._read_lock, self._errors():
            found = [str(r[0]) for r in self._reader.execute("PRAGMA quick_check").fetchall()]
        if found != ["ok"]:
            raise DatabaseError(corrupt_message(self.path, "; ".join(found[:3])))

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Faults of the file as DatabaseError."""
        try:
            yield
        except sqlite3.Error as err:
            translated = translate_error(err, self.path)
            if translated is None:
                raise
            raise translated from err

    @contextmanager
    def _write_lock(self) -> Iterator[None]:
        """The writer connection's lock. Our own transactions hold it for milliseconds, so
        one not free within the busy timeout means its holder waits for another process."""
        if not self._lock.acquire(timeout=BUSY_TIMEOUT + 1):
            raise DatabaseLocked(f"Database {self.path} is locked by another process")
        try:
            yield
        finally:
            self._lock.release()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._write_lock(), self._errors():
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                # SQLite rolls back by itself after some errors (a full disk, an I/O error).
                if self._conn.in_transaction:
                    with suppress(sqlite3.Error):
                        self._conn.execute("ROLLBACK")
                raise

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._read_lock, self._errors():
            return self._reader.execute(sql, args).fetchall()

    def generation(self) -> tuple[int, int]:
        """A key for caches of what the tables hold: it moves on every change committed by
        any other connection than the reader's, the writer's included (PRAGMA data_version,
        read on the reader). Read it before the rows it keys, so a cache never files older
        rows under a newer key."""
        with self._read_lock, self._errors():
            version = self._reader.execute("PRAGMA data_version").fetchone()[0]
            return int(version), 0

    @property
    def version(self) -> int:
        return int(self._query("PRAGMA user_version")[0][0])

    def migrate(self) -> None:
        """Apply every migration newer than the file's user_version, each atomically."""
        with self._write_lock():
            for number in range(self.version, len(MIGRATIONS)):
                with self.transaction() as conn:
                    for statement in MIGRATIONS[number].split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {number + 1}")

    # -- settings ------------------------------------------------------------------------------

    def get_setting(self, key: str, default: str = "") -> str:
        rows = self._query("SELECT value FROM settings WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else default

    def set_setting(self, key: str, value: str) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)",
                         (key, value))

    def server_config(self) -> dict[str, str]:
        rows = self._query("SELECT key, value FROM settings WHERE key LIKE 'config:%'")
        return {k.removeprefix("config:"): v for k, v in rows}

    def set_server_config(self, config: dict[str, str]) -> None:
        """Replace the whole server config."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM settings WHERE key LIKE 'config:%'")
            conn.executemany("INSERT INTO settings (key, value) VALUES (?, ?)",
                             [(f"config:{k}", v) for k, v in config.items()])

    # -- instances ---------------------------------------------------------------------------

    def instance_names(self) -> list[str]:
        return [r[0] for r in self._query("SELECT name FROM instances ORDER BY name")]

    def instance_get(self, name: str) -> InstanceSpec:
        rows = self._query("SELECT spec FROM instances WHERE name = ?", (name,))
        if not rows:
            raise NotFound(f"Instance '{name}' not found")
        return InstanceSpec.from_dict(json.loads(rows[0][0]))

    def instance_specs(self) -> list[InstanceSpec]:
        rows = self._query("SELECT spec FROM instances ORDER BY name")
        return [InstanceSpec.from_dict(json.loads(r[0])) for r in rows]

    def instance_add(self, spec: InstanceSpec) -> None:
        try:
            with self.transaction() as conn:
                conn.execute("INSERT INTO instances (name, spec) VALUES (?, ?)",
                             (spec.name, json.dumps(spec.to_dict())))
        except sqlite3.IntegrityError:
            raise Conflict(f"Instance '{spec.name}' already exists") from None

    def instance_save(self, spec: InstanceSpec) -> None:
        with self.transaction() as conn:
            cur = conn.execute("UPDATE instances SET spec = ? WHERE name = ?",
                               (json.dumps(spec.to_dict()), spec.name))
            if cur.rowcount != 1:
                raise NotFound(f"Instance '{spec.name}' not found")

    def instance_remove(self, name: str) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM instances WHERE name = ?", (name,))
            conn.execute("DELETE FROM snapshots WHERE instance = ?", (name,))

    def instance_rename(self, spec: InstanceSpec, old: str) -> None:
        """Store spec (already carrying its new name) in place of old, with its snapshots."""
        try:
            with self.transaction() as conn:
                cur = conn.execute("UPDATE instances SET name = ?, spec = ? WHERE name = ?",
                                   (spec.name, json.dumps(spec.to_dict()), old))
                if cur.rowcount != 1:
                    raise NotFound(f"Instance '{old}' not found")
                rows = conn.execute("SELECT name, spec FROM snapshots WHERE instance = ?",
                                    (old,)).fetchall()
                for snap_name, text in rows:
                    snap = SnapshotSpec.from_dict(json.loads(text))
                    snap.instance.name = spec.name
                    conn.execute("UPDATE snapshots SET instance = ?, spec = ? WHERE instance = ?"
                                 " AND name = ?", (spec.name, json.dumps(snap.to_dict()), old,
                                                   snap_name))
        except sqlite3.IntegrityError:
            raise Conflict(f"Instance '{spec.name}' already exists") from None

    # -- storage pools ------------------------------------------------------------------------

    def pools(self) -> dict[str, dict[str, Any]]:
        rows = self._query("SELECT name, driver, description, config FROM storage_pools")
        return {r[0]: {"name": r[0], "driver": r[1], "description": r[2],
                       "config": json.loads(r[3])} for r in rows}

    def pool_add(self, name: str, driver: str, description: str,
                 config: dict[str, str]) -> None:
        try:
            with self.transaction() as conn:
                conn.execute("INSERT INTO storage_pools (name, driver, description, config) "
                             "VALUES (?, ?, ?, ?)", (name, driver, description,
                                                     json.dumps(config)))
        except sqlite3.IntegrityError:
            raise Conflict(f"Storage pool '{name}' already exists") from None

    def pool_save(self, name: str, description: str, config: dict[str, str]) -> None:
        with self.transaction() as conn:
            cur = conn.execute("UPDATE storage_pools SET description = ?, config = ? "
                               "WHERE name = ?", (description, json.dumps(config), name))
            if cur.rowcount != 1:
                raise NotFound(f"Storage pool '{name}' not found")

    def pool_remove(self, name: str) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM storage_pools WHERE name = ?", (name,))

    # -- snapshots -----------------------------------------------------------------------------

    def snapshots(self, instance: str) -> list[SnapshotSpec]:
        """An instance's snapshots, oldest first."""
        rows = self._query("SELECT spec FROM snapshots WHERE instance = ?", (instance,))
        snaps = [SnapshotSpec.from_dict(json.loads(r[0])) for r in rows]
        return sorted(snaps, key=lambda snap: (snap.created_at, snap.name))

    def snapshots_by_instance(self) -> dict[str, list[SnapshotSpec]]:
        """instance -> its snapshots, oldest first, for every instance (one query)."""
        found: dict[str, list[SnapshotSpec]] = {}
        for instance, text in self._query("SELECT instance, spec FROM snapshots"):
            found.setdefault(instance, []).append(SnapshotSpec.from_dict(json.loads(text)))
        for snaps in found.values():
            snaps.sort(key=lambda snap: (snap.created_at, snap.name))
        return found

    def snapshot_get(self, instance: str, name: str) -> SnapshotSpec:
        rows = self._query("SELECT spec FROM snapshots WHERE instance = ? AND name = ?",
                           (instance, name))
        if not rows:
            raise NotFound(f"Snapshot '{instance}/{name}' not found")
        return SnapshotSpec.from_dict(json.loads(rows[0][0]))

    def snapshot_add(self, instance: str, snap: SnapshotSpec) -> None:
        try:
            with self.transaction() as conn:
                conn.execute("INSERT INTO snapshots (instance, name, spec) VALUES (?, ?, ?)",
                             (instance, snap.name, json.dumps(snap.to_dict())))
        except sqlite3.IntegrityError:
            raise Conflict(f"Snapshot '{instance}/{snap.name}' already exists") from None

    def snapshot_save(self, instance: str, snap: SnapshotSpec, old_name: str | None = None
                      ) -> None:
        """Update a snapshot (renamed from old_name when given)."""
        try:
            with self.transaction() as conn:
                cur = conn.execute("UPDATE snapshots SET name = ?, spec = ? WHERE instance = ? "
                                   "AND name = ?", (snap.name, json.dumps(snap.to_dict()),
                                                    instance, old_name or snap.name))
                if cur.rowcount != 1:
                    raise NotFound(f"Snapshot '{instance}/{old_name or snap.name}' not found")
        except sqlite3.IntegrityError:
            raise Conflict(f"Snapshot '{instance}/{snap.name}' already exists") from None

    def snapshot_remove(self, instance: str, name: str) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM snapshots WHERE instance = ? AND name = ?",
                         (instance, name))

    def instance_touch(self, name: str, when: str) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE instances SET last_used_at = ? WHERE name = ?", (when, name))

    def instances_last_used(self) -> dict[str, str]:
        """name -> last_used_at of every instance (one query for a listing)."""
        return {r[0]: str(r[1]) for r in self._query(
            "SELECT name, last_used_at FROM instances")}

    def instance_last_used(self, name: str) -> str:
        rows = self._query("SELECT last_used_at FROM instances WHERE name = ?", (name,))
        return str(rows[0][0]) if rows else ""

    # -- profiles ----------------------------------------------------------------------------

    def profile_names(self) -> list[str]:
        return [r[0] for r in self._query("SELECT name FROM profiles ORDER BY name")]

    def profiles(self) -> dict[str, Profile]:
        rows = self._query("SELECT name, description, config, devices FROM profiles")
        return {r[0]: Profile(r[0], r[1], json.loads(r[2]), json.loads(r[3])) for r in rows}

    def profile_get(self, name: str) -> Profile:
        found = self.profiles().get(name)
        if found is None:
            raise NotFound(f"Profile '{name}' not found")
        return found

    def profile_add(self, profile: Profile) -> None:
        try:
            with self.transaction() as conn:
                conn.execute("INSERT INTO profiles (name, description, config, devices) "
                             "VALUES (?, ?, ?, ?)", _profile_row(profile))
        except sqlite3.IntegrityError:
            raise Conflict(f"Profile '{profile.name}' already exists") from None

    def profile_save(self, profile: Profile) -> None:
        with self.transaction() as conn:
            cur = conn.execute("UPDATE profiles SET description = ?, config = ?, devices = ? "
                               "WHERE name = ?", (*_profile_row(profile)[1:], profile.name))
            if cur.rowcount != 1:
                raise NotFound(f"Profile '{profile.name}' not found")

    def profile_remove(self, name: str) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM profiles WHERE name = ?", (name,))

    def profile_rename(self, old: str, new: str, specs: list[InstanceSpec]) -> None:
        """Rename a profile and the references of the given instances, atomically."""
        try:
            with self.transaction() as conn:
                conn.execute("UPDATE profiles SET name = ? WHERE name = ?", (new, old))
                for spec in specs:
                    spec.profiles = [new if p == old else p for p in spec.profiles]
                    conn.execute("UPDATE instances SET spec = ? WHERE name = ?",
                                 (json.dumps(spec.to_dict()), spec.name))
        except sqlite3.IntegrityError:
            raise Conflict(f"Profile '{new}' already exists") from None

    # -- projects ----------------------------------------------------------------------------

    def projects(self) -> dict[str, dict[str, Any]]:
        rows = self._query("SELECT name, description, config FROM projects")
        return {r[0]: {"name": r[0], "description": r[1], "config": json.loads(r[2])}
                for r in rows}

    def project_get(self, name: str) -> dict[str, Any]:
        rows = self._query("SELECT name, description, config FROM projects WHERE name = ?",
                           (name,))
        if not rows:
            raise NotFound(f"Project '{name}' not found")
        return {"name": rows[0][0], "description": rows[0][1], "config": json.loads(rows[0][2])}

    def project_add(self, name: str, description: str, config: dict[str, str]) -> None:
        try:
            with self.transaction() as conn:
                conn.execute("INSERT INTO projects (name, description, config) VALUES (?, ?, ?)",
                             (name, description, json.dumps(config)))
        except sqlite3.IntegrityError:
            raise Conflict(f"Project '{name}' already exists") from None

    def project_save(self, name: str, description: str, config: dict[str, str]) -> None:
        with self.transaction() as conn:
            cur = conn.execute("UPDATE projects SET description = ?, config = ? WHERE name = ?",
                               (description, json.dumps(config), name))
            if cur.rowcount != 1:
                raise NotFound(f"Project '{name}' not found")

    def project_rename(self, old: str, new: str) -> None:
        try:
            with self.transaction() as conn:
                cur = conn.execute("UPDATE projects SET name = ? WHERE name = ?", (new, old))
                if cur.rowcount != 1:
                    raise NotFound(f"Project '{old}' not found")
        except sqlite3.IntegrityError:
            raise Conflict(f"A project named '{new}' already exists") from None

    def project_remove(self, name: str) -> None:
        with self.transaction() as conn:
            cur = conn.execute("DELETE FROM projects WHERE name = ?", (name,))
            if cur.rowcount != 1:
                raise NotFound(f"Project '{name}' not found")

    # -- networks ----------------------------------------------------------------------------

    def networks(self) -> dict[str, dict[str, Any]]:
        rows = self._query("SELECT name, description, type, config FROM networks")
        return {r[0]: {"name": r[0], "description": r[1], "type": r[2],
                       "config": json.loads(r[3])} for r in rows}

    def network_get(self, name: str) -> dict[str, Any]:
        found = self.networks().get(name)
        if found is None:
            raise NotFound(f"Network '{name}' not found")
        return found

    def network_add(self, name: str, description: str, kind: str,
                    config: dict[str, str]) -> None:
        try:
            with self.transaction() as conn:
                conn.execute("INSERT INTO networks (name, description, type, config) "
                             "VALUES (?, ?, ?, ?)", (name, description, kind, json.dumps(config)))
        except sqlite3.IntegrityError:
            raise Conflict(f"Network '{name}' already exists") from None

    def network_save(self, name: str, description: str, config: dict[str, str]) -> None:
        with self.transaction() as conn:
            cur = conn.execute("UPDATE networks SET description = ?, config = ? WHERE name = ?",
                               (description, json.dumps(config), name))
            if cur.rowcount != 1:
                raise NotFound(f"Network '{name}' not found")

    def network_rename(self, name: str, new: str) -> None:
        try:
            with self.transaction() as conn:
                cur = conn.execute("UPDATE networks SET name = ? WHERE name = ?", (new, name))
                if cur.rowcount != 1:
                    raise NotFound(f"Network '{name}' not found")
        except sqlite3.IntegrityError:
            raise Conflict(f"Network '{new}' already exists") from None

    def network_remove(self, name: str) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM networks WHERE name = ?", (name,))

    # -- operations ----------------------------------------------------------------------------

    def operation_put(self, op: dict[str, Any]) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO operations (id, created_at, body) "
                         "VALUES (?, ?, ?)", (op["id"], op["created_at"], json.dumps(op)))

    def operations(self) -> list[dict[str, Any]]:
        rows = self._query("SELECT body FROM operations ORDER BY created_at")
        return [json.loads(r[0]) for r in rows]

    def operations_prune(self, keep: int) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM operations WHERE id NOT IN (SELECT id FROM operations "
                         "ORDER BY created_at DESC LIMIT ?)", (keep,))

    # -- certificates (HTTPS trust store and trust tokens; lxmgr.daemon.auth) ------------------

    def certificate_list(self) -> list[dict[str, Any]]:
        rows = self._query("SELECT fingerprint, name, type, certificate, restricted, projects "
                           "FROM certificates ORDER BY name, fingerprint")
        return [{"fingerprint": r[0], "name": r[1], "type": r[2], "certificate": r[3],
                 "restricted": bool(r[4]), "projects": json.loads(r[5])} for r in rows]

    def certificate_get(self, fingerprint: str) -> dict[str, Any] | None:
        """The trusted certificate with that fingerprint, None when there is none."""
        found = [row for row in self.certificate_list() if row["fingerprint"] == fingerprint]
        return found[0] if found else None

    def certificate_add(self, fingerprint: str, name: str, pem: str, kind: str = "client", *,
                        restricted: bool = False, projects: list[str] | None = None) -> bool:
        """Store a trusted certificate; False when that fingerprint is there already."""
        with self.transaction() as conn:
            cursor = conn.execute("INSERT OR IGNORE INTO certificates (fingerprint, name, type, "
                                  "certificate, restricted, projects) VALUES (?, ?, ?, ?, ?, ?)",
                                  (fingerprint, name, kind, pem, int(restricted),
                                   json.dumps(projects or [])))
            return cursor.rowcount == 1

    def certificate_update(self, fingerprint: str, name: str, restricted: bool,
                           projects: list[str]) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE certificates SET name = ?, restricted = ?, projects = ? "
                         "WHERE fingerprint = ?",
                         (name, int(restricted), json.dumps(projects), fingerprint))

    def certificates_project_renamed(self, old: str, new: str | None) -> None:
        """A project renamed (new) or deleted (None) in every certificate's project list."""
        for row in self.certificate_list():
            if old in row["projects"]:
                projects = [new if p == old else p for p in row["projects"]]
                self.certificate_update(row["fingerprint"], row["name"], row["restricted"],
                                        [p for p in projects if p])

    def certificate_remove(self, fingerprint: str) -> bool:
        with self.transaction() as conn:
            return conn.execute("DELETE FROM certificates WHERE fingerprint = ?",
                                (fingerprint,)).rowcount == 1

    def token_add(self, secret: str, name: str, created_at: str, expires_at: str, *,
                  restricted: bool = False, projects: list[str] | None = None) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT INTO trust_tokens (secret, name, created_at, expires_at, "
                         "restricted, projects) VALUES (?, ?, ?, ?, ?, ?)",
                         (secret, name, created_at, expires_at, int(restricted),
                          json.dumps(projects or [])))

    def token_list(self) -> list[dict[str, Any]]:
        rows = self._query("SELECT secret, name, created_at, expires_at, restricted, projects "
                           "FROM trust_tokens ORDER BY created_at")
        return [{"secret": r[0], "name": r[1], "created_at": r[2], "expires_at": r[3],
                 "restricted": bool(r[4]), "projects": json.loads(r[5])} for r in rows]

    def token_consume(self, secret: str, now: str) -> dict[str, Any] | None:
        """The token's client name, restricted and projects if it exists and has not
        expired (RFC 3339 UTC strings compare in time order); it is deleted either way:
        tokens are single use."""
        with self.transaction() as conn:
            rows = conn.execute("SELECT name, expires_at, restricted, projects FROM "
                                "trust_tokens WHERE secret = ?", (secret,)).fetchall()
            conn.execute("DELETE FROM trust_tokens WHERE secret = ?", (secret,))
        if not rows or (rows[0][1] and rows[0][1] <= now):
            return None
        return {"name": str(rows[0][0]), "restricted": bool(rows[0][2]),
                "projects": json.loads(rows[0][3])}

    def token_remove(self, secret: str) -> bool:
        with self.transaction() as conn:
            return conn.execute("DELETE FROM trust_tokens WHERE secret = ?",
                                (secret,)).rowcount == 1


def _profile_row(profile: Profile) -> tuple[str, str, str, str]:
    return (profile.name, profile.description, json.dumps(profile.config),
            json.dumps(profile.devices))

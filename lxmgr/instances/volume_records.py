"""Custom storage volume records in the state database (table storage_volumes): one row per
volume and per snapshot, a snapshot named "volume/snapshot" as LXD's database names them.

A row is {pool, name, description, config, created_at}; the volume's content lives in its
pool (lxmgr.storage.custom). Every call is one transaction of lxmgr.instances.db.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from lxmgr.errors import Conflict, NotFound
from lxmgr.instances.db import Database

_COLUMNS = "pool, name, description, config, created_at"


def _row(values: tuple[Any, ...]) -> dict[str, Any]:
    pool, name, description, config, created_at = values
    return {"pool": pool, "name": name, "description": description,
            "config": json.loads(config), "created_at": created_at}


def _what(pool: str, name: str) -> str:
    volume, _, snapshot = name.partition("/")
    if snapshot:
        return f"Storage volume snapshot '{name}' not found in pool '{pool}'"
    return f"Storage volume '{volume}' not found in pool '{pool}'"


class VolumeRecords:
    """CRUD of the storage_volumes rows."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def list(self, pool: str | None = None) -> list[dict[str, Any]]:
        """Every volume and snapshot row (of one pool), by pool then name."""
        where, args = ("WHERE pool = ?", (pool,)) if pool is not None else ("", ())
        with self.db.transaction() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM storage_volumes {where} "
                                "ORDER BY pool, name", args).fetchall()
        return [_row(r) for r in rows]

    def get(self, pool: str, name: str) -> dict[str, Any]:
        with self.db.transaction() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM storage_volumes WHERE pool = ? AND "
                               "name = ?", (pool, name)).fetchone()
        if row is None:
            raise NotFound(_what(pool, name))
        return _row(row)

    def add(self, pool: str, name: str, description: str, config: dict[str, str],
            created_at: str) -> None:
        try:
            with self.db.transaction() as conn:
                conn.execute(f"INSERT INTO storage_volumes ({_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
                             (pool, name, description, json.dumps(config), created_at))
        except sqlite3.IntegrityError:
            volume, _, snapshot = name.partition("/")
            raise Conflict(f"Snapshot '{name}' already exists" if snapshot else
                           f"Storage volume '{volume}' already exists in pool "
                           f"'{pool}'") from None

    def save(self, pool: str, name: str, description: str, config: dict[str, str]) -> None:
        with self.db.transaction() as conn:
            cur = conn.execute("UPDATE storage_volumes SET description = ?, config = ? WHERE "
                               "pool = ? AND name = ?",
                               (description, json.dumps(config), pool, name))
            if cur.rowcount != 1:
                raise NotFound(_what(pool, name))

    def remove(self, pool: str, name: str) -> None:
        """Drop a row; a volume's snapshot rows go with it."""
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM storage_volumes WHERE pool = ? AND (name = ? OR "
                         "substr(name, 1, ?) = ?)", (pool, name, len(name) + 1, f"{name}/"))

    def rename(self, pool: str, old: str, new: str) -> None:
        """Rename a volume's row and its snapshots' ("old/s" -> "new/s"), or one snapshot's
        row when old and new are "vol/snap" names."""
        try:
            with self.db.transaction() as conn:
                cur = conn.execute("UPDATE storage_volumes SET name = ? WHERE pool = ? AND "
                                   "name = ?", (new, pool, old))
                if cur.rowcount != 1:
                    raise NotFound(_what(pool, old))
                if "/" not in old:
                    conn.execute("UPDATE storage_volumes SET name = ? || substr(name, ?) "
                                 "WHERE pool = ? AND substr(name, 1, ?) = ?",
                                 (f"{new}/", len(old) + 2, pool, len(old) + 1, f"{old}/"))
        except sqlite3.IntegrityError:
            raise Conflict(f"Storage volume '{new}' already exists in pool '{pool}'") from None

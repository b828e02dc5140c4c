"""Projects in the state database: the migration that adds `default`, add/save/rename/remove."""

from __future__ import annotations

from pathlib import Path

import pytest

from lxmgr.errors import Conflict, NotFound
from lxmgr.instances.db import MIGRATIONS, Database
from lxmgr.model import project


def test_default_project_exists_after_migration(tmp_path: Path) -> None:
    db = Database(tmp_path / "state.db")
    try:
        assert db.version == len(MIGRATIONS)
        assert db.projects() == {"default": {
            "name": "default", "description": project.DEFAULT_DESCRIPTION,
            "config": project.default_config()}}
    finally:
        db.close()


def test_project_lifecycle(tmp_path: Path) -> None:
    db = Database(tmp_path / "state.db")
    try:
        db.project_add("web", "Web team", {"features.images": "true"})
        with pytest.raises(Conflict, match="Project 'web' already exists"):
            db.project_add("web", "", {})
        db.project_save("web", "Web", {"user.a": "b"})
        assert db.project_get("web") == {"name": "web", "description": "Web",
                                         "config": {"user.a": "b"}}
        with pytest.raises(Conflict, match="A project named 'default' already exists"):
            db.project_rename("web", "default")
        db.project_rename("web", "www")
        with pytest.raises(NotFound, match="Project 'web' not found"):
            db.project_get("web")
        db.project_remove("www")
        assert sorted(db.projects()) == ["default"]
        with pytest.raises(NotFound):
            db.project_remove("www")
        with pytest.raises(NotFound):
            db.project_save("www", "", {})
    finally:
        db.close()

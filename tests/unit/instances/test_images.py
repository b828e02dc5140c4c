"""The image service (lxmgr.instances.images.Images) on a store of fake images: each change
announces itself once (LXD's action, source and context), a step that changes nothing and
a refused change announce nothing; the image's API object; alias URL segments; the image
index table is gone from the state database."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from lxmgr.errors import Conflict, InvalidState, NotFound
from lxmgr.images.store import PROJECT as IMAGE_PROJECT
from lxmgr.images.store import ImageStore
from lxmgr.instances.db import MIGRATIONS, Database
from lxmgr.instances.images import Images, alias_segment, view
from tests.unit.images.test_store import FP1, FP2, fake_image


class Recorder:
    """EventBus.changed, recorded."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str, dict[str, Any]]] = []

    def changed(self, collection: str, action: str, name: str, **context: Any) -> None:
        self.seen.append((collection, action, name, context))


@pytest.fixture
def events() -> Recorder:
    return Recorder()


@pytest.fixture
def users() -> dict[str, list[str]]:
    return {}


@pytest.fixture
def images(tmp_path: Path, events: Recorder, users: dict[str, list[str]]) -> Images:
    fake_image(tmp_path, FP1, 200, ["debian"])
    return Images(ImageStore(tmp_path), events,  # type: ignore[arg-type]
                  lambda fp: users.get(fp, []))


def test_adding_announces_only_a_new_image(images: Images, events: Recorder) -> None:
    images.adding(lambda: images.get(FP1))  # found, not made: no change
    assert events.seen == []
    made = images.adding(lambda: images.store.get(
        fake_image(images.root, FP2, 300, []).name))
    assert made.fingerprint == FP2
    assert events.seen == [("images", "image-created", FP2, {"type": "container"})]


def test_copy_from_another_project_is_a_creation_there(images: Images,
                                                       events: Recorder) -> None:
    token = IMAGE_PROJECT.set("p1")
    try:
        joined = images.copy_from(images.get(FP1, "default"), ["mine"])
        assert joined.aliases == ("mine",)
        images.copy_from(joined)  # the project has it already
    finally:
        IMAGE_PROJECT.reset(token)
    assert events.seen == [("images", "image-created", FP1, {"type": "container"})]


def test_update_delete_and_users(images: Images, events: Recorder,
                                 users: dict[str, list[str]]) -> None:
    images.update(images.get(FP1), {"properties": {"team": "a"}}, True)
    users[FP1] = ["c1"]
    with pytest.raises(InvalidState, match="used by instance c1"):
        images.delete(FP1)
    users.clear()
    images.delete(FP1)
    assert events.seen == [("images", "image-updated", FP1, {}),
                           ("images", "image-deleted", FP1, {})]
    assert images.list() == []


def test_a_refresh_step_deletes_silently(images: Images, events: Recorder) -> None:
    images.delete(FP1, announce=False)
    assert images.list() == [] and events.seen == []


def test_secret_and_export(images: Images, events: Recorder, tmp_path: Path) -> None:
    assert len(images.create_secret(images.get(FP1))) == 64
    staging = tmp_path / "staging"
    staging.mkdir()
    files = images.export_files(images.get(FP1), staging)
    assert [f.parent for f in files] == [staging]
    assert events.seen == [("images", "image-secret-created", FP1, {}),
                           ("images", "image-retrieved", FP1, {})]


def test_alias_changes(images: Images, events: Recorder) -> None:
    fake_image(images.root, FP2, 300, [])
    images.create_alias("stable", FP1)
    with pytest.raises(Conflict, match="Alias 'stable' already exists"):
        images.create_alias("stable", FP2)
    images.rename_alias("stable", "lts/1")
    with pytest.raises(Conflict):
        images.rename_alias("lts/1", "debian")
    images.update_alias("lts/1", FP2[:6])
    assert images.alias_target("lts/1").fingerprint == FP2
    images.delete_alias("lts/1")
    with pytest.raises(NotFound):
        images.delete_alias("lts/1")
    alias = "images/aliases"
    assert events.seen == [
        (alias, "image-alias-created", "stable", {"target": FP1}),
        (alias, "image-alias-renamed", "lts%2F1", {"old_name": "stable"}),
        (alias, "image-alias-updated", "lts%2F1", {"target": FP2}),
        (alias, "image-alias-deleted", "lts%2F1", {})]
    assert images.get(FP1).aliases == ("debian",)


def test_alias_segment_escapes_as_go_path_escape() -> None:
    assert alias_segment("a/b c?d;e,f") == "a%2Fb%20c%3Fd%3Be%2Cf"
    assert alias_segment("x:y@z=1+2&$") == "x:y@z=1+2&$"


def test_view_is_lxd_image_object(images: Images) -> None:
    shown = view(images.get(FP1))
    assert (shown["fingerprint"], shown["architecture"], shown["project"]) == \
        (FP1, "x86_64", "default")
    assert shown["aliases"] == [{"name": "debian", "description": ""}]
    assert shown["properties"]["description"] == "test"


def test_image_index_table_is_dropped(tmp_path: Path) -> None:
    db = Database(tmp_path / "lxmgr.db")
    try:
        assert db.version == len(MIGRATIONS)
    finally:
        db.close()
    conn = sqlite3.connect(tmp_path / "lxmgr.db")
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    finally:
        conn.close()
    assert "images" not in tables and "instances" in tables

"""ImageStore on fake entries: listing, resolution by fingerprint, alias and prefix."""

from __future__ import annotations

from pathlib import Path

import pytest

from lxmgr.errors import Conflict, InvalidConfig, NotFound
from lxmgr.images.store import MAX_METADATA_BYTES, ImageStore, read_metadata, write_metadata

FP1 = "ab" + "1" * 62
FP2 = "ac" + "2" * 62


def fake_image(root: Path, fp: str, created: int, aliases: list[str]) -> Path:
    path = root / fp
    (path / "rootfs").mkdir(parents=True)
    write_metadata(path, {"architecture": "amd64", "os": "debian", "release": "12",
                          "created_at": created, "aliases": aliases, "size": 42,
                          "recipe_sha256": f"sha-{fp[:2]}",
                          "properties": {"description": "test"}})
    return path


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    fake_image(tmp_path, FP1, 200, ["debian", "debian/12"])
    fake_image(tmp_path, FP2, 100, [])
    (tmp_path / ".build-xyz").mkdir()  # a build in progress is not an image
    (tmp_path / "not-an-image").mkdir()
    return ImageStore(tmp_path)


def test_list_sorted_by_creation(store: ImageStore) -> None:
    images = store.list()
    assert [i.fingerprint for i in images] == [FP2, FP1]
    first = images[1]
    assert first.rootfs == store.root / FP1 / "rootfs"
    assert (first.os, first.release, first.size, first.description) == \
        ("debian", "12", 42, "test")


def test_default_root_follows_lxmgr_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LXMGR_DIR", str(tmp_path))
    assert ImageStore().root == tmp_path / "images"
    assert ImageStore().list() == []


@pytest.mark.parametrize(("ref", "fp"), [(FP1, FP1), ("debian", FP1), ("debian/12", FP1),
                                         ("ac", FP2), ("ab1", FP1)])
def test_get_resolves(store: ImageStore, ref: str, fp: str) -> None:
    assert store.get(ref).fingerprint == fp


def test_get_not_found_names_the_ref(store: ImageStore) -> None:
    with pytest.raises(NotFound, match="'ubuntu'"):
        store.get("ubuntu")


def test_ambiguous_prefix(store: ImageStore) -> None:
    with pytest.raises(Conflict, match="ambiguous"):
        store.get("a")


def test_aliases(store: ImageStore) -> None:
    store.add_alias("ac", "mine")
    assert store.get("mine").fingerprint == FP2
    with pytest.raises(Conflict, match="'debian'"):
        store.add_alias(FP2, "debian")
    store.add_alias(FP2, "debian", take_over=True)
    assert store.get("debian").fingerprint == FP2
    assert store.get(FP1).aliases == ("debian/12",)
    store.remove_alias("mine")
    with pytest.raises(NotFound):
        store.get("mine")
    with pytest.raises(NotFound):
        store.remove_alias("mine")


def test_find_by_recipe(store: ImageStore) -> None:
    assert store.find_by_recipe("sha-ab").fingerprint == FP1
    assert store.find_by_recipe("nope") is None


def test_delete(store: ImageStore) -> None:
    with pytest.raises(InvalidConfig):
        store.delete("ab")
    store.delete(FP1)
    assert not (store.root / FP1).exists()
    assert [i.fingerprint for i in store.list()] == [FP2]


def test_metadata_is_size_capped(tmp_path: Path) -> None:
    (tmp_path / "metadata.yaml").write_text("a: " + "x" * MAX_METADATA_BYTES)
    with pytest.raises(InvalidConfig, match="larger"):
        read_metadata(tmp_path)


def test_metadata_is_safe_loaded(tmp_path: Path) -> None:
    (tmp_path / "metadata.yaml").write_text("!!python/object/apply:os.system ['true']\n")
    with pytest.raises(InvalidConfig):
        read_metadata(tmp_path)


def test_broken_entry_does_not_hide_others(store: ImageStore) -> None:
    (store.root / FP2 / "metadata.yaml").write_text("[unclosed")
    assert [i.fingerprint for i in store.list()] == [FP1]


def test_a_missing_name_lists_the_local_images(store: ImageStore, tmp_path: Path) -> None:
    with pytest.raises(NotFound) as err:
        store.get("nosuch")
    assert str(err.value) == ("Image 'nosuch' not found: local images are ac2222222222, "
                              "debian, debian/12")
    with pytest.raises(NotFound, match=r"^Image 'x' not found: there are no local images$"):
        ImageStore(tmp_path / "empty").get("x")

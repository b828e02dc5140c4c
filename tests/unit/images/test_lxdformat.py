"""lxdformat: metadata parsing (errors name the field), unified and split imports (tar and
squashfs rootfs), LXD fingerprints, hostile layouts refused with nothing left, export round
trips."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

from lxmgr.errors import Conflict, InvalidConfig
from lxmgr.images.fingerprint import fingerprint_tree
from lxmgr.images.lxdformat import (
    MAX_LXD_METADATA_BYTES,
    build_store_metadata,
    debian_architecture,
    export_image,
    export_split,
    import_image,
    lxd_architecture,
    original_files,
    original_names,
    parse_metadata,
    render_metadata,
)
from lxmgr.images.store import ImageStore, read_metadata, write_metadata

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (image files are root's)")
needs_squashfs = pytest.mark.skipif(shutil.which("mksquashfs") is None
                                    or shutil.which("unsquashfs") is None,
                                    reason="needs squashfs-tools")

META = {"architecture": "x86_64", "creation_date": 1_700_000_000, "expiry_date": 1_800_000_000,
        "properties": {"os": "Debian", "release": "bookworm", "description": "Debian 12",
                       "variant": "default"},
        "templates": {"/etc/hostname": {"when": ["create", "copy"], "template": "hostname.tpl",
                                        "create_only": False, "properties": {}}}}


def meta_bytes(**changes: object) -> bytes:
    return yaml.safe_dump({**META, **changes}).encode()


def test_parse_metadata() -> None:
    meta = parse_metadata(meta_bytes())
    assert (meta.architecture, meta.creation_date, meta.expiry_date) == \
        ("amd64", 1_700_000_000, 1_800_000_000)
    assert meta.properties["variant"] == "default"
    tpl = meta.templates["/etc/hostname"]
    assert (tpl.when, tpl.template, tpl.create_only) == (("create", "copy"), "hostname.tpl", False)


@pytest.mark.parametrize(("lxd", "debian"), [("x86_64", "amd64"), ("aarch64", "arm64"),
                                             ("amd64", "amd64"), ("armv7l", "armhf")])
def test_architectures(lxd: str, debian: str) -> None:
    assert debian_architecture(lxd) == debian
    assert lxd_architecture(debian) == (lxd if lxd != "amd64" else "x86_64")


@pytest.mark.parametrize(("raw", "field"), [
    (meta_bytes(architecture=None), "'architecture' is missing"),
    (meta_bytes(architecture="vax"), "'architecture': unknown architecture 'vax'"),
    (meta_bytes(creation_date="yesterday"), "'creation_date' must be a UNIX time"),
    (meta_bytes(expiry_date=-1), "'expiry_date' must be a UNIX time"),
    (meta_bytes(properties=["os"]), "'properties' must be a mapping"),
    (meta_bytes(properties={"os": {"nested": 1}}), "'properties.os' must be a string"),
    (meta_bytes(templates=[]), "'templates' must be a mapping"),
    (meta_bytes(templates={"etc/x": {"when": ["create"], "template": "x.tpl"}}),
     "'templates.etc/x': the key must be an absolute path"),
    (meta_bytes(templates={"/etc/x": {"when": ["boot"], "template": "x.tpl"}}),
     "'templates./etc/x.when' must be a list of"),
    (meta_bytes(templates={"/etc/x": {"when": ["create"], "template": "../x.tpl"}}),
     "'templates./etc/x.template' must be a file name"),
    (meta_bytes(templates={"/etc/x": {"when": ["create"], "template": "x", "create_only": 1}}),
     "'templates./etc/x.create_only' must be a boolean"),
    (b"[1, 2]", "metadata.yaml is not a mapping"),
    (b"a: [", "metadata.yaml is not valid YAML"),
    (b"x" * (MAX_LXD_METADATA_BYTES + 1), "larger than"),
])
def test_parse_metadata_errors(raw: bytes, field: str) -> None:
    with pytest.raises(InvalidConfig) as exc:
        parse_metadata(raw)
    assert field in str(exc.value) and "\n" not in str(exc.value)


def test_store_metadata_round_trip() -> None:
    meta = parse_metadata(meta_bytes())
    data = build_store_metadata(meta, size=42, aliases=["deb"])
    assert (data["architecture"], data["os"], data["release"], data["created_at"]) == \
        ("amd64", "Debian", "bookworm", 1_700_000_000)
    assert data["properties"] == META["properties"] and data["templates"] == META["templates"]
    assert yaml.safe_load(render_metadata(data)) == META


# --- image files -------------------------------------------------------------------------


def make_rootfs(root: Path) -> Path:
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hostname").write_text("template me\n")
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / "passwd").write_bytes(b"suid binary")
    os.chmod(root / "usr" / "bin" / "passwd", 0o4755)
    os.link(root / "usr" / "bin" / "passwd", root / "usr" / "bin" / "chfn")
    os.symlink("/run/systemd/resolve/stub-resolv.conf", root / "etc" / "resolv.conf")
    os.chmod(root, 0o755)
    return root


def add_tree(tf: tarfile.TarFile, root: Path, prefix: str) -> None:
    for path in sorted([root, *root.rglob("*")]):
        rel = path.relative_to(root).as_posix()
        tf.add(path, f"{prefix}{rel}" if rel != "." else (prefix.rstrip("/") or "."),
               recursive=False)


def add_bytes(tf: tarfile.TarFile, name: str, data: bytes, kind: bytes = tarfile.REGTYPE,
              linkname: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, len(data), linkname
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    tf.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def unified(tmp_path: Path, *, meta: bytes | None = None, rootfs: bool = True,
            extra: list[tuple[str, bytes, bytes, str]] = ()) -> Path:
    out = tmp_path / "unified.tar.gz"
    with tarfile.open(out, "w:gz", format=tarfile.PAX_FORMAT) as tf:
        add_bytes(tf, "metadata.yaml", meta_bytes() if meta is None else meta)
        add_bytes(tf, "templates", b"", tarfile.DIRTYPE)
        add_bytes(tf, "templates/hostname.tpl", b"{{ container.name }}\n")
        if rootfs:
            add_tree(tf, make_rootfs(tmp_path / "src"), "rootfs/")
        for name, data, kind, link in extra:
            add_bytes(tf, name, data, kind, link)
    return out


def metadata_tarball(tmp_path: Path) -> Path:
    out = tmp_path / "meta.tar.xz"
    with tarfile.open(out, "w:xz") as tf:
        add_bytes(tf, "metadata.yaml", meta_bytes())
        add_bytes(tf, "templates/hostname.tpl", b"{{ container.name }}\n")
    return out


def sha256(*paths: Path) -> str:
    h = hashlib.sha256()
    for path in paths:
        h.update(path.read_bytes())
    return h.hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "images")


def assert_nothing_left(store: ImageStore) -> None:
    assert not store.root.exists() or os.listdir(store.root) == []


def assert_imported_tree(store: ImageStore, fp: str) -> None:
    image = store.get(fp)
    passwd = (image.rootfs / "usr/bin/passwd").stat()
    assert stat.S_IMODE(passwd.st_mode) == 0o4755 and passwd.st_uid == 0
    assert (image.rootfs / "usr/bin/chfn").stat().st_ino == passwd.st_ino
    assert os.readlink(image.rootfs / "etc/resolv.conf") == \
        "/run/systemd/resolve/stub-resolv.conf"
    assert (image.path / "templates" / "hostname.tpl").is_file()
    assert stat.S_IMODE(image.rootfs.stat().st_mode) == 0o755


@needs_root
def test_import_unified(tmp_path: Path, store: ImageStore) -> None:
    src = unified(tmp_path)
    events = []
    image = import_image([src], store, aliases=["deb12"], progress=events.append)
    assert image.fingerprint == sha256(src)
    assert (image.architecture, image.os, image.release, image.description) == \
        ("amd64", "Debian", "bookworm", "Debian 12")
    assert image.created_at == 1_700_000_000 and image.aliases == ("deb12",)
    assert image.size == len("template me\n") + 2 * len(b"suid binary")
    assert_imported_tree(store, image.fingerprint)
    data = read_metadata(image.path)
    assert data["templates"] == META["templates"] and data["properties"] == META["properties"]
    assert events[-1].stage == "done" and events[-1].fraction == 1.0
    assert sorted(os.listdir(store.root)) == [image.fingerprint]
    assert sorted(os.listdir(image.path)) == ["metadata.yaml", "original", "rootfs",
                                              "templates"]
    kept = original_files(image)
    assert kept == [image.path / "original" / f"{image.fingerprint}.tar.gz"]
    assert kept[0].read_bytes() == src.read_bytes()
    assert kept[0].stat().st_ino == src.stat().st_ino  # a hard link: no second copy


@needs_root
def test_reimport_is_noop_and_adds_alias(tmp_path: Path, store: ImageStore) -> None:
    src = unified(tmp_path)
    first = import_image([src], store)
    inode = first.rootfs.stat().st_ino
    again = import_image([src], store, aliases=["again"], expected_fingerprint=first.fingerprint)
    assert again.fingerprint == first.fingerprint and again.aliases == ("again",)
    assert again.rootfs.stat().st_ino == inode


@needs_root
def test_expected_fingerprint_mismatch(tmp_path: Path, store: ImageStore) -> None:
    src = unified(tmp_path)
    with pytest.raises(InvalidConfig, match="^Image fingerprint mismatch: expected '0+', got"):
        import_image([src], store, expected_fingerprint="0" * 64)
    with pytest.raises(InvalidConfig, match="not a sha256 hex digest"):
        import_image([src], store, expected_fingerprint="abc")
    assert_nothing_left(store)


@needs_root
def test_alias_conflict_checked_first(tmp_path: Path, store: ImageStore) -> None:
    fp = "ab" * 32
    (store.root / fp / "rootfs").mkdir(parents=True)
    write_metadata(store.root / fp, {"architecture": "amd64", "aliases": ["taken"]})
    with pytest.raises(Conflict, match="Alias 'taken' already points to image 'abababababab'"):
        import_image([unified(tmp_path)], store, aliases=["taken"])
    assert os.listdir(store.root) == [fp]


@needs_root
def test_import_split_tar_rootfs(tmp_path: Path, store: ImageStore) -> None:
    meta = metadata_tarball(tmp_path)
    rootfs = tmp_path / "rootfs.tar.xz"
    with tarfile.open(rootfs, "w:xz") as tf:
        add_tree(tf, make_rootfs(tmp_path / "src"), "")
    image = import_image([meta, rootfs], store)
    assert image.fingerprint == sha256(meta, rootfs)
    assert_imported_tree(store, image.fingerprint)
    kept = original_files(image)
    assert [p.name for p in kept] == [f"meta-{image.fingerprint}.tar.xz",
                                      f"{image.fingerprint}.tar.xz"]
    assert sha256(*kept) == image.fingerprint


@needs_root
def test_original_copied_across_filesystems(tmp_path: Path, store: ImageStore,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    src = unified(tmp_path)

    real_link = os.link

    def link(src: object, dst: object, **kwargs: object) -> None:
        if "/original/" in str(dst):  # keep_original's link; not the archive's hard links
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_link(src, dst, **kwargs)  # type: ignore[arg-type]
    monkeypatch.setattr(os, "link", link)
    image = import_image([src], store)
    kept = original_files(image)
    assert kept and kept[0].read_bytes() == src.read_bytes()
    assert kept[0].stat().st_ino != src.stat().st_ino


@needs_root
def test_image_stored_without_original_adopts_it(tmp_path: Path, store: ImageStore) -> None:
    src = unified(tmp_path)
    image = import_image([src], store)
    shutil.rmtree(image.path / "original")
    data = read_metadata(image.path)
    del data["original_files"]
    write_metadata(image.path, data)
    assert original_files(image) is None
    import_image([src], store)
    assert original_files(image) == [image.path / "original" / f"{image.fingerprint}.tar.gz"]


def test_original_names(tmp_path: Path) -> None:
    fp = "cd" * 32
    plain, squash = tmp_path / "plain.tar", tmp_path / "fs.squashfs"
    with tarfile.open(plain, "w", format=tarfile.USTAR_FORMAT) as tf:
        add_bytes(tf, "metadata.yaml", b"x")
    squash.write_bytes(b"hsqs" + bytes(300))
    assert original_names([plain], fp) == [f"{fp}.tar"]
    assert original_names([metadata_tarball(tmp_path), squash], fp) == \
        [f"meta-{fp}.tar.xz", f"{fp}.squashfs"]


@needs_root
@needs_squashfs
def test_import_split_squashfs_rootfs(tmp_path: Path, store: ImageStore) -> None:
    meta = metadata_tarball(tmp_path)
    rootfs = tmp_path / "rootfs.squashfs"
    subprocess.run(["mksquashfs", make_rootfs(tmp_path / "src"), rootfs, "-noappend",
                    "-no-progress", "-quiet"], check=True)
    image = import_image([meta, rootfs], store)
    assert image.fingerprint == sha256(meta, rootfs)
    assert_imported_tree(store, image.fingerprint)
    assert fingerprint_tree(image.rootfs) == fingerprint_tree(tmp_path / "src")


@needs_root
@needs_squashfs
def test_squashfs_with_fifo_refused(tmp_path: Path, store: ImageStore) -> None:
    src = make_rootfs(tmp_path / "src")
    os.mkfifo(src / "etc" / "initctl")
    rootfs = tmp_path / "rootfs.squashfs"
    subprocess.run(["mksquashfs", src, rootfs, "-noappend", "-no-progress", "-quiet"],
                   check=True)
    with pytest.raises(InvalidConfig, match="'squashfs-root/etc/initctl' is not a regular file"):
        import_image([metadata_tarball(tmp_path), rootfs], store)
    assert_nothing_left(store)


@needs_root
@pytest.mark.parametrize(("extra", "rootfs", "error"), [
    ([("rootfs", b"", tarfile.SYMTYPE, "/")], False, "Image rootfs is a symlink"),
    ([("rootfs", b"file", tarfile.REGTYPE, "")], False, "Image rootfs is not a directory"),
    ([], False, "Image has no rootfs/ directory"),
    ([("templates/evil.tpl", b"", tarfile.SYMTYPE, "/etc/shadow")], True,
     "Image template 'evil.tpl' is not a regular file"),
    ([("rootfs/etc/x", b"", tarfile.SYMTYPE, "/"), ("rootfs/etc/x/passwd", b"pw",
                                                     tarfile.REGTYPE, "")], True,
     "member 'rootfs/etc/x/passwd' would be written through symlink 'rootfs/etc/x'"),
])
def test_hostile_unified_layouts(tmp_path: Path, store: ImageStore, extra: list,
                                 rootfs: bool, error: str) -> None:
    with pytest.raises(InvalidConfig, match=error):
        import_image([unified(tmp_path, rootfs=rootfs, extra=extra)], store)
    assert_nothing_left(store)


@needs_root
def test_symlinked_templates_dir(tmp_path: Path, store: ImageStore) -> None:
    out = tmp_path / "img.tar"
    with tarfile.open(out, "w") as tf:
        add_bytes(tf, "metadata.yaml", meta_bytes(templates={}))
        add_bytes(tf, "rootfs", b"", tarfile.DIRTYPE)
        add_bytes(tf, "templates", b"", tarfile.SYMTYPE, "/etc")
    with pytest.raises(InvalidConfig, match="Image templates is a symlink"):
        import_image([out], store)
    assert_nothing_left(store)


@needs_root
@pytest.mark.parametrize(("meta", "error"), [
    (None, "Image has no metadata.yaml"),
    (b"architecture: x86_64\ntemplates: {/etc/a: {when: [create], template: gone.tpl}}\n",
     "Image template 'gone.tpl' for '/etc/a' is missing from templates/"),
    (b"x" * (MAX_LXD_METADATA_BYTES + 10), "larger than"),
    (b"architecture: [", "not valid YAML"),
])
def test_bad_metadata(tmp_path: Path, store: ImageStore, meta: bytes | None, error: str) -> None:
    out = tmp_path / "img.tar"
    with tarfile.open(out, "w") as tf:
        if meta is not None:
            add_bytes(tf, "metadata.yaml", meta)
        add_bytes(tf, "rootfs", b"", tarfile.DIRTYPE)
    with pytest.raises(InvalidConfig, match=error):
        import_image([out], store)
    assert_nothing_left(store)


@needs_root
def test_metadata_symlink_refused(tmp_path: Path, store: ImageStore) -> None:
    out = tmp_path / "img.tar"
    with tarfile.open(out, "w") as tf:
        add_bytes(tf, "metadata.yaml", b"", tarfile.SYMTYPE, "/etc/passwd")
        add_bytes(tf, "rootfs", b"", tarfile.DIRTYPE)
    with pytest.raises(InvalidConfig, match="metadata.yaml is not a regular file"):
        import_image([out], store)
    assert_nothing_left(store)


def test_wrong_file_count(store: ImageStore) -> None:
    with pytest.raises(InvalidConfig, match=r"\(3 files given\)"):
        import_image([Path("a"), Path("b"), Path("c")], store)


def local_image(store: ImageStore, tmp_path: Path) -> str:
    """A store image as debootstrap leaves it (tree-hash key, device node in /dev)."""
    fp = "cd" * 32
    rootfs = make_rootfs(store.root / fp / "rootfs")
    (rootfs / "dev").mkdir()
    os.mknod(rootfs / "dev" / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    write_metadata(store.root / fp, {"architecture": "arm64", "os": "debian", "release": "12",
                                     "created_at": 1_650_000_000, "aliases": ["debian"],
                                     "size": 1, "recipe_sha256": "x",
                                     "properties": {"description": "Debian 12 (lxmgr)"}})
    return fp


@needs_root
def test_export_then_import(tmp_path: Path, store: ImageStore) -> None:
    image = store.get(local_image(store, tmp_path))
    (tmp_path / "out").mkdir()
    path = export_image(image, tmp_path / "out")
    assert path.name == f"{sha256(path)}.tar.gz" and os.listdir(tmp_path / "out") == [path.name]
    assert export_image(image, tmp_path / "out") == path  # deterministic
    with tarfile.open(path) as tf:
        lxd = yaml.safe_load(tf.extractfile("metadata.yaml").read())  # type: ignore[union-attr]
    assert lxd == {"architecture": "aarch64", "creation_date": 1_650_000_000, "expiry_date": 0,
                   "properties": {"description": "Debian 12 (lxmgr)", "os": "debian",
                                  "release": "12"}, "templates": {}}
    other = ImageStore(tmp_path / "other")
    back = import_image([path], other, expected_fingerprint=path.name[:64])
    os.unlink(image.rootfs / "dev" / "null")  # devices are not exported
    assert fingerprint_tree(back.rootfs) == fingerprint_tree(image.rootfs)
    assert (back.architecture, back.created_at, back.description) == \
        ("arm64", 1_650_000_000, "Debian 12 (lxmgr)")


@needs_root
def test_export_keeps_templates(tmp_path: Path, store: ImageStore) -> None:
    imported = import_image([unified(tmp_path)], store)
    (tmp_path / "out").mkdir()
    path = export_image(imported, tmp_path / "out", compression="xz")
    assert path.name.endswith(".tar.xz")
    back = import_image([path], ImageStore(tmp_path / "other"))
    assert read_metadata(back.path)["templates"] == META["templates"]
    assert (back.path / "templates" / "hostname.tpl").read_bytes() == \
        (imported.path / "templates" / "hostname.tpl").read_bytes()
    assert fingerprint_tree(back.rootfs) == fingerprint_tree(imported.rootfs)


@needs_root
@needs_squashfs
def test_export_split_then_import(tmp_path: Path, store: ImageStore) -> None:
    image = store.get(local_image(store, tmp_path))
    (tmp_path / "out").mkdir()
    meta, rootfs = export_split(image, tmp_path / "out")
    fp = sha256(meta, rootfs)
    assert (meta.name, rootfs.name) == (f"meta-{fp}.tar.gz", f"{fp}.squashfs")
    back = import_image([meta, rootfs], ImageStore(tmp_path / "other"), expected_fingerprint=fp)
    os.unlink(image.rootfs / "dev" / "null")
    assert fingerprint_tree(back.rootfs) == fingerprint_tree(image.rootfs)

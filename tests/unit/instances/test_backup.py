"""backup: LXD's backup tarball written from synthetic rootfs trees and read back, an
index.yaml shaped like one LXD writes, and hostile archives refused with nothing left."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from lxmgr.errors import InvalidConfig, NotSupported
from lxmgr.instances.backup import read_backup, write_backup
from lxmgr.instances.backup_index import build_index, parse_index
from lxmgr.model.instance import InstanceSpec
from lxmgr.model.snapshot import SnapshotSpec

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown)")
UID, GID = os.getuid(), os.getgid()
CREATED = datetime(2024, 3, 1, 10, 11, 12, tzinfo=UTC)
STORE_METADATA = {"architecture": "amd64", "os": "debian", "release": "bookworm",
                  "created_at": 1709287872, "properties": {"description": "Debian bookworm"},
                  "templates": {"/etc/hostname": {"when": ["create", "copy"],
                                                  "template": "hostname.tpl"}}}

IDMAP_JSON = ('[{"Isuid":true,"Isgid":false,"Hostid":1000000,"Nsid":0,"Maprange":1000000000},'
              '{"Isuid":false,"Isgid":true,"Hostid":1000000,"Nsid":0,"Maprange":1000000000}]')
# Shaped like the index.yaml of `lxc export c1` on LXD 5.21 (dir pool, one snapshot): Go's
# yaml.v2 output, timestamps unquoted with nanoseconds, volatile keys, a root disk device.
LXD_INDEX = """\
name: c1
backend: dir
pool: default
snapshots:
- snap0
optimized: false
optimized_header: false
type: container
config:
  container:
    architecture: x86_64
    config:
      image.architecture: amd64
      image.description: Debian bookworm amd64 (20240301_05:24)
      image.os: Debian
      image.release: bookworm
      image.serial: "20240301_05:24"
      image.type: squashfs
      image.variant: default
      limits.cpu: "2"
      security.nesting: "true"
      volatile.base_image: 9f5e0b1c8c5a6b8e3a0d2f3c1b4a5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e
      volatile.cloud-init.instance-id: 4b2e2cf1-0fb4-4d0b-9a40-4d7c3f4e8a11
      volatile.eth0.hwaddr: 00:16:3e:5a:7b:9c
      volatile.idmap.base: "0"
      volatile.idmap.current: 'IDMAP_JSON'
      volatile.idmap.next: 'IDMAP_JSON'
      volatile.last_state.idmap: '[]'
      volatile.last_state.power: STOPPED
      volatile.uuid: 1c6a2d4e-3b7f-4f2a-9e1d-8a5b6c7d8e9f
      volatile.uuid.generation: 1c6a2d4e-3b7f-4f2a-9e1d-8a5b6c7d8e9f
    devices: {}
    ephemeral: false
    profiles:
    - default
    stateful: false
    description: ""
    created_at: 2024-03-01T10:11:12.123456789Z
    expanded_config:
      image.architecture: amd64
      limits.cpu: "2"
      security.nesting: "true"
      volatile.base_image: 9f5e0b1c8c5a6b8e3a0d2f3c1b4a5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e
    expanded_devices:
      eth0:
        name: eth0
        network: lxdbr0
        type: nic
      root:
        path: /
        pool: default
        type: disk
    name: c1
    status: Stopped
    status_code: 102
    last_used_at: 2024-03-02T08:00:01.5Z
    location: none
    type: container
    project: default
  snapshots:
  - architecture: x86_64
    config:
      image.os: Debian
      limits.cpu: "1"
      volatile.base_image: 9f5e0b1c8c5a6b8e3a0d2f3c1b4a5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e
    created_at: 2024-03-01T11:00:00.987654321Z
    devices: {}
    ephemeral: false
    expanded_config:
      limits.cpu: "1"
    expanded_devices:
      root:
        path: /
        pool: default
        type: disk
    last_used_at: 0001-01-01T00:00:00Z
    name: snap0
    profiles:
    - default
    stateful: false
    size: -1
    description: ""
    expires_at: 2024-04-01T11:00:00Z
  pool:
    config:
      source: /var/snap/lxd/common/lxd/storage-pools/default
    description: ""
    name: default
    driver: dir
    used_by: []
    status: Created
    locations:
    - none
  volume:
    config: {}
    description: ""
    name: c1
    type: container
    used_by: []
    location: none
    content_type: filesystem
    project: default
    created_at: 2024-03-01T10:11:12.2Z
""".replace("IDMAP_JSON", IDMAP_JSON)


def put(path: Path, data: str = "", mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data)
    os.chmod(path, mode)
    os.utime(path, (1_600_000_000, 1_600_000_000))
    return path


def make_rootfs(root: Path, marker: str) -> Path:
    root.mkdir(mode=0o755)
    put(root / "etc/hostname", f"{marker}\n")
    put(root / "usr/bin/tool", "ELF", mode=0o755)
    os.link(root / "usr/bin/tool", root / "usr/bin/tool2")
    os.symlink("/usr/bin/tool", root / "usr/bin/alias")
    os.setxattr(root / "etc/hostname", "user.marker", marker.encode())
    return root


def make_spec(**kw: object) -> InstanceSpec:
    defaults: dict[str, object] = dict(
        name="web1", image_fingerprint="ab" * 32, profiles=["default", "small"],
        config={"limits.cpu": "2", "user.note": "hi"},
        devices={"eth1": {"type": "nic", "network": "br1", "name": "eth1"}},
        created_at=CREATED, description="the web server")
    defaults.update(kw)
    return InstanceSpec(**defaults)  # type: ignore[arg-type]


def snap(name: str, spec: InstanceSpec, **kw: object) -> SnapshotSpec:
    return SnapshotSpec(name=name, instance=spec, created_at=CREATED, **kw)  # type: ignore


def tree(root: Path) -> dict[str, tuple[int, int, int, bytes]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            p = Path(dirpath, name)
            st = os.lstat(p)
            data = os.readlink(p).encode() if p.is_symlink() else \
                p.read_bytes() if p.is_file() else b""
            out[str(p.relative_to(root))] = (st.st_mode, st.st_uid, st.st_gid, data)
    return out


@pytest.fixture
def exported(tmp_path: Path) -> tuple[Path, InstanceSpec, dict[str | None, Path]]:
    spec = make_spec()
    older = make_spec(config={"limits.cpu": "1"})
    rootfs = {None: make_rootfs(tmp_path / "live", "live"),
              "snap0": make_rootfs(tmp_path / "s0", "snap0"),
              "before-upgrade": make_rootfs(tmp_path / "s1", "s1")}
    expires = datetime(2024, 4, 1, tzinfo=UTC)
    snaps = [snap("snap0", older, expires_at=expires), snap("before-upgrade", spec)]
    templates = tmp_path / "templates"
    put(templates / "hostname.tpl", "{{ container.name }}\n")
    out = tmp_path / "web1.tar.gz"
    calls: list[str | None] = []

    def rootfs_of(name: str | None) -> Path:
        calls.append(name)
        return rootfs[name]

    write_backup(out, spec=spec, snapshots=snaps, rootfs_of=rootfs_of,
                 image_metadata=STORE_METADATA, templates_dir=templates,
                 expand=lambda s: ({**s.config, "limits.memory": "1GiB"}, dict(s.devices)))
    assert sorted(calls, key=str) == sorted([None, "snap0", "before-upgrade"], key=str)
    return out, spec, rootfs


def test_round_trip_keeps_trees_spec_and_snapshots(
        exported: tuple[Path, InstanceSpec, dict[str | None, Path]], tmp_path: Path) -> None:
    out, spec, rootfs = exported
    got = read_backup(out, tmp_path / "staging")
    assert tree(got.rootfs) == tree(rootfs[None])
    assert {s.name: tree(s.rootfs) for s in got.snapshots} == {
        "snap0": tree(rootfs["snap0"]), "before-upgrade": tree(rootfs["before-upgrade"])}
    assert os.getxattr(got.rootfs / "etc/hostname", "user.marker") == b"live"
    assert os.lstat(got.rootfs / "usr/bin/tool").st_ino == \
        os.lstat(got.rootfs / "usr/bin/tool2").st_ino
    assert got.instance_spec(storage_driver="overlay") == InstanceSpec(
        name="web1", image_fingerprint=spec.image_fingerprint, profiles=spec.profiles,
        config=spec.config, devices=spec.devices, created_at=CREATED,
        description="the web server", storage_driver="overlay")
    assert got.architecture == "x86_64" and got.base_image == spec.image_fingerprint
    first = got.snapshot_specs(got.instance_spec())[0]
    assert (first.name, first.created_at, first.expires_at) == (
        "snap0", CREATED, datetime(2024, 4, 1, tzinfo=UTC))
    assert first.instance.config == {"limits.cpu": "1"}
    assert got.metadata is not None and got.metadata.properties["os"] == "debian"
    assert got.templates is not None and (got.templates / "hostname.tpl").is_file()
    assert stat.S_IMODE(os.lstat(tmp_path / "staging").st_mode) == 0o700


def test_written_layout_and_index_are_lxds(
        exported: tuple[Path, InstanceSpec, dict[str | None, Path]]) -> None:
    out, spec, _ = exported
    with tarfile.open(out) as tf:
        names = set(tf.getnames())
        index = yaml.safe_load(tf.extractfile("backup/index.yaml").read())  # type: ignore
        config = yaml.safe_load(tf.extractfile("backup/container/backup.yaml").read())  # type: ignore
    for name in ("backup/index.yaml", "backup/container/backup.yaml",
                 "backup/container/metadata.yaml", "backup/container/templates/hostname.tpl",
                 "backup/container/rootfs", "backup/container/rootfs/etc/hostname",
                 "backup/snapshots/snap0/rootfs/etc/hostname",
                 "backup/snapshots/before-upgrade/metadata.yaml"):
        assert name in names, name
    assert {k: index[k] for k in ("name", "backend", "pool", "snapshots", "optimized",
                                  "optimized_header", "type")} == {
        "name": "web1", "backend": "dir", "pool": "default",
        "snapshots": ["snap0", "before-upgrade"], "optimized": False,
        "optimized_header": False, "type": "container"}
    assert config == index["config"]
    inst = index["config"]["container"]
    assert inst["config"]["volatile.base_image"] == spec.image_fingerprint
    assert inst["expanded_config"]["limits.memory"] == "1GiB"
    assert inst["expanded_devices"]["root"] == {"path": "/", "pool": "default", "type": "disk"}
    assert inst["created_at"] == "2024-03-01T10:11:12Z" and inst["architecture"] == "x86_64"
    assert [s["name"] for s in index["config"]["snapshots"]] == ["snap0", "before-upgrade"]
    assert index["config"]["snapshots"][1]["expires_at"] == "0001-01-01T00:00:00Z"
    assert index["config"]["volume"]["content_type"] == "filesystem"


def test_instance_only_leaves_snapshots_out(tmp_path: Path) -> None:
    out = tmp_path / "b.tar"
    rootfs = make_rootfs(tmp_path / "live", "live")
    write_backup(out, spec=make_spec(), snapshots=[snap("snap0", make_spec())],
                 rootfs_of=lambda name: rootfs, image_metadata=None, compression="none",
                 instance_only=True)
    got = read_backup(out, tmp_path / "staging")
    assert got.snapshots == [] and "snapshots" not in got.index
    assert got.metadata is None and got.templates is None


@needs_root
def test_round_trip_keeps_container_owners_and_setuid(tmp_path: Path) -> None:
    rootfs = make_rootfs(tmp_path / "live", "live")
    os.chown(rootfs / "etc/hostname", 1000, 33)
    os.chmod(rootfs / "usr/bin/tool", 0o4755)
    out = tmp_path / "b.tar.xz"
    write_backup(out, spec=make_spec(), snapshots=[], rootfs_of=lambda name: rootfs,
                 image_metadata=None, compression="xz")
    got = read_backup(out, tmp_path / "staging")
    assert tree(got.rootfs) == tree(rootfs)
    assert os.lstat(got.rootfs / "etc/hostname").st_uid == 1000


def test_lxd_shaped_index_parses() -> None:
    parsed = parse_index(LXD_INDEX.encode())
    assert (parsed.name, parsed.architecture, parsed.profiles) == ("c1", "x86_64", ["default"])
    assert parsed.created_at == datetime(2024, 3, 1, 10, 11, 12, 123456, tzinfo=UTC)
    assert parsed.config["image.serial"] == "20240301_05:24"
    assert parsed.config["security.nesting"] == "true"
    [snap0] = parsed.snapshots
    assert (snap0.name, snap0.expires_at) == ("snap0", datetime(2024, 4, 1, 11, tzinfo=UTC))
    assert snap0.config["limits.cpu"] == "1"
    assert parsed.config["volatile.idmap.current"].startswith('[{"Isuid":true')


def test_lxd_shaped_archive_reads(tmp_path: Path) -> None:
    """A tarball laid out as LXD writes it (directory members included) imports."""
    members = [dir_member("backup"), file_member("backup/index.yaml", LXD_INDEX.encode()),
               dir_member("backup/container"), dir_member("backup/container/rootfs"),
               file_member("backup/container/rootfs/etc/os-release", b"ID=debian\n"),
               dir_member("backup/snapshots"), dir_member("backup/snapshots/snap0"),
               dir_member("backup/snapshots/snap0/rootfs"),
               file_member("backup/container/metadata.yaml",
                           b"architecture: x86_64\ncreation_date: 1709287872\n")]
    got = read_backup(make_tar(tmp_path / "c1.tar", members), tmp_path / "staging")
    assert got.name == "c1" and [s.name for s in got.snapshots] == ["snap0"]
    assert (got.rootfs / "etc/os-release").read_text() == "ID=debian\n"
    assert "volatile.eth0.hwaddr" not in got.instance_spec().config
    assert got.instance_spec().image_fingerprint.startswith("9f5e0b1c")
    assert got.metadata is not None and got.metadata.architecture == "amd64"


def test_build_index_round_trips_through_parse_index() -> None:
    spec = make_spec()
    index = build_index(spec, [snap("snap0", spec)], architecture="aarch64")
    parsed = parse_index(yaml.safe_dump(index).encode())
    assert (parsed.name, parsed.config["limits.cpu"], parsed.devices) == (
        "web1", "2", spec.devices)
    assert parsed.snapshots[0].created_at == CREATED


# -- hostile archives ---------------------------------------------------------------------


def dir_member(name: str) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, 0o755, UID, GID
    return info, b""


def file_member(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.uid, info.gid = len(data), 0o644, UID, GID
    return info, data


def link_member(name: str, target: str) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.uid, info.gid = tarfile.SYMTYPE, target, UID, GID
    return info, b""


def make_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def index(name: str = "c1", snapshots: list[str] | None = None, **extra: object) -> bytes:
    data: dict[str, object] = {"name": name, "backend": "dir", "pool": "default",
                               "type": "container", **extra}
    if snapshots is not None:
        data["snapshots"] = snapshots
    return yaml.safe_dump(data).encode()


def base(idx: bytes | None = None) -> list[tuple[tarfile.TarInfo, bytes]]:
    members = [dir_member("backup/container/rootfs"),
               file_member("backup/container/rootfs/etc/hostname", b"c1\n")]
    if idx is not None:
        members.insert(0, file_member("backup/index.yaml", idx))
    return members


HOSTILE = {
    "no index": (base(), "'backup/index.yaml' is missing"),
    "huge index": (base(b"name: c1\n" + b"#" * (4 << 20)), "larger than"),
    "index symlink": (base() + [link_member("backup/index.yaml", "/etc/passwd")],
                      "'backup/index.yaml' is a symlink"),
    "bad instance name": (base(index("../../etc")), "Invalid instance name"),
    "underscore name": (base(index("bad_name")), "Invalid instance name"),
    "bad snapshot name": (base(index(snapshots=["a..b/c"])), "Invalid instance name"),
    "dotted snapshot name": (base(index(snapshots=[".."])), "Invalid snapshot name"),
    "foreign snapshot": (base(index(snapshots=["other/snap0"])), "of another instance"),
    "rootfs symlink": ([file_member("backup/index.yaml", index()),
                        link_member("backup/container/rootfs", "/")],
                       "'backup/container/rootfs' is a symlink"),
    "no rootfs": ([file_member("backup/index.yaml", index())],
                  "'backup/container/rootfs' is missing"),
    "unlisted snapshot": (base(index()) + [dir_member("backup/snapshots/sneaky/rootfs")],
                          "snapshot directory 'sneaky' is not listed"),
    "snapshot without rootfs": (base(index(snapshots=["snap0"])),
                                "'backup/snapshots/snap0/rootfs' is missing"),
    "snapshot rootfs symlink": (base(index(snapshots=["snap0"])) + [
        link_member("backup/snapshots/snap0", "../container")],
        "'backup/snapshots/snap0' is not a directory"),
    "symlink above the rootfs": ([file_member("backup/index.yaml", index()),
                                  link_member("backup/container", "/tmp")],
                                 "'backup/container' is a symlink"),
    "yaml aliases": (base(b"name: c1\na: &a [x, x]\nb: [*a, *a]\n"), "uses YAML aliases"),
    "not a mapping": (base(b"- c1\n"), "is not a mapping"),
    "config not a map": (base(index(config={"container": {"config": {"a": {"b": "c"}}}})),
                         "'config.container.config.a' must be a string"),
    "escaping member": (base(index()) + [file_member("backup/../../evil", b"x")],
                        "has a '..' component"),
    "template symlink": (base(index()) + [dir_member("backup/container/templates"),
                                          link_member("backup/container/templates/t", "/x")],
                         "template 't' is not a regular file"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archives_are_refused_and_leave_nothing(tmp_path: Path, case: str) -> None:
    members, message = HOSTILE[case]
    archive = make_tar(tmp_path / "evil.tar", members)
    dest = tmp_path / "staging"
    with pytest.raises(InvalidConfig) as exc:
        read_backup(archive, dest)
    assert message in str(exc.value) and "\n" not in str(exc.value)
    assert not dest.exists()
    assert sorted(os.listdir(tmp_path)) == ["evil.tar"]


@pytest.mark.parametrize(("idx", "extra", "message"), [
    (index(type="virtual-machine"), [], "of type 'virtual-machine'"),
    (index(optimized=True, backend="btrfs"), [], "optimized (btrfs) backup"),
    (index(), [file_member("backup/container.bin", b"btrfs send stream")], "optimized"),
])
def test_vm_and_optimized_backups_are_not_supported(tmp_path: Path, idx: bytes,
                                                    extra: list[tuple[tarfile.TarInfo, bytes]],
                                                    message: str) -> None:
    archive = make_tar(tmp_path / "b.tar", base(idx) + extra)
    with pytest.raises(NotSupported, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_backup(archive, tmp_path / "staging")
    assert not (tmp_path / "staging").exists()

"""Storage with raw.idmap entries: shifting follows them (owners, ACLs, file caps of a
container root mapped elsewhere), unshifting is its inverse, the shared shifted lower of
an overlay pool is per map, and remap.first_moved finds what a map change would re-own."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from lxmgr.model.idmap import IdMap, parse_raw_idmap
from lxmgr.storage import shift
from lxmgr.storage.overlay import shifted_dir
from lxmgr.storage.remap import first_moved
from lxmgr.storage.unshift import OVERFLOW_ID, unshift_acl, unshift_caps, unshift_tree
from tests.unit.storage.test_merge import CAPS_V2, acl, needs_root, owner, put

BASE = 1_000_000
PLAIN = IdMap(BASE, BASE, 65536)
RAW = IdMap(BASE, BASE, 65536, parse_raw_idmap("both 1000 1000"))
ROOT_RAW = IdMap(BASE, BASE, 65536, parse_raw_idmap("uid 4000 0"))


def test_acl_and_caps_follow_raw_entries() -> None:
    value = acl(1000, 1000)
    shifted = shift.shift_acl(value, RAW)
    assert shifted == acl(1000, 1000)  # container 1000 is host 1000
    assert shift.shift_acl(acl(1001, 33), RAW) == acl(BASE + 1001, BASE + 33)
    assert unshift_acl(shifted, RAW) == value
    assert unshift_acl(acl(BASE + 1000, BASE + 7), RAW) == acl(OVERFLOW_ID, 7)  # unmapped
    v3 = shift.shift_caps(CAPS_V2, ROOT_RAW)
    assert struct.unpack_from("<I", v3, 20)[0] == 4000  # the container root's host uid
    assert unshift_caps(v3, ROOT_RAW) == CAPS_V2


@needs_root
def test_shift_and_unshift_follow_raw_entries(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    root.mkdir()
    mine = put(root / "home/dev/notes", "x", owner=(1000, 1000))
    other = put(root / "srv/other", "y", owner=(1001, 1000))
    shift.shift_tree(root, RAW)
    assert owner(root) == (BASE, BASE)
    assert owner(mine) == (1000, 1000) and owner(other) == (BASE + 1001, 1000)
    unshift_tree(root, RAW)
    assert owner(root) == (0, 0) and owner(mine) == (1000, 1000)
    assert owner(other) == (1001, 1000)


def test_the_shifted_lower_is_per_map(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LXMGR_DIR", str(tmp_path))
    image = tmp_path / "images" / "f" / "rootfs"
    plain, raw = shifted_dir(image, PLAIN), shifted_dir(image, RAW)
    assert plain.name == f"f-{BASE}"  # as before raw.idmap existed
    assert raw.name.startswith(f"f-{BASE}-r") and raw != shifted_dir(image, ROOT_RAW)
    assert raw == shifted_dir(image, IdMap(BASE, BASE, 65536, parse_raw_idmap(
        "uid 1000 1000\ngid 1000 1000")))  # the same map written another way


@needs_root
def test_first_moved_finds_what_a_map_change_would_re_own(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    upper.mkdir()
    os.chown(upper, BASE, BASE)
    put(upper / "etc/hostname", "c\n", owner=(BASE, BASE))
    put(upper / "var/log/apt", owner=(BASE, BASE + 4))
    # A fresh container's upper: nothing owned by container uid/gid 1000.
    assert first_moved(upper, PLAIN, RAW) is None
    assert first_moved(upper, RAW, PLAIN) is None
    assert first_moved(tmp_path / "missing", PLAIN, RAW) is None
    # Container uid 1000 wrote a file under the plain map: host BASE + 1000.
    put(upper / "home/dev/notes", owner=(BASE + 1000, BASE))
    assert first_moved(upper, PLAIN, RAW) == (
        f"'home/dev/notes': its owner host uid {BASE + 1000} (container uid 1000 now, none "
        "after)")
    os.chown(upper / "home/dev/notes", BASE, BASE + 1000)
    assert "its group host gid" in (first_moved(upper, PLAIN, RAW) or "")
    os.chown(upper / "home/dev/notes", BASE, BASE)
    os.setxattr(upper / "home/dev/notes", "system.posix_acl_access", acl(BASE + 1000, BASE))
    assert "its ACL names host uid" in (first_moved(upper, PLAIN, RAW) or "")
    os.removexattr(upper / "home/dev/notes", "system.posix_acl_access")
    # Under the raw map, files of container uid 1000 are host 1000: removing it re-owns them.
    put(upper / "home/dev/code", owner=(1000, 1000))
    assert first_moved(upper, RAW, PLAIN) == (
        "'home/dev/code': its owner host uid 1000 (container uid 1000 now, none after)")
    # A map change moving the container's root: every root-owned entry, caps included.
    assert "'.': its owner" in (first_moved(upper, PLAIN, ROOT_RAW) or "")


@needs_root
def test_first_moved_reads_file_capabilities(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    ping = put(upper / "bin/ping", owner=(BASE + 5, BASE + 5))
    os.chown(upper, BASE + 5, BASE + 5)
    os.setxattr(ping, "security.capability", shift.shift_caps(CAPS_V2, PLAIN))
    os.chown(ping, BASE + 5, BASE + 5)  # chown dropped the caps: set them after
    os.setxattr(ping, "security.capability", shift.shift_caps(CAPS_V2, PLAIN))
    moved = IdMap(BASE, BASE, 65536, parse_raw_idmap(f"uid {BASE + 70000} 0"))
    assert first_moved(upper, PLAIN, moved) == (
        f"'bin/ping': its file capabilities belong to host uid {BASE} (container uid 0 now, "
        "none after)")

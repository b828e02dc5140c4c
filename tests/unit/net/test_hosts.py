"""The managed /etc/hosts block: rendered, replaced in place, removed when empty."""

from __future__ import annotations

from pathlib import Path

from lxmgr.net import hosts

HOST = "127.0.0.1\tlocalhost\n::1\tlocalhost\n"


def test_block_is_added_replaced_and_removed(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    path.write_text(HOST)
    path.chmod(0o644)
    assert hosts.write(str(path), [("10.0.0.5", "web1.lxmgr"), ("10.0.0.4", "db.lxmgr")])
    text = path.read_text()
    assert text.startswith(HOST)
    assert text.endswith(f"{hosts.BEGIN}\n10.0.0.4\tdb.lxmgr\n10.0.0.5\tweb1.lxmgr\n"
                         f"{hosts.END}\n")
    assert not hosts.write(str(path), [("10.0.0.4", "db.lxmgr"), ("10.0.0.5", "web1.lxmgr")])
    path.write_text(path.read_text() + "192.168.1.1\trouter\n")  # the admin's line after ours
    assert hosts.write(str(path), [("10.0.0.6", "web1.lxmgr")])
    assert path.read_text() == (f"{HOST}{hosts.BEGIN}\n10.0.0.6\tweb1.lxmgr\n{hosts.END}\n"
                                "192.168.1.1\trouter\n")
    assert hosts.write(str(path), [])
    assert path.read_text() == f"{HOST}192.168.1.1\trouter\n"
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in tmp_path.iterdir()] == ["hosts"]  # no temporary file left


def test_no_newline_at_end_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    path.write_text("127.0.0.1 localhost")
    hosts.write(str(path), [("10.0.0.5", "a.lxmgr")])
    assert path.read_text().startswith("127.0.0.1 localhost\n# BEGIN lxmgr")
    missing = tmp_path / "new"
    assert not hosts.write(str(missing), [])
    assert hosts.write(str(missing), [("10.0.0.5", "a.lxmgr")])

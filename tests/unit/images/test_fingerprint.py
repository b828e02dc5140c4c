"""The tree fingerprint is deterministic and sensitive to what matters, not to mtimes."""

from __future__ import annotations

import os
from pathlib import Path

from lxmgr.images.fingerprint import fingerprint_tree


def make_tree(root: Path) -> Path:
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hostname").write_text("debian\n")
    (root / "bin").mkdir()
    (root / "bin" / "sh").write_bytes(b"\x7fELF" * 100)
    os.chmod(root / "bin" / "sh", 0o755)
    os.symlink("/etc/hostname", root / "link")
    (root / "empty").mkdir()
    return root


def test_same_content_same_fingerprint(tmp_path: Path) -> None:
    a = fingerprint_tree(make_tree(tmp_path / "a"))
    b = fingerprint_tree(make_tree(tmp_path / "b"))
    assert a == b
    assert len(a.fingerprint) == 64
    assert a.size == len("debian\n") + 400
    assert a.entries == 7  # . bin bin/sh empty etc etc/hostname link


def test_mtime_does_not_matter(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "a")
    before = fingerprint_tree(root)
    os.utime(root / "etc" / "hostname", (1, 1))
    assert fingerprint_tree(root) == before


def test_content_mode_link_and_names_matter(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "a")
    seen = {fingerprint_tree(root).fingerprint}
    changes = [
        lambda: (root / "etc" / "hostname").write_text("debiaN\n"),
        lambda: os.chmod(root / "bin" / "sh", 0o4755),
        lambda: (os.unlink(root / "link"), os.symlink("/etc/hosts", root / "link")),
        lambda: os.rename(root / "empty", root / "empty2"),
        lambda: (root / "empty2" / "new").write_bytes(b""),
    ]
    for change in changes:
        change()
        fp = fingerprint_tree(root).fingerprint
        assert fp not in seen
        seen.add(fp)


def test_walk_order_is_bytewise(tmp_path: Path) -> None:
    root = tmp_path / "t"
    root.mkdir()
    for name in ("b", "B", "a-", "a", "a.b"):
        (root / name).write_text(name)
    assert fingerprint_tree(root) == fingerprint_tree(root)

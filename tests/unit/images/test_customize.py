"""Rootfs customization stays inside the rootfs, even through absolute symlinks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lxmgr.images import customize
from lxmgr.images.recipe import RecipeFile, parse


@pytest.mark.skipif(os.geteuid() != 0, reason="files are chowned to root")
def test_write_file_through_absolute_symlink_stays_inside(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    outside = tmp_path / "outside"
    outside.mkdir()
    (rootfs / "usr" / "lib").mkdir(parents=True)
    os.symlink("/usr/lib", rootfs / "lib")  # absolute: must resolve inside rootfs
    os.symlink(str(outside / "evil"), rootfs / "victim")
    customize.write_file(rootfs, RecipeFile("/lib/x/conf", "hello\n", 0o600))
    customize.write_file(rootfs, RecipeFile("/victim", "replaced\n"))
    assert (rootfs / "usr" / "lib" / "x" / "conf").read_text() == "hello\n"
    assert os.stat(rootfs / "usr" / "lib" / "x" / "conf").st_mode & 0o777 == 0o600
    assert not (rootfs / "victim").is_symlink()
    assert list(outside.iterdir()) == []


def test_mask_and_clean(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    archives = rootfs / "var" / "cache" / "apt" / "archives"
    (archives / "partial").mkdir(parents=True)
    (archives / "a.deb").write_bytes(b"x")
    (rootfs / "var" / "cache" / "apt" / "pkgcache.bin").write_bytes(b"x")
    (rootfs / "var" / "lib" / "apt" / "lists").mkdir(parents=True)
    (rootfs / "var" / "lib" / "apt" / "lists" / "deb.debian.org_Packages").write_text("x")
    customize.mask_unit(rootfs, "sys-kernel-debug.mount")
    customize.mask_generator(rootfs, "systemd-gpt-auto-generator")
    customize.clean_caches(rootfs)
    assert os.readlink(rootfs / "etc/systemd/system/sys-kernel-debug.mount") == "/dev/null"
    assert os.readlink(rootfs / "etc/systemd/system-generators/systemd-gpt-auto-generator"
                       ) == "/dev/null"
    assert [p.name for p in archives.iterdir()] == ["partial"]
    assert sorted(p.name for p in (rootfs / "var/cache/apt").iterdir()) == ["archives"]
    assert list((rootfs / "var/lib/apt/lists").iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="files are chowned to root")
def test_customize_replaces_debootstraps_sources_list(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc" / "apt").mkdir(parents=True)
    (rootfs / "etc/apt/sources.list").write_text("deb http://deb.debian.org/debian bookworm main\n")
    recipe = parse({"name": "debian", "os": "debian", "release": "12", "suite": "bookworm",
                    "mirror": "http://deb.debian.org/debian",
                    "apt_sources": ["http://deb.debian.org/debian bookworm main",
                                    "http://deb.debian.org/debian bookworm-updates main",
                                    "http://security.debian.org/debian-security "
                                    "bookworm-security main"]}, host_arch="amd64")
    customize.customize(rootfs, recipe)
    text = (rootfs / "etc/apt/sources.list").read_text()
    debs = [line for line in text.splitlines() if line.startswith("deb ")]
    assert debs == ["deb http://deb.debian.org/debian bookworm main",
                    "deb http://deb.debian.org/debian bookworm-updates main",
                    "deb http://security.debian.org/debian-security bookworm-security main"]
    assert os.stat(rootfs / "etc/apt/sources.list").st_mode & 0o777 == 0o644

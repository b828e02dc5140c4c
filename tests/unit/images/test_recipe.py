"""Recipe parsing and validation: every error names its field."""

from __future__ import annotations

import pytest
import yaml

from lxmgr import paths
from lxmgr.errors import InvalidConfig
from lxmgr.images.recipe import (
    AptSource,
    Recipe,
    RecipeFile,
    debootstrap_argv,
    parse,
    render_sources_list,
)

BASE = {"name": "debian", "os": "debian", "release": "12", "suite": "bookworm",
        "mirror": "http://deb.debian.org/debian"}


def test_minimal_recipe_gets_defaults() -> None:
    r = parse(BASE, host_arch="arm64")
    assert r == Recipe(name="debian", os="debian", release="12", suite="bookworm",
                       mirror="http://deb.debian.org/debian", architecture="arm64",
                       description="debian image")


def test_builtin_debian_recipe_is_valid() -> None:
    data = yaml.safe_load((paths.recipes_dir() / "debian.yaml").read_text())
    r = parse(data, host_arch="amd64")
    assert {"systemd", "systemd-sysv", "dbus", "iproute2"} <= set(r.packages)
    assert "sys-kernel-debug.mount" in r.mask_units
    assert "systemd-gpt-auto-generator" in r.mask_generators
    assert "systemd-getty-generator" not in r.mask_generators  # console-getty comes from it
    assert "systemd-networkd.service" in r.enable_units
    assert {"debian", "debian/12"} <= set(r.aliases)
    machine_id = next(f for f in r.files if f.path == "/etc/machine-id")
    assert machine_id == RecipeFile("/etc/machine-id", "", 0o444)
    # As Debian's official images: the release, its point-release updates and security.
    lines = render_sources_list(r).splitlines()
    assert lines[1:] == ["deb http://deb.debian.org/debian bookworm main",
                         "deb http://deb.debian.org/debian bookworm-updates main",
                         "deb http://security.debian.org/debian-security bookworm-security main"]
    # Names resolve at the network's dnsmasq over IPv4: the lease's domain is the search
    # domain and no LLMNR/mDNS answers a single label with a link-local IPv6 address.
    eth0 = next(f for f in r.files if f.path == "/etc/systemd/network/eth0.network").content
    assert "[DHCPv4]\nUseDomains=yes" in eth0
    assert "LLMNR=no" in eth0 and "MulticastDNS=no" in eth0


def test_apt_sources_parse_and_render() -> None:
    r = parse({**BASE, "apt_sources": ["http://a/debian bookworm main contrib",
                                       "file:///srv/mirror bookworm-security main"]},
              host_arch="amd64")
    assert r.apt_sources == (AptSource("http://a/debian", "bookworm", ("main", "contrib")),
                             AptSource("file:///srv/mirror", "bookworm-security", ("main",)))
    assert render_sources_list(r).splitlines()[1:] == [
        "deb http://a/debian bookworm main contrib",
        "deb file:///srv/mirror bookworm-security main"]
    assert render_sources_list(parse(BASE, host_arch="amd64")) == ""


def test_apt_sources_and_a_sources_list_file_conflict() -> None:
    with pytest.raises(InvalidConfig, match="both 'apt_sources' and 'files'"):
        parse({**BASE, "apt_sources": ["http://a bookworm main"],
               "files": [{"path": "/etc/apt/sources.list", "content": "deb x y z\n"}]},
              host_arch="amd64")


def test_numeric_release_and_octal_modes() -> None:
    r = parse({**BASE, "release": 12, "files": [{"path": "/a", "content": "x", "mode": 0o600},
                                                 {"path": "/b", "mode": "0755"}]},
              host_arch="amd64")
    assert r.release == "12"
    assert [f.mode for f in r.files] == [0o600, 0o755]


@pytest.mark.parametrize(("change", "field"), [
    ({"suite": "book worm"}, "suite"),
    ({"mirror": "ftp://x"}, "mirror"),
    ({"mirror": "http://a,b"}, "mirror"),
    ({"variant": "maxbase"}, "variant"),
    ({"packages": "systemd"}, "packages"),
    ({"packages": ["systemd", "--evil"]}, "packages"),
    ({"packages": ["a", "a"]}, "packages"),
    ({"mask_units": ["notaunit"]}, "mask_units"),
    ({"mask_generators": ["../../bin/sh"]}, "mask_generators"),
    ({"mask_generators": ["systemd-fstab"]}, "mask_generators"),
    ({"aliases": ["ok", ""]}, "aliases"),
    ({"files": [{"path": "etc/x"}]}, "files[0].path"),
    ({"files": [{"path": "/etc/../x"}]}, "files[0].path"),
    ({"files": [{"path": "/x", "mode": "999"}]}, "files[0].mode"),
    ({"files": [{"path": "/x", "content": 3}]}, "files[0].content"),
    ({"files": [{"path": "/x", "owner": "root"}]}, "files[0]"),
    ({"colour": "blue"}, "colour"),
    ({"name": ""}, "name"),
    ({"architecture": "x86 64"}, "architecture"),
    ({"apt_sources": "http://deb.debian.org/debian bookworm main"}, "apt_sources"),
    ({"apt_sources": ["http://deb.debian.org/debian bookworm"]}, "apt_sources[0]"),
    ({"apt_sources": ["ftp://x bookworm main"]}, "apt_sources[0]"),
    ({"apt_sources": ["http://x bookworm main", "http://x Bookworm main"]}, "apt_sources[1]"),
    ({"apt_sources": ["http://x bookworm main\ndeb http://evil sid main"]}, "apt_sources[0]"),
    ({"apt_sources": ["http://x bookworm main", "http://x  bookworm main"]}, "apt_sources"),
])
def test_invalid_field_is_named(change: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidConfig, match=f"'{field.replace('[', '.').replace(']', '.')}"):
        parse({**BASE, **change}, host_arch="amd64")


def test_missing_required_field() -> None:
    data = dict(BASE)
    del data["suite"]
    with pytest.raises(InvalidConfig, match="'suite'"):
        parse(data, host_arch="amd64")


def test_not_a_mapping() -> None:
    with pytest.raises(InvalidConfig, match="mapping"):
        parse(["debian"], host_arch="amd64")


def test_debootstrap_argv() -> None:
    r = parse({**BASE, "packages": ["systemd", "dbus"]}, host_arch="amd64")
    assert debootstrap_argv(r, "/t/rootfs") == [
        "debootstrap", "--variant=minbase", "--arch=amd64", "--include=systemd,dbus",
        "bookworm", "/t/rootfs", "http://deb.debian.org/debian"]


def test_debian_dev_extends_debian(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from lxmgr.images.debootstrap import load_recipe, recipe_path

    base, base_sha = load_recipe(recipe_path("debian"))
    dev, dev_sha = load_recipe(recipe_path("debian-dev"))
    assert dev.name == "debian-dev" and dev.aliases == ("debian-dev",)
    assert dev.packages[: len(base.packages)] == base.packages
    assert {"openssh-server", "sudo"} <= set(dev.packages)
    assert dev.suite == base.suite and dev.apt_sources == base.apt_sources
    assert set(base.enable_units) < set(dev.enable_units)
    assert [f.path for f in base.files] == [f.path for f in dev.files][: len(base.files)]
    assert dev_sha != base_sha
    # The parent's bytes are part of the child's identity: a changed parent rebuilds it.
    for name in ("debian", "debian-dev"):
        (tmp_path / f"{name}.yaml").write_bytes(recipe_path(name).read_bytes())
    (tmp_path / "debian.yaml").write_text((tmp_path / "debian.yaml").read_text() + "\n# x\n")
    assert load_recipe(tmp_path / "debian-dev.yaml")[1] != dev_sha


def test_extends_rules(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from lxmgr.errors import NotFound
    from lxmgr.images.debootstrap import load_recipe
    from lxmgr.images.recipe import merge

    merged = merge({"name": "a", "aliases": ["a"], "description": "A", "packages": ["x", "y"],
                    "files": [{"path": "/f", "content": "1"}, {"path": "/g", "content": "2"}]},
                   {"name": "b", "packages": ["y", "z"], "files": [{"path": "/f",
                                                                   "content": "3"}]})
    assert merged == {"name": "b", "packages": ["x", "y", "z"],
                      "files": [{"path": "/g", "content": "2"}, {"path": "/f", "content": "3"}]}
    (tmp_path / "loop.yaml").write_text("extends: loop\nname: loop\n")
    with pytest.raises(InvalidConfig, match="extends itself"):
        load_recipe(tmp_path / "loop.yaml")
    (tmp_path / "orphan.yaml").write_text("extends: nothere\nname: orphan\n")
    with pytest.raises(NotFound, match="'nothere' .extended by 'orphan'. not found"):
        load_recipe(tmp_path / "orphan.yaml")
    (tmp_path / "bad.yaml").write_text("extends: ../etc\nname: bad\n")
    with pytest.raises(InvalidConfig, match="'extends'"):
        load_recipe(tmp_path / "bad.yaml")

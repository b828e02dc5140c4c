"""Image remotes: built-in ones, name/URL rules, the short forms users type, and the YAML file
of user remotes (validated again when read)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lxmgr.errors import Conflict, InvalidConfig, NotFound
from lxmgr.images.remotes import (
    add_remote,
    get_remote,
    host_architecture,
    load_remotes,
    remotes_file,
    remove_remote,
    resolve_image_ref,
)
from lxmgr.model.remote import BUILTIN, ImageRef, Remote, parse_image_ref, validate_remote_url


def test_builtin_remotes() -> None:
    assert BUILTIN["ubuntu"].url == "https://cloud-images.ubuntu.com/releases"
    assert BUILTIN["images"].url == "https://images.linuxcontainers.org"
    assert all(r.protocol == "simplestreams" and r.public and r.builtin
               for name, r in BUILTIN.items() if name != "local")
    assert BUILTIN["local"].is_server and BUILTIN["local"].url == "unix://"


@pytest.mark.parametrize(("ref", "expected"), [
    ("ubuntu", ImageRef("ubuntu", "lts")),
    ("ubuntu:", ImageRef("ubuntu", "lts")),
    ("ubuntu:24.04", ImageRef("ubuntu", "24.04")),
    ("ubuntu:noble", ImageRef("ubuntu", "noble")),
    ("images:debian/12", ImageRef("images", "debian/12")),
    ("images:alpine/3.20", ImageRef("images", "alpine/3.20")),
    ("debian", ImageRef(None, "debian")),
    ("local:debian", ImageRef(None, "debian")),
    ("images", ImageRef(None, "images")),  # no default image: a local alias, like any name
    ("a1b2c3d4e5f6", ImageRef(None, "a1b2c3d4e5f6")),
])
def test_parse_image_ref(ref: str, expected: ImageRef) -> None:
    assert parse_image_ref(ref) == expected


def test_parse_image_ref_errors() -> None:
    with pytest.raises(NotFound, match="Remote 'nope' not found"):
        parse_image_ref("nope:debian/12")
    with pytest.raises(InvalidConfig, match="Remote 'images' has no default image"):
        parse_image_ref("images:")
    for bad in ("images:../x", "images:debian//12", "images:-x", "deb ian"):
        with pytest.raises(InvalidConfig, match="Invalid image name"):
            parse_image_ref(bad)


@pytest.mark.parametrize("url", [
    "https://images.example.org", "https://example.org:8443/streams", "http://127.0.0.1:8080",
    "http://[::1]:9000/x", "http://localhost:1234",
])
def test_good_urls(url: str) -> None:
    validate_remote_url(url)


@pytest.mark.parametrize("url", [
    "http://images.example.org", "ftp://example.org", "file:///etc", "https://", "example.org",
    "https://u:p@example.org", "https://example.org/?q=1", "https://exa mple.org",
    "http://10.0.0.1", "https://example.org:99999",
])
def test_bad_urls(url: str) -> None:
    with pytest.raises(InvalidConfig, match="Invalid remote URL"):
        validate_remote_url(url)


def test_add_list_remove(tmp_path: Path) -> None:
    path = remotes_file(tmp_path)
    assert set(load_remotes(path)) == {"local", "ubuntu", "images"}
    remote = add_remote(path, "mirror", "https://mirror.example.org/images/")
    assert remote == Remote("mirror", "https://mirror.example.org/images")
    assert load_remotes(path)["mirror"] == remote
    assert get_remote(path, "ubuntu") == BUILTIN["ubuntu"]
    with pytest.raises(Conflict, match="Remote 'mirror' already exists"):
        add_remote(path, "mirror", "https://other.example.org")
    assert resolve_image_ref(path, "mirror:debian/12") == (remote, "debian/12")
    assert resolve_image_ref(path, "mirror") == (None, "mirror")
    remove_remote(path, "mirror")
    assert "mirror" not in load_remotes(path)
    with pytest.raises(NotFound, match="Remote 'mirror' not found"):
        remove_remote(path, "mirror")
    with pytest.raises(NotFound, match="Remote 'mirror' not found"):
        get_remote(path, "mirror")


def test_refused_additions(tmp_path: Path) -> None:
    path = remotes_file(tmp_path)
    with pytest.raises(InvalidConfig, match="Remote 'ubuntu' is built in"):
        add_remote(path, "ubuntu", "https://example.org")
    with pytest.raises(InvalidConfig, match="cannot be removed"):
        remove_remote(path, "images")
    with pytest.raises(InvalidConfig, match="Invalid remote name"):
        add_remote(path, "Bad Name", "https://example.org")
    with pytest.raises(InvalidConfig, match="Invalid remote name"):
        add_remote(path, "local", "https://example.org")
    with pytest.raises(InvalidConfig, match="Invalid remote protocol"):
        add_remote(path, "x", "https://example.org", protocol="oci")
    assert not path.exists()


def test_hand_edited_file_is_validated(tmp_path: Path) -> None:
    path = remotes_file(tmp_path)
    path.write_text("remotes:\n  evil: {url: 'http://evil.example.org', protocol: lxd}\n")
    with pytest.raises(InvalidConfig, match=r"Invalid remotes file .*Invalid remote URL"):
        load_remotes(path)
    path.write_text("remotes: [1, 2]\n")
    with pytest.raises(InvalidConfig, match="expected a 'remotes' mapping"):
        load_remotes(path)
    path.write_text("remotes:\n  x: {url: 'https://x.example.org', public: 'yes'}\n")
    with pytest.raises(InvalidConfig, match="boolean public"):
        load_remotes(path)


def test_host_architecture() -> None:
    assert host_architecture() in {"x86_64", "aarch64", "armv7l", "i686", "ppc64le", "s390x",
                                   "riscv64", "loongarch64"}

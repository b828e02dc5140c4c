"""Simplestreams parsing on excerpts shaped like the real servers' files (cloud-images.ubuntu.com
releases download.json, images.linuxcontainers.org images.json): image choice, LXD's aliases,
architecture selection, and hostile data refused with the field named."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import pytest

from lxmgr.errors import InvalidConfig, NotFound
from lxmgr.images.simplestreams import (
    default_os_for,
    find_image,
    generated_aliases,
    normalize_architecture,
    parse_index,
    parse_products,
    parse_serial,
)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def item(ftype: str, path: str, size: int = 1000, **extra: str) -> dict[str, Any]:
    return {"ftype": ftype, "path": path, "sha256": sha(path), "md5": "0" * 32, "size": size,
            **extra}


def ubuntu_version(release: str, num: str, arch: str, serial: str) -> dict[str, Any]:
    base = f"server/releases/{release}/release-{serial}/ubuntu-{num}-server-cloudimg-{arch}"
    return {"label": "release", "pubname": f"ubuntu-{release}-{num}-{arch}-server-{serial}",
            "items": {
                "lxd.tar.xz": item("lxd.tar.xz", f"{base}-lxd.tar.xz", 416,
                                   combined_squashfs_sha256=sha(f"{base} sq"),
                                   combined_rootxz_sha256=sha(f"{base} rootxz"),
                                   combined_sha256=sha(f"{base} rootxz"),
                                   **{"combined_disk-kvm-img_sha256": sha(f"{base} kvm")}),
                "squashfs": item("squashfs", f"{base}.squashfs", 300_000_000),
                "root.tar.xz": item("root.tar.xz", f"{base}-root.tar.xz", 200_000_000),
                "disk1.img": item("disk1.img", f"{base}.img", 600_000_000),
                "manifest": item("manifest", f"{base}.manifest", 20_000),
            }}


def ubuntu_product(num: str, release: str, codename: str, aliases: str, arch: str,
                   serials: tuple[str, ...], lts: bool) -> dict[str, Any]:
    return {"aliases": aliases, "arch": arch, "os": "ubuntu", "release": release,
            "release_codename": codename, "release_title": num + (" LTS" if lts else ""),
            "support_eol": "2029-05-31", "supported": True, "version": num,
            "versions": {s: ubuntu_version(release, num, arch, s) for s in serials}}


UBUNTU: dict[str, Any] = {
    "content_id": "com.ubuntu.cloud:released:download", "datatype": "image-downloads",
    "format": "products:1.0", "license": "https://ubuntu.com/legal/intellectual-property-policy",
    "products": {
        "com.ubuntu.cloud:server:22.04:amd64": ubuntu_product(
            "22.04", "jammy", "Jammy Jellyfish", "22.04,j,jammy", "amd64", ("20240514",), True),
        "com.ubuntu.cloud:server:24.04:amd64": ubuntu_product(
            "24.04", "noble", "Noble Numbat", "24.04,default,lts,n,noble", "amd64",
            ("20240423", "20240523.1", "20240508"), True),
        "com.ubuntu.cloud:server:24.04:arm64": ubuntu_product(
            "24.04", "noble", "Noble Numbat", "24.04,default,lts,n,noble", "arm64",
            ("20240423",), True),
        "com.ubuntu.cloud:server:24.10:amd64": ubuntu_product(
            "24.10", "oracular", "Oracular Oriole", "24.10,o,oracular", "amd64",
            ("20241009",), False),
        "com.ubuntu.cloud:server:10.04:amd64": {
            "aliases": "10.04,l,lucid", "arch": "amd64", "os": "ubuntu", "release": "lucid",
            "release_title": "10.04 LTS", "version": "10.04", "versions": {"20150427": {
                "items": {"disk1.img": item("disk1.img", "server/lucid.img")}}}},
        "com.ubuntu.cloud:server:24.04:powerpc": ubuntu_product(
            "24.04", "noble", "Noble Numbat", "24.04", "powerpc", ("20240423",), True),
    },
    "updated": "Thu, 23 May 2024 10:09:15 +0000",
}


def lxc_version(os_: str, release: str, arch: str, variant: str, serial: str) -> dict[str, Any]:
    base = f"images/{os_}/{release}/{arch}/{variant}/{serial}"
    return {"items": {
        "lxd.tar.xz": item("lxd.tar.xz", f"{base}/incus.tar.xz", 564,
                           combined_sha256=sha(f"{base} rootxz"),
                           combined_rootxz_sha256=sha(f"{base} rootxz"),
                           combined_squashfs_sha256=sha(f"{base} sq")),
        "root.tar.xz": item("root.tar.xz", f"{base}/rootfs.tar.xz", 90_000_000),
        "rootfs.squashfs": item("squashfs", f"{base}/rootfs.squashfs", 120_000_000),
        "disk.qcow2": item("disk-kvm.img", f"{base}/disk.qcow2", 400_000_000),
    }}


def lxc_product(os_: str, release: str, arch: str, variant: str, aliases: str,
                serials: tuple[str, ...]) -> dict[str, Any]:
    return {"aliases": aliases, "arch": arch, "os": os_.capitalize(), "release": release,
            "release_title": release, "variant": variant, "requirements": {},
            "versions": {s: lxc_version(os_, release, arch, variant, s) for s in serials}}


IMAGES: dict[str, Any] = {
    "content_id": "images", "datatype": "image-downloads", "format": "products:1.0",
    "products": {
        "debian:bookworm:amd64:default": lxc_product(
            "debian", "bookworm", "amd64", "default",
            "debian/12/default,debian/12,debian/bookworm/default,debian/bookworm",
            ("20240601_05:24", "20240602_05:24")),
        "debian:bookworm:amd64:cloud": lxc_product(
            "debian", "bookworm", "amd64", "cloud", "debian/12/cloud,debian/bookworm/cloud",
            ("20240602_05:24",)),
        "debian:bookworm:arm64:default": lxc_product(
            "debian", "bookworm", "arm64", "default", "debian/12,debian/bookworm",
            ("20240602_05:24",)),
        "alpine:3.20:amd64:default": lxc_product(
            "alpine", "3.20", "amd64", "default", "", ("20240602_13:00",)),
        "alpine:3.19:amd64:default": lxc_product(
            "alpine", "3.19", "amd64", "default", "", ("20240602_13:00",)),
    },
}

INDEX = {"format": "index:1.0", "updated": "Thu, 23 May 2024 10:09:15 +0000", "index": {
    "com.ubuntu.cloud:released:aws": {"datatype": "image-ids", "format": "products:1.0",
                                      "path": "streams/v1/com.ubuntu.cloud:released:aws.json",
                                      "products": ["com.ubuntu.cloud:server:24.04:amd64"]},
    "com.ubuntu.cloud:released:download": {
        "datatype": "image-downloads", "format": "products:1.0",
        "path": "streams/v1/com.ubuntu.cloud:released:download.json",
        "products": ["com.ubuntu.cloud:server:24.04:amd64"]},
    "empty": {"datatype": "image-downloads", "path": "streams/v1/empty.json", "products": []},
}}


@pytest.fixture
def ubuntu() -> list[Any]:
    return parse_products(copy.deepcopy(UBUNTU), default_os="ubuntu")


@pytest.fixture
def images() -> list[Any]:
    return parse_products(copy.deepcopy(IMAGES))


def test_index_lists_only_image_download_files() -> None:
    assert parse_index(INDEX) == ["streams/v1/com.ubuntu.cloud:released:download.json"]


def test_newest_version_with_squashfs_and_its_combined_fingerprint(ubuntu: list[Any]) -> None:
    noble = find_image(ubuntu, "noble", "x86_64")
    assert noble.serial == "20240523.1"
    assert noble.architecture == "x86_64" and noble.product_arch == "amd64"
    assert [f.ftype for f in noble.files] == ["lxd.tar.xz", "squashfs"]
    assert noble.fingerprint == sha(
        "server/releases/noble/release-20240523.1/ubuntu-24.04-server-cloudimg-amd64 sq")
    assert noble.files[1].path.endswith("release-20240523.1/"
                                        "ubuntu-24.04-server-cloudimg-amd64.squashfs")
    assert noble.size == 416 + 300_000_000 and noble.rootfs_type == "squashfs"
    assert noble.created_at == 1716422400  # 2024-05-23 UTC
    assert noble.description == "ubuntu 24.04 LTS amd64 (release) (20240523.1)"


def test_squashfs_without_combined_hash_falls_back_to_root_tar_xz() -> None:
    data = copy.deepcopy(UBUNTU)
    meta = _noble_items(data)["lxd.tar.xz"]
    del meta["combined_squashfs_sha256"]
    noble = find_image(parse_products(data), "noble", "x86_64")
    assert noble.rootfs_type == "root.tar.xz"
    assert noble.fingerprint == meta["combined_rootxz_sha256"]


def test_root_tar_xz_preference_uses_combined_rootxz() -> None:
    data = copy.deepcopy(UBUNTU)
    data["products"]["com.ubuntu.cloud:server:24.04:amd64"]["versions"] = {
        "20240423": ubuntu_version("noble", "24.04", "amd64", "20240423")}
    meta = data["products"]["com.ubuntu.cloud:server:24.04:amd64"]["versions"]["20240423"][
        "items"]["lxd.tar.xz"]
    del meta["combined_rootxz_sha256"]  # older servers: combined_sha256 only
    [noble] = [i for i in parse_products(data, rootfs_preference=("root.tar.xz",))
               if i.release == "noble" and i.architecture == "x86_64"]
    assert [f.ftype for f in noble.files] == ["lxd.tar.xz", "root.tar.xz"]
    assert noble.fingerprint == meta["combined_sha256"]


def test_ubuntu_aliases(ubuntu: list[Any]) -> None:
    by_alias = {a: find_image(ubuntu, a, "x86_64").release
                for a in ("lts", "default", "24.04", "noble", "22.04", "jammy", "24.10", "o")}
    assert by_alias == {"lts": "noble", "default": "noble", "24.04": "noble", "noble": "noble",
                        "22.04": "jammy", "jammy": "jammy", "24.10": "oracular",
                        "o": "oracular"}
    noble = find_image(ubuntu, "lts", "x86_64")
    assert {"24.04/amd64", "noble/amd64", "lts/amd64"} <= set(noble.aliases)


def test_generated_lts_goes_to_the_newest_lts() -> None:
    data = copy.deepcopy(UBUNTU)
    for product in data["products"].values():
        product["aliases"] = ""  # a server that lists no aliases at all
    found = parse_products(data)
    assert find_image(found, "lts", "x86_64").release == "noble"
    assert find_image(found, "jammy", "x86_64").version == "22.04"
    assert find_image(found, "24.10", "x86_64").release == "oracular"


def test_ubuntu_prefix_is_dropped_on_the_ubuntu_server() -> None:
    data = copy.deepcopy(UBUNTU)
    data["products"]["com.ubuntu.cloud:server:24.04:amd64"]["aliases"] = "ubuntu/noble,mine"
    found = parse_products(data, default_os=default_os_for(
        "https://cloud-images.ubuntu.com/releases"))
    assert find_image(found, "mine", "x86_64").release == "noble"
    assert "ubuntu/noble" not in find_image(found, "mine", "x86_64").aliases


def test_architecture_selection(ubuntu: list[Any]) -> None:
    assert find_image(ubuntu, "noble", "aarch64").product_arch == "arm64"
    assert find_image(ubuntu, "24.04/arm64", "x86_64").architecture == "aarch64"
    with pytest.raises(NotFound, match=r"Image 'jammy' not found for architecture aarch64"):
        find_image(ubuntu, "jammy", "aarch64")


def test_unusable_products_are_skipped(ubuntu: list[Any]) -> None:
    products = {i.product for i in ubuntu}
    assert "com.ubuntu.cloud:server:10.04:amd64" not in products  # VM disk only
    assert "com.ubuntu.cloud:server:24.04:powerpc" not in products  # unknown arch
    data = copy.deepcopy(UBUNTU)
    versions = data["products"]["com.ubuntu.cloud:server:22.04:amd64"]["versions"]
    versions["latest"] = versions.pop("20240514")  # not a date: skipped as LXD does
    assert "com.ubuntu.cloud:server:22.04:amd64" not in {i.product for i in
                                                          parse_products(data)}


def test_images_remote_aliases(images: list[Any]) -> None:
    bookworm = find_image(images, "debian/12", "x86_64")
    assert bookworm.variant == "default" and bookworm.serial == "20240602_05:24"
    assert bookworm.os == "Debian" and bookworm.architecture == "x86_64"
    for alias in ("debian/bookworm", "debian/12/default", "debian/12/amd64",
                  "debian/bookworm/amd64"):
        assert find_image(images, alias, "x86_64") is bookworm
    assert find_image(images, "debian/12/cloud", "x86_64").variant == "cloud"
    assert find_image(images, "debian/12", "aarch64").product_arch == "arm64"
    assert find_image(images, "debian/12/arm64", "x86_64").product_arch == "arm64"
    assert find_image(images, "alpine/3.20", "x86_64").release == "3.20"
    assert find_image(images, "alpine/3.19/amd64", "x86_64").release == "3.19"
    assert parse_serial("20240602_05:24") == 1717305840


def test_generated_aliases_for_variants(images: list[Any]) -> None:
    cloud = find_image(images, "debian/12/cloud", "x86_64")
    assert generated_aliases(cloud) == ["debian/bookworm/cloud"]


def test_fingerprint_prefix(images: list[Any]) -> None:
    image = find_image(images, "alpine/3.20", "x86_64")
    assert find_image(images, image.fingerprint[:12], "x86_64") is image
    with pytest.raises(NotFound, match="Image 'fedora/40' not found"):
        find_image(images, "fedora/40", "x86_64")
    with pytest.raises(NotFound):
        find_image(images, image.fingerprint[:6], "x86_64")  # too short to be a prefix


def test_architectures() -> None:
    assert normalize_architecture("amd64") == "x86_64"
    assert normalize_architecture("arm64") == "aarch64"
    with pytest.raises(InvalidConfig, match="Unknown architecture 'vax'"):
        normalize_architecture("vax")
    assert default_os_for("https://images.linuxcontainers.org") == ""


def _noble_items(data: dict[str, Any]) -> dict[str, Any]:
    versions = data["products"]["com.ubuntu.cloud:server:24.04:amd64"]["versions"]
    return versions["20240523.1"]["items"]


@pytest.mark.parametrize(("field", "value", "message"), [
    ("path", "../../etc/shadow", "items['squashfs'].path"),
    ("path", "/etc/shadow", "items['squashfs'].path"),
    ("path", "server//x.squashfs", "items['squashfs'].path"),
    ("path", "server/./x", "items['squashfs'].path"),
    ("path", "server/x?y=1", "items['squashfs'].path"),
    ("path", 42, "items['squashfs'].path"),
    ("sha256", "zz" * 32, "items['squashfs'].sha256"),
    ("sha256", None, "items['squashfs'].sha256"),
    ("size", "300", "items['squashfs'].size"),
    ("size", True, "items['squashfs'].size"),
    ("size", -1, "items['squashfs'].size"),
    ("size", 2**70, "items['squashfs'].size"),
])
def test_hostile_rootfs_item_is_refused(field: str, value: Any, message: str) -> None:
    data = copy.deepcopy(UBUNTU)
    _noble_items(data)["squashfs"][field] = value
    with pytest.raises(InvalidConfig, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_products(data)


def test_hostile_fingerprint_alias_and_shapes_are_refused() -> None:
    data = copy.deepcopy(UBUNTU)
    _noble_items(data)["lxd.tar.xz"]["combined_squashfs_sha256"] = "not-a-hash"
    with pytest.raises(InvalidConfig, match=r"\['lxd.tar.xz'\]\.combined_squashfs_sha256"):
        parse_products(data)
    data = copy.deepcopy(UBUNTU)
    data["products"]["com.ubuntu.cloud:server:24.04:amd64"]["aliases"] = "noble,../../x"
    with pytest.raises(InvalidConfig, match=r"\.aliases: invalid alias"):
        parse_products(data)
    data = copy.deepcopy(UBUNTU)
    data["products"]["com.ubuntu.cloud:server:24.04:amd64"]["release"] = "x\n" * 3
    with pytest.raises(InvalidConfig, match=r"\.release: expected a printable string"):
        parse_products(data)
    with pytest.raises(InvalidConfig, match="products: expected an object"):
        parse_products({"products": []})
    with pytest.raises(InvalidConfig, match=r"index\[.*\]\.path"):
        parse_index({"index": {"x": {"datatype": "image-downloads", "products": ["a"],
                                     "path": "../index.json"}}})


def test_unified_image_is_fingerprinted_by_its_sha256() -> None:
    data = copy.deepcopy(IMAGES)
    version = data["products"]["alpine:3.20:amd64:default"]["versions"]["20240602_13:00"]
    version["items"] = {"lxd_combined.tar.gz": item("lxd_combined.tar.gz",
                                                    "images/alpine/3.20/unified.tar.gz")}
    alpine = find_image(parse_products(data), "alpine/3.20", "x86_64")
    assert alpine.rootfs_type == "unified" and len(alpine.files) == 1
    assert alpine.fingerprint == alpine.files[0].sha256

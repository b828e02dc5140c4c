"""The one-line messages for an image that exists nowhere and an image server that cannot be
reached: they name the remote and host and say what works instead."""

from __future__ import annotations

import pytest

from lxmgr.model.remote import (
    MAX_NAMES_SHOWN,
    missing_image_message,
    missing_stored_image_message,
    server_label,
    unreachable_message,
)


@pytest.mark.parametrize(("url", "label"), [
    ("https://cloud-images.ubuntu.com/releases", "'ubuntu' (cloud-images.ubuntu.com)"),
    ("https://images.linuxcontainers.org/", "'images' (images.linuxcontainers.org)"),
    ("https://mirror.example.org/streams", "mirror.example.org"),
    ("http://127.0.0.1:8443", "127.0.0.1:8443"),
])
def test_server_label_names_the_remote_and_host(url: str, label: str) -> None:
    assert server_label(url) == label


def test_unreachable_offers_what_works_without_the_server() -> None:
    assert unreachable_message("https://cloud-images.ubuntu.com/releases",
                               "Temporary failure in name resolution", ["debian"]) == (
        "Image server 'ubuntu' (cloud-images.ubuntu.com) is unreachable (Temporary failure "
        "in name resolution): without it, use a local recipe (debian), `lxmgr image "
        "import`, or a reachable remote")
    assert "use a local image, `lxmgr image import`" in unreachable_message(
        "http://127.0.0.1:9", "Connection refused", [])


def test_a_missing_name_lists_local_images_recipes_and_remote_forms() -> None:
    assert missing_image_message("nosuch", ["debian/12", "debian", "debian"]) == (
        "Image 'nosuch' not found: local images and recipes are debian, debian/12; or use a "
        "remote (ubuntu:24.04, images:debian/12)")
    assert missing_image_message("nosuch", []) == (
        "Image 'nosuch' not found: there are no local images or recipes; use a remote "
        "(ubuntu:24.04, images:debian/12)")


def test_long_lists_are_cut() -> None:
    names = [f"img{n:02d}" for n in range(MAX_NAMES_SHOWN + 5)]
    said = missing_stored_image_message("x", names)
    assert said.endswith(f"img{MAX_NAMES_SHOWN - 1:02d}, ...")
    assert "\n" not in said

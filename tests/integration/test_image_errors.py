"""Image errors through the API of an in-process daemon: a local name that exists nowhere
(404 listing local images and recipes, nothing created), an image server that cannot be
reached (a stopped local simplestreams server: the create operation fails in one line
naming it and what works without it, nothing left), a name the server does not have."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import call, wait
from tests.simplestreams_server import SimpleStreamsServer, build_tree

pytestmark = pytest.mark.kernel  # a real Manager (root)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc" / "os-release").write_text("ID=debian\n")
    build_tree(tmp_path / "tree", rootfs, formats=("root.tar.xz",))
    return tmp_path / "tree"


def _create(image: str, server: str = "") -> dict[str, Any]:
    source: dict[str, Any] = {"type": "image", "alias": image}
    if server:
        source.update(server=server, protocol="simplestreams")
    return {"name": "web3", "source": source}


async def _instances(api) -> list[str]:  # type: ignore[no-untyped-def]
    return list((await call(api, "GET", "/1.0/instances"))["metadata"])


async def test_an_unknown_local_name_lists_what_exists(api) -> None:  # type: ignore[no-untyped-def]
    err = await call(api, "POST", "/1.0/instances", _create("nosuch"), status=404)
    assert re.fullmatch(r"Image 'nosuch' not found: local images and recipes are (.+, )?"
                        r"debian(, .+)?; or use a remote \(ubuntu:24\.04, images:debian/12\)",
                        err["error"]), err["error"]
    assert await _instances(api) == []
    err = await call(api, "GET", "/1.0/images/nosuch", status=404)
    assert re.fullmatch(r"Image 'nosuch' not found: local images are .*debian.*",
                        err["error"]), err["error"]


async def test_an_unreachable_server_fails_the_create_in_one_line(api, tree) -> None:  # type: ignore[no-untyped-def]
    async with SimpleStreamsServer(tree) as srv:
        url = srv.url
    said = (f"Image server {url.removeprefix('http://')} is unreachable (Connection refused): "
            "without it, use a local recipe (debian, debian-dev), `lxmgr image import`, or a "
            "reachable remote")
    op = await wait(api, await call(api, "POST", "/1.0/instances", _create("debian/12", url),
                                    status=202), ok=False)
    assert (op["status"], op["err"]) == ("Failure", said)
    assert await _instances(api) == []
    pull = {"source": {"type": "image", "server": url, "protocol": "simplestreams",
                       "alias": "debian/12"}}
    op = await wait(api, await call(api, "POST", "/1.0/images", pull, status=202), ok=False)
    assert (op["status"], op["err"]) == ("Failure", said)


async def test_a_name_the_server_lacks_names_the_server(api, tree) -> None:  # type: ignore[no-untyped-def]
    async with SimpleStreamsServer(tree) as srv:
        op = await wait(api, await call(api, "POST", "/1.0/instances",
                                        _create("nosuch", srv.url), status=202), ok=False)
        host = srv.url.removeprefix("http://")
    assert op["err"] == f"Image 'nosuch' not found on image server {host}"
    assert await _instances(api) == []

"""`lxmgr file`: remote path and mode parsing; the server's header validation (pure)."""

from __future__ import annotations

import click
import pytest

from lxmgr.cli.commands.file import parse_mode, split_remote
from lxmgr.errors import InvalidConfig
from lxmgr.instances import files_api


def test_split_remote() -> None:
    assert split_remote("web1/etc/hosts") == ("web1", "/etc/hosts")
    assert split_remote("web1/") == ("web1", "/")
    for bad in ("web1", "/etc/hosts", ""):
        with pytest.raises(click.BadParameter):
            split_remote(bad)


def test_parse_mode() -> None:
    assert parse_mode("0640") == 0o640 and parse_mode("4755") == 0o4755
    assert parse_mode(None) is None
    for bad in ("rw", "9", "17777"):
        with pytest.raises(click.BadParameter):
            parse_mode(bad)


def test_push_headers_parse_like_lxd() -> None:
    req = files_api.parse_push("etc/x", {"X-LXD-uid": "33", "X-Incus-gid": "0",
                                         "X-LXD-mode": "0o640", "X-LXD-write": "append",
                                         "X-LXD-modify-perm": "uid,mode"})
    assert (req.path, req.uid, req.gid, req.mode, req.write, req.modify) == \
        ("/etc/x", 33, 0, 0o640, "append", ["uid", "mode"])
    assert files_api.parse_push("/x", {}).type == "file"


@pytest.mark.parametrize("headers", [
    {"X-LXD-uid": "-1"}, {"X-LXD-gid": "4294967295"}, {"X-LXD-mode": "08"},
    {"X-LXD-mode": "0644\n"}, {"X-LXD-mode": "20000"}, {"X-LXD-type": "socket"},
    {"X-LXD-write": "truncate"}, {"X-LXD-modify-perm": "uid,owner"},
])
def test_bad_headers_are_400(headers: dict[str, str]) -> None:
    with pytest.raises(InvalidConfig):
        files_api.parse_push("/x", headers)


@pytest.mark.parametrize("path", [None, "", "/a\0b", "/" + "a" * 5000])
def test_bad_paths_are_400(path: str | None) -> None:
    with pytest.raises(InvalidConfig):
        files_api.parse_path(path)


def test_response_headers() -> None:
    headers = files_api.response_headers({"uid": 0, "gid": 5, "mode": 0o755,
                                          "type": "directory", "mtime": 0})
    assert headers["X-LXD-mode"] == "0755" and headers["X-LXD-type"] == "directory"

"""lxmgr.client.files.pull_follow: symlinks named by the user are followed with one GET per
link, relative targets after the link's directory (left for the server to resolve, `..`
included), absolute ones as they are; dangling links and loops are one-line errors."""

from __future__ import annotations

import io
from typing import Any, BinaryIO

import pytest

from lxmgr import errors
from lxmgr.client import files

# A container's tree as the files API answers it: path -> (type, target or content).
TREE = {
    "/etc/os-release": ("symlink", "../usr/lib/os-release"),
    "/usr/lib/os-release": ("file", b"PRETTY_NAME=Debian\n"),
    "/etc/abs": ("symlink", "/usr/lib/os-release"),
    "/etc/chain": ("symlink", "alternatives/x"),
    "/etc/alternatives/x": ("symlink", "../../usr/lib/os-release"),
    "/etc/dangling": ("symlink", "../nowhere"),
    "/etc/loop": ("symlink", "loop"),
    "/etc/dir": ("symlink", "/usr/lib"),
    "/usr/lib": ("directory", ["os-release"]),
}


def resolve(path: str) -> str:
    """What the server does with a path: `..` after the directory it names (lexical here,
    since this tree has no symlinked directories)."""
    import posixpath

    return posixpath.normpath(path)


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []

    def pull(client: Any, name: str, path: str, out: BinaryIO | None) -> dict[str, Any]:
        seen.append(path)
        entry = TREE.get(resolve(path))
        if entry is None:
            raise errors.NotFound(f"Not found: {path}")
        kind, value = entry
        info: dict[str, Any] = {"type": kind, "uid": 0, "gid": 0, "mode": 0o644}
        if kind == "symlink":
            info["target"] = value
        elif kind == "directory":
            info["entries"] = value
        elif out is not None:
            out.write(value)
        return info

    monkeypatch.setattr(files, "pull", pull)
    return seen


def test_link_path() -> None:
    assert files.link_path("/etc/os-release", "../usr/lib/os-release") == \
        "/etc/../usr/lib/os-release"
    assert files.link_path("/etc/abs", "/usr/lib/os-release") == "/usr/lib/os-release"
    assert files.link_path("/x", "y") == "/y"
    assert files.link_path("/etc/x/", "y") == "/etc/y"
    long = "/d" + "/sub" * 1100  # joined would pass the server's 4096-byte path limit
    assert files.link_path(long, "../../f") == long.rsplit("/", 3)[0] + "/f"


@pytest.mark.parametrize("path", ["/etc/os-release", "/etc/abs", "/etc/chain",
                                  "/usr/lib/os-release"])
def test_follows_to_the_file(asked: list[str], path: str) -> None:
    out = io.BytesIO()
    info = files.pull_follow(None, "c1", path, out)  # type: ignore[arg-type]
    assert (info["type"], out.getvalue()) == ("file", b"PRETTY_NAME=Debian\n")
    assert resolve(info["path"]) == "/usr/lib/os-release"


def test_chain_is_resolved_after_each_links_directory(asked: list[str]) -> None:
    files.pull_follow(None, "c1", "/etc/chain", io.BytesIO())  # type: ignore[arg-type]
    # lxc joins every target to the first link's directory, which would ask for
    # /etc/../../usr/lib/os-release = /usr/lib/os-release here only by luck.
    assert asked == ["/etc/chain", "/etc/alternatives/x",
                     "/etc/alternatives/../../usr/lib/os-release"]


def test_directory(asked: list[str]) -> None:
    info = files.pull_follow(None, "c1", "/etc/dir", None)  # type: ignore[arg-type]
    assert (info["type"], info["entries"], info["path"]) == ("directory", ["os-release"],
                                                             "/usr/lib")


def test_dangling_link_names_it(asked: list[str]) -> None:
    with pytest.raises(errors.NotFound) as err:
        files.pull_follow(None, "c1", "/etc/dangling", io.BytesIO())  # type: ignore[arg-type]
    assert str(err.value) == "Symlink '/etc/dangling' leads to '/nowhere', which does not " \
        "exist in 'c1'"


def test_missing_path_keeps_the_servers_error(asked: list[str]) -> None:
    with pytest.raises(errors.NotFound, match="^Not found: /nope$"):
        files.pull_follow(None, "c1", "/nope", io.BytesIO())  # type: ignore[arg-type]


def test_loop_stops(asked: list[str]) -> None:
    with pytest.raises(errors.InvalidConfig,
                       match="^Too many levels of symbolic links at '/etc/loop'$"):
        files.pull_follow(None, "c1", "/etc/loop", io.BytesIO())  # type: ignore[arg-type]
    assert len(asked) == files.MAX_LINKS + 1

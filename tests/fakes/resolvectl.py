"""A recording stand-in for resolvectl and a HostResolver built on it (systemd-resolved
cannot run in the test environment)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lxmgr.errors import CommandError
from lxmgr.net import resolved

TOOL = "/usr/bin/resolvectl"


class FakeRun:
    """Records every argv; answers from `replies` (argv[1] -> stdout) or fails from `fail`."""

    def __init__(self, replies: dict[str, str] | None = None, fail: str = "") -> None:
        self.calls: list[list[str]] = []
        self.replies = replies or {}
        self.fail = fail

    def __call__(self, argv: Sequence[str]) -> str:
        self.calls.append(list(argv))
        if self.fail and argv[1] == self.fail:
            raise CommandError(list(argv), 1, "Failed to set DNS configuration: Could not "
                                              "activate remote peer 'org.freedesktop.resolve1'")
        return self.replies.get(argv[1], "")


def fake_resolver(tmp_path: Path, run: FakeRun, *, present: bool = True,
                  tool: str | None = TOOL, same_netns: bool = True) -> resolved.HostResolver:
    """A HostResolver on run; `present` makes its runtime dir under tmp_path."""
    run_dir = tmp_path / "resolve"
    if present:
        run_dir.mkdir(exist_ok=True)
    return resolved.HostResolver(run=run, run_dir=run_dir, which=lambda _name: tool,
                                 same_netns=lambda: same_netns)

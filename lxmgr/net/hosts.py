"""A managed block in the host's /etc/hosts naming the instances on lxmgr's networks
(web1.lxmgr), for hosts whose resolver lxmgr cannot tell about the networks' dnsmasq (no
systemd-resolved: see lxmgr.net.resolved). Lines outside the block are never changed.

PURE render/replace; write() is the thin side effect. Imports lxmgr.errors only.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable

BEGIN = "# BEGIN lxmgr: instances on lxmgr's networks (written by lxmgrd; edits are lost)"
END = "# END lxmgr"


def render_block(entries: Iterable[tuple[str, str]]) -> str:
    """'ADDRESS NAME' lines between the markers; "" without entries (no block at all)."""
    lines = [f"{address}\t{name}" for address, name in sorted(set(entries), key=lambda e:
                                                               (e[1], e[0]))]
    if not lines:
        return ""
    return "\n".join([BEGIN, *lines, END]) + "\n"


def replace_block(text: str, block: str) -> str:
    """text with its lxmgr block (if any) replaced by block, appended when new."""
    lines = text.splitlines(keepends=True)
    try:
        start = next(i for i, line in enumerate(lines) if line.rstrip("\n") == BEGIN)
        end = next(i for i in range(start, len(lines)) if lines[i].rstrip("\n") == END)
    except StopIteration:
        if not block:
            return text
        sep = "" if not text or text.endswith("\n") else "\n"
        return text + sep + block
    return "".join(lines[:start]) + block + "".join(lines[end + 1:])


def write(path: str, entries: Iterable[tuple[str, str]]) -> bool:
    """Bring the block in path up to date; True when the file changed. Replaced by a
    rename (readers never see half a file), or rewritten in place where path is a mount
    point (a container's bind-mounted /etc/hosts refuses rename)."""
    try:
        with open(path) as f:
            old = f.read()
    except FileNotFoundError:
        old = ""
    new = replace_block(old, render_block(entries))
    if new == old:
        return False
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".hosts.", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(new)
        try:
            st = os.stat(path)
            os.chmod(tmp, st.st_mode & 0o7777)
        except FileNotFoundError:
            os.chmod(tmp, 0o644)
        try:
            os.replace(tmp, path)
        except OSError:  # EBUSY: a bind-mounted file
            with open(path, "w") as f:
                f.write(new)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return True

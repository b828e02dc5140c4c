"""The `lxmgr` launcher: the command started without `site`, for the fast path.

pip's console script starts Python normally, and `site` then runs every .pth hook in
site-packages (an editable install's finder, distro and vendor hooks): 7-30 ms per command
before lxmgr runs, measured on Debian 12 and on the development VM. The fast path
(lxmgr.cli.fast: list, start, stop, exec) needs only the stdlib and lxmgr itself, so the
launcher starts the same interpreter with -S and puts lxmgr's own directory first on
sys.path (-P: not the script's own directory); when a verb needs click, lxmgr.cli.fast loads
`site` then (site.main(), the documented way to do it late), so every other verb behaves as
before. (One shebang argument only, hence the flags written together: -SP.)

It is an optimisation only: pip's console script (lxmgr.cli.fast:main) runs the same code.

`python3 -m lxmgr.cli.launcher [PATH]` writes it (default: over pip's console script next
to the interpreter's scripts); .ci/setup runs that after `pip install`.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path

import lxmgr

TEMPLATE = """#!{python} -SP
# lxmgr launcher, written by `{python} -m lxmgr.cli.launcher`: Python without site (see
# lxmgr/cli/launcher.py) nor this script's directory on sys.path; rewrite it after moving
# the interpreter or the checkout.
import sys
sys.path.insert(0, {root!r})
from lxmgr.cli.fast import main
main()
"""


def package_root() -> str:
    """The directory holding the lxmgr package this interpreter imports."""
    return str(Path(lxmgr.__file__).resolve().parent.parent)


def render(python: str | None = None, root: str | None = None) -> str:
    python = python or sys.executable
    if not python or any(ch.isspace() for ch in python):
        # a shebang cannot carry a path with spaces (and needs an interpreter at all)
        raise ValueError(f"Cannot write a launcher for interpreter '{python}'")
    return TEMPLATE.format(python=python, root=root or package_root())


def default_path() -> Path:
    return Path(sysconfig.get_path("scripts")) / "lxmgr"


def write(path: Path | None = None, *, python: str | None = None,
          root: str | None = None) -> Path:
    """Write the launcher to path atomically (mode 0755) and return the path."""
    target = path or default_path()
    text = render(python, root)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(text)
        tmp.chmod(0o755)
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1 or (args and args[0].startswith("-")):
        print("usage: python3 -m lxmgr.cli.launcher [PATH]", file=sys.stderr)
        return 2
    target = Path(args[0]) if args else default_path()
    try:
        write(target)
    except OSError as err:
        print(f"Error: Cannot write {target}: {err.strerror or err}", file=sys.stderr)
        return 1
    except ValueError as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())

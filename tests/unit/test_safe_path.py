"""Every Python lxmgr starts keeps the working directory off sys.path (-P): `python -m`
otherwise puts it first, and a directory named lxmgr there would be imported instead."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import lxmgr

PACKAGE = Path(lxmgr.__file__).resolve().parent


def _is_sys_executable(node: ast.expr) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "executable" and \
        isinstance(node.value, ast.Name) and node.value.id == "sys"


def _python_argvs() -> list[tuple[str, list[str]]]:
    """(where, the string flags) of each list literal starting with sys.executable."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.List) and node.elts and _is_sys_executable(node.elts[0]):
                flags = []
                for elt in node.elts[1:]:
                    if not (isinstance(elt, ast.Constant) and isinstance(elt.value, str)
                            and elt.value.startswith("-")) or elt.value == "-m":
                        break
                    flags.append(elt.value)
                found.append((f"{path.relative_to(PACKAGE.parent)}:{node.lineno}", flags))
    return found


def test_every_python_child_runs_with_safe_path() -> None:
    argvs = _python_argvs()
    # the daemon, the warm supervisor, the files helper, the overlay probe, NIC attach
    # (twice) and the relay: a new spawn site shows up here and must pass -P too
    assert len(argvs) >= 7, argvs
    unsafe = [where for where, flags in argvs if not {"-P", "-I"} & set(flags)]
    assert unsafe == []


def test_lxmgrd_leaves_the_working_directory(tmp_path: Path) -> None:
    """lxmgrd moves to / once its path variables are absolute (a child, as chdir is
    process-wide)."""
    code = ("import os; from lxmgr.daemon.__main__ import leave_cwd; leave_cwd(); "
            "print(os.getcwd(), os.environ['LXMGR_DIR'], os.environ.get('LXMGR_SOCKET'))")
    env = {**os.environ, "LXMGR_DIR": "state", "PYTHONPATH": str(PACKAGE.parent)}
    env.pop("LXMGR_SOCKET", None)
    out = subprocess.run([sys.executable, "-P", "-c", code], cwd=tmp_path, env=env,
                         capture_output=True, text=True, check=True, timeout=60).stdout
    assert out.split() == ["/", f"{tmp_path}/state", "None"]

"""`python -m lxmgr.instances launch IMAGE NAME`: build the image if needed, create and start
an instance, wait for its init to finish booting. A developer entry point until the daemon
and the `lxmgr` CLI take over; errors are one line and exit 1."""

from __future__ import annotations

import os
import sys
import time

from lxmgr.errors import LxmgrError, NotFound
from lxmgr.images import debootstrap
from lxmgr.instances.manager import Manager


def launch(image: str, name: str) -> int:
    manager = Manager()
    try:
        try:
            manager.images.get(image)
        except NotFound:
            print(f"Building image '{image}' (debootstrap, about a minute)...", flush=True)
            debootstrap.build(image)
        manager.create(name, image)
        manager.start(name)
        null = os.open(os.devnull, os.O_RDWR)
        deadline = time.monotonic() + 60
        while manager.exec(name, ["systemctl", "is-system-running", "--quiet"], stdin=null,
                           stdout=null, stderr=null) != 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        state = manager.state(name)
        print(f"{name}: {state['status']}, PID 1 = host pid {state['pid']}")
        manager.exec(name, ["systemctl", "is-system-running"])
        return 0
    finally:
        manager.close()


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] != "launch":
        print("usage: python -m lxmgr.instances launch IMAGE NAME", file=sys.stderr)
        return 2
    try:
        return launch(argv[1], argv[2])
    except LxmgrError as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

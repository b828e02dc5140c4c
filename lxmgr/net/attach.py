"""`python -S -m lxmgr.net.attach SPEC.json PID`: attach NICs to a booted container;
`... SPEC.json --detach` removes what outlives the container (the egress IFB devices).

The supervisor runs this hook after a reboot from inside the container (a start's NICs are
plugged by the manager, in-process), in the host network namespace, so the NICs come back
with every new PID 1. SPEC.json holds a
JSON list of NicSpec dicts (NicSpec.to_dict()). Exit 0 once every NIC is up; else one line
per failure on stderr and exit 1 (NICs attached before the failure stay; the next run or
detach() replaces or removes them). Imports only json, sys, pyroute2 (through nic) and
lxmgr.net.nic: it sits on the container's start path.
"""

from __future__ import annotations

import json
import sys

from lxmgr.errors import LxmgrError
from lxmgr.net.nic import NicSpec, attach, detach

USAGE = "usage: python -m lxmgr.net.attach SPEC.json PID|--detach"


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not (argv[1].isdigit() or argv[1] == "--detach"):
        print(USAGE, file=sys.stderr)
        return 2
    try:
        with open(argv[0]) as f:
            data = json.load(f)
        if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
            raise ValueError("expected a JSON list of objects")
        specs = [NicSpec.from_dict(item) for item in data]
    except (OSError, ValueError, TypeError, LxmgrError) as err:
        print(f"Failed to read NIC specs '{argv[0]}': {err}", file=sys.stderr)
        return 1
    status = 0
    for spec in specs:
        try:
            if argv[1] == "--detach":
                detach(spec)
            else:
                attach(spec, int(argv[1]))
        except LxmgrError as err:
            print(err, file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

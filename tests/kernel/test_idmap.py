"""security.idmap.base and security.idmap.size on real containers: the map written for the
container's init is the one asked for, a map overlapping another is refused, and a map is not
changed under an existing instance's files."""

from __future__ import annotations

import pytest

from lxmgr.errors import Conflict, InvalidConfig, NotSupported
from tests.kernel.conftest import exec_out, wait_running

pytestmark = pytest.mark.kernel

# Far above where isolated maps are found (from root's first id + 65536 upwards), inside the
# root:1000000:1000000000 range the test hosts have (.ci/setup, LXD's packaging).
BASE, SIZE = 900000000, 70000
ISOLATED = {"security.idmap.isolated": "true"}


def proc_map(pid: int, kind: str) -> list[str]:
    with open(f"/proc/{pid}/{kind}_map") as f:
        return f.read().split()


def test_base_and_size_are_the_map_of_init(manager) -> None:  # type: ignore[no-untyped-def]
    manager.create("idb1", "debian", config={**ISOLATED, "security.idmap.base": str(BASE),
                                             "security.idmap.size": str(SIZE)})
    manager.start("idb1")
    pid = manager.state("idb1")["pid"]
    assert proc_map(pid, "uid") == proc_map(pid, "gid") == ["0", str(BASE), str(SIZE)]
    assert wait_running(manager, "idb1") == "running"
    assert exec_out(manager, "idb1", ["stat", "-c", "%u %g", "/etc/passwd"])[1] == "0 0\n"

    with pytest.raises(Conflict, match="overlap those of instance 'idb1'"):
        manager.create("idb2", "debian", config={**ISOLATED, "security.idmap.base":
                                                 str(BASE + SIZE - 1)})
    assert "idb2" not in manager.list()
    with pytest.raises(InvalidConfig, match="needs security.idmap.isolated=true"):
        manager.create("idb2", "debian", config={"security.idmap.base": str(BASE + SIZE)})

    # Not live, and not at the next start either: the files belong to this map.
    for key, value in (("security.idmap.base", str(BASE + SIZE)),
                       ("security.idmap.size", "65536")):
        with pytest.raises(NotSupported, match=f"cannot change {key}"):
            manager.update_config("idb1", {key: value})
    with pytest.raises(NotSupported, match="cannot change security.idmap.isolated"):
        manager.update_config("idb1", {}, unset=["security.idmap.isolated",
                                                 "security.idmap.base", "security.idmap.size"])
    with pytest.raises(InvalidConfig, match="needs security.idmap.isolated=true"):
        manager.update_config("idb1", {"security.idmap.isolated": "false"})
    assert manager.get("idb1").config["security.idmap.base"] == str(BASE)
    manager.update_config("idb1", {"limits.processes": "500"})  # other keys still change
    manager.stop("idb1", force=True)
    manager.start("idb1")
    assert proc_map(manager.state("idb1")["pid"], "uid") == ["0", str(BASE), str(SIZE)]


def test_size_alone_is_honoured_with_a_found_base(manager) -> None:  # type: ignore[no-untyped-def]
    manager.create("ids1", "debian", config={**ISOLATED, "security.idmap.size": str(SIZE)})
    manager.create("ids2", "debian", config=ISOLATED)
    manager.start("ids1")
    uid = proc_map(manager.state("ids1")["pid"], "uid")
    assert uid[0] == "0" and uid[2] == str(SIZE)
    config = manager.get("ids2").config
    first, second = int(uid[1]), int(config["volatile.idmap.base"])
    assert config["volatile.idmap.size"] == "65536"
    assert first + SIZE <= second or second + 65536 <= first  # no id shared
    assert wait_running(manager, "ids1") == "running"

"""A project's limits.* and restricted* keys as LXD 5.0 applies them: instance counts,
aggregate limits over its instances, restrictions on config and devices, and updates of the
project that what it holds already breaks."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import call, wait

pytestmark = pytest.mark.kernel


async def _create(api, name: str, project: str, status: int = 202,  # type: ignore[no-untyped-def]
                  **body: Any) -> dict[str, Any]:
    envelope = await call(api, "POST", f"/1.0/instances?project={project}",
                          {"name": name, "source": {"type": "image", "alias": "debian"},
                           **body}, status=status)
    return await wait(api, envelope) if status == 202 else envelope


async def _cleanup(api, project: str) -> None:  # type: ignore[no-untyped-def]
    for url in (await call(api, "GET", f"/1.0/instances?project={project}"))["metadata"]:
        await wait(api, await call(api, "DELETE", f"{url}&force=1", status=202))
    await call(api, "DELETE", f"/1.0/projects/{project}")


async def test_instance_counts(api) -> None:  # type: ignore[no-untyped-def]
    await call(api, "POST", "/1.0/projects", {"name": "few", "config": {
        "features.images": "false", "limits.instances": "1"}}, status=201)
    try:
        await _create(api, "a1", "few")
        error = await _create(api, "a2", "few", status=400)
        assert error["error"] == 'Reached maximum number of instances in project "few"'
        error = await call(api, "POST", "/1.0/instances?project=few", {
            "name": "a3", "source": {"type": "copy", "source": "a1"}}, status=400)
        assert error["error"] == 'Reached maximum number of instances in project "few"'
        error = await call(api, "PATCH", "/1.0/projects/few",
                           {"config": {"limits.containers": "0"}}, status=400)
        assert error["error"] == (
            "Can't change \"limits.containers\" in project \"few\": 'limits.containers' is too "
            "low: there currently are 1 instances of type container in project few")
        await call(api, "PATCH", "/1.0/projects/few", {"config": {"limits.instances": "2"}})
        await _create(api, "a2", "few")
        state = (await call(api, "GET", "/1.0/projects/few/state"))["metadata"]["resources"]
        assert state["instances"] == {"Limit": 2, "Usage": 2}
        assert state["containers"] == {"Limit": -1, "Usage": 2}
    finally:
        await _cleanup(api, "few")


async def test_aggregate_memory(api) -> None:  # type: ignore[no-untyped-def]
    await call(api, "POST", "/1.0/projects", {"name": "mem", "config": {
        "features.images": "false", "limits.memory": "1GiB", "limits.processes": "500"}},
        status=201)
    try:
        error = await _create(api, "m1", "mem", status=400)
        assert error["error"] == ("Instance m1 in project mem has no 'limits.memory' config, "
                                  "either directly or via a profile")
        # The project's own default profile may carry them for every instance.
        await call(api, "PATCH", "/1.0/profiles/default?project=mem",
                   {"config": {"limits.processes": "100"}})
        await _create(api, "m1", "mem", config={"limits.memory": "512MiB"})
        error = await _create(api, "m2", "mem", status=400,
                              config={"limits.memory": "600MiB"})
        assert error["error"] == ('Reached maximum aggregate value "1GiB" for "limits.memory" '
                                  'in project "mem"')
        await _create(api, "m2", "mem", config={"limits.memory": "512MiB"})
        error = await call(api, "PATCH", "/1.0/instances/m2?project=mem",
                           {"config": {"limits.memory": "513MiB"}}, status=400)
        assert "Reached maximum aggregate value" in error["error"]
        error = await call(api, "PATCH", "/1.0/profiles/default?project=mem",
                           {"config": {"limits.processes": "300"}}, status=400)
        assert error["error"] == ('Reached maximum aggregate value "500" for '
                                  '"limits.processes" in project "mem"')
        error = await call(api, "PATCH", "/1.0/projects/mem",
                           {"config": {"limits.memory": "512MiB"}}, status=400)
        assert error["error"] == "'limits.memory' is too low: current total is 1GiB"
        state = (await call(api, "GET", "/1.0/projects/mem/state"))["metadata"]["resources"]
        assert state["memory"] == {"Limit": 1 << 30, "Usage": 1 << 30}
        assert state["processes"] == {"Limit": 500, "Usage": 200}
    finally:
        await _cleanup(api, "mem")


async def test_restricted(api) -> None:  # type: ignore[no-untyped-def]
    await call(api, "POST", "/1.0/projects", {"name": "lock", "config": {
        "features.images": "false", "restricted": "true"}}, status=201)
    try:
        for body, message in [
            ({"config": {"security.privileged": "true"}},
             'Invalid value "true" for config "security.privileged" on container "r1" of '
             'project "lock": Privileged containers are forbidden'),
            ({"config": {"security.nesting": "true"}},
             'Invalid value "true" for config "security.nesting" on container "r1" of '
             'project "lock": Container nesting is forbidden'),
            ({"config": {"raw.idmap": "both 1000 1000"}},
             'Use of low-level config "raw.idmap" on container "r1" of project "lock" is '
             'forbidden'),
            ({"devices": {"tty": {"type": "unix-char", "path": "/dev/ttyS0"}}},
             'Invalid device "tty" on instance "r1" of project "lock": Unix character devices '
             'are forbidden'),
            ({"devices": {"src": {"type": "disk", "source": "/srv", "path": "/srv"}}},
             'Invalid device "src" on instance "r1" of project "lock": Attaching disks not '
             'backed by a pool is forbidden'),
        ]:
            error = await _create(api, "r1", "lock", status=400, **body)
            assert error["error"] == message
        assert (await call(api, "GET", "/1.0/instances?project=lock"))["metadata"] == []
        await _create(api, "r1", "lock")
        # Checked before lxmgr's own checks (the id map of a privileged change), as LXD.
        error = await call(api, "PATCH", "/1.0/instances/r1?project=lock",
                           {"config": {"security.privileged": "true"}}, status=400)
        assert error["error"].endswith("Privileged containers are forbidden")
        error = await call(api, "PATCH", "/1.0/profiles/default?project=lock",
                           {"config": {"security.privileged": "true"}}, status=400)
        assert error["error"] == ('Invalid value "true" for config "security.privileged" on '
                                  'container "r1" of project "lock": Privileged containers '
                                  'are forbidden')
        # Lifting one restriction allows what it covers.
        await call(api, "PATCH", "/1.0/projects/lock",
                   {"config": {"restricted.containers.nesting": "allow"}})
        await wait(api, await call(api, "PATCH", "/1.0/instances/r1?project=lock",
                                   {"config": {"security.nesting": "true"}}, status=202))
        error = await call(api, "PATCH", "/1.0/projects/lock",
                           {"config": {"restricted.containers.nesting": "block"}}, status=400)
        assert error["error"].startswith('Conflict detected when changing '
                                         '"restricted.containers.nesting" in project "lock"')
    finally:
        await _cleanup(api, "lock")


async def test_disk_limit_needs_sizes(api) -> None:  # type: ignore[no-untyped-def]
    """limits.disk sums the root disks' and custom volumes' `size`: every instance needs
    one (directly or through a profile), as LXD's getTotalsAcrossProjectEntities."""
    await call(api, "POST", "/1.0/projects", {"name": "dsk", "config": {
        "features.images": "false", "features.profiles": "false", "limits.disk": "1GiB"}},
        status=201)
    try:
        error = await _create(api, "d1", "dsk", status=400)
        assert error["error"] == ("Instance d1 in project dsk has no 'size' config set on the "
                                  "root device, either directly or via a profile")
        state = (await call(api, "GET", "/1.0/projects/dsk/state"))["metadata"]["resources"]
        assert state["disk"] == {"Limit": 1 << 30, "Usage": 0}
    finally:
        await _cleanup(api, "dsk")

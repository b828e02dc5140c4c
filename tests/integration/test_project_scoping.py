"""What a project holds: instances of the same name in two projects, profiles of a project's
own or default's (features.profiles), operations and events per project, all-projects,
copies between projects, and names in messages as the client gave them."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import pytest

from tests.integration.conftest import call, wait

pytestmark = pytest.mark.kernel

SHARED_IMAGES = {"features.images": "false"}  # images are scoped in their own tests


async def _project(api, name: str, **config: str) -> None:  # type: ignore[no-untyped-def]
    await call(api, "POST", "/1.0/projects",
               {"name": name, "config": {**SHARED_IMAGES, **config}}, status=201)


async def _launch(api, name: str, project: str = "default", **body: Any) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return await wait(api, await call(
        api, "POST", f"/1.0/instances?project={project}",
        {"name": name, "source": {"type": "image", "alias": "debian"}, **body}, status=202))


def _hostname(pid: int) -> str:
    """The host name in the UTS namespace of pid (read by a child that joins it)."""
    code = ("import os, socket, sys; from lxmgr.linux import libc; "
            "libc.setns(os.open(f'/proc/{sys.argv[1]}/ns/uts', os.O_RDONLY)); "
            "print(socket.gethostname())")
    return subprocess.run([sys.executable, "-c", code, str(pid)], check=True,
                          capture_output=True, text=True).stdout.strip()


async def _events(ws, count: int) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    return [await asyncio.wait_for(ws.receive_json(), 10) for _ in range(count)]


async def test_same_name_in_two_projects(api) -> None:  # type: ignore[no-untyped-def]
    await _project(api, "web")
    web_events = await api.ws_connect("/1.0/events?type=lifecycle&project=web")
    default_events = await api.ws_connect("/1.0/events?type=lifecycle")
    op = await _launch(api, "c1", "web", description="in web")
    assert op["resources"] == {"instances": ["/1.0/instances/c1?project=web"]}
    assert op["metadata"]["entity_url"] == "/1.0/instances/c1?project=web"
    await _launch(api, "c1", description="in default")

    web = (await call(api, "GET", "/1.0/instances/c1?project=web"))["metadata"]
    default = (await call(api, "GET", "/1.0/instances/c1"))["metadata"]
    assert (web["name"], web["project"], web["description"]) == ("c1", "web", "in web")
    assert (default["project"], default["description"]) == ("default", "in default")
    assert web["profiles"] == ["default"]
    assert (await call(api, "GET", "/1.0/instances?project=web"))["metadata"] == [
        "/1.0/instances/c1?project=web"]
    assert (await call(api, "GET", "/1.0/instances"))["metadata"] == ["/1.0/instances/c1"]
    both = (await call(api, "GET", "/1.0/instances?recursion=1&all-projects=true"))["metadata"]
    assert sorted((i["name"], i["project"]) for i in both) == [("c1", "default"), ("c1", "web")]
    full = (await call(api, "GET", "/1.0/instances?recursion=2&project=web"))["metadata"]
    assert [(i["name"], i["project"], i["status"]) for i in full] == [("c1", "web", "Stopped")]

    # The project is not empty now; its instance's messages use its own name.
    error = await call(api, "DELETE", "/1.0/projects/web", status=400)
    assert error["error"] == "Only empty projects can be removed"
    error = await call(api, "POST", "/1.0/instances?project=web",
                       {"name": "c1", "source": {"type": "image", "alias": "debian"}},
                       status=409)
    assert error["error"] == "Instance 'c1' already exists"
    error = await call(api, "GET", "/1.0/instances/nosuch?project=web", status=404)
    assert error["error"] == "Instance 'nosuch' not found"
    used = (await call(api, "GET", "/1.0/projects/web"))["metadata"]["used_by"]
    assert "/1.0/instances/c1?project=web" in used
    state = (await call(api, "GET", "/1.0/projects/web/state"))["metadata"]
    assert state["resources"]["instances"]["Usage"] == 1

    # Snapshots, rename and delete act on web's c1 only.
    await wait(api, await call(api, "POST", "/1.0/instances/c1/snapshots?project=web",
                               {"name": "s1"}, status=202))
    assert (await call(api, "GET", "/1.0/instances/c1/snapshots?project=web"))["metadata"] \
        == ["/1.0/instances/c1/snapshots/s1?project=web"]
    assert (await call(api, "GET", "/1.0/instances/c1/snapshots"))["metadata"] == []
    await wait(api, await call(api, "POST", "/1.0/instances/c1?project=web", {"name": "c2"},
                               status=202))
    await call(api, "GET", "/1.0/instances/c1")
    await wait(api, await call(api, "DELETE", "/1.0/instances/c2?project=web", status=202))
    await wait(api, await call(api, "DELETE", "/1.0/instances/c1", status=202))

    seen = [(e["project"], e["metadata"]["action"], e["metadata"]["source"])
            for e in await _events(web_events, 4)]
    assert seen == [
        ("web", "instance-created", "/1.0/instances/c1?project=web"),
        ("web", "instance-snapshot-created", "/1.0/instances/c1/snapshots/s1?project=web"),
        ("web", "instance-renamed", "/1.0/instances/c2?project=web"),
        ("web", "instance-deleted", "/1.0/instances/c2?project=web")]
    seen = [(e["project"], e["metadata"]["action"]) for e in await _events(default_events, 2)]
    assert seen == [("default", "instance-created"), ("default", "instance-deleted")]
    await web_events.close()
    await default_events.close()
    await call(api, "DELETE", "/1.0/projects/web")


async def test_operations_per_project(api) -> None:  # type: ignore[no-untyped-def]
    await _project(api, "ops")
    op = await _launch(api, "o1", "ops")
    listed = (await call(api, "GET", "/1.0/operations?project=ops"))["metadata"]
    assert f"/1.0/operations/{op['id']}" in listed.get("success", [])
    listed = (await call(api, "GET", "/1.0/operations"))["metadata"]
    assert f"/1.0/operations/{op['id']}" not in listed.get("success", [])
    listed = (await call(api, "GET", "/1.0/operations?all-projects=true"))["metadata"]
    assert f"/1.0/operations/{op['id']}" in listed.get("success", [])
    # A project's instance runs under its own name (its hostname is o1, not ops_o1).
    await wait(api, await call(api, "PUT", "/1.0/instances/o1/state?project=ops",
                               {"action": "start"}, status=202))
    state = (await call(api, "GET", "/1.0/instances/o1/state?project=ops"))["metadata"]
    assert state["status"] == "Running"
    assert _hostname(state["pid"]) == "o1"
    # Its metrics carry its name and project (LXD's labels); project= selects one project.
    for query, present in (("?project=ops", True), ("", True), ("?project=default", False)):
        text = await (await api.get(f"/1.0/metrics{query}")).text()
        assert ('name="o1",project="ops"' in text) is present, query
    error = await call(api, "DELETE", "/1.0/instances/o1?project=ops", status=400)
    assert error["error"] == "Instance 'o1' is running: stop it first or use --force"
    await wait(api, await call(api, "DELETE", "/1.0/instances/o1?project=ops&force=1",
                               status=202))
    await call(api, "DELETE", "/1.0/projects/ops")


async def test_own_and_shared_profiles(api) -> None:  # type: ignore[no-untyped-def]
    await _project(api, "own")
    await _project(api, "shared", **{"features.profiles": "false"})
    own = (await call(api, "GET", "/1.0/profiles?project=own&recursion=1"))["metadata"]
    assert own == [{"name": "default", "description": "Default LXD profile for project own",
                    "config": {}, "devices": {}, "used_by": [], "project": "own"}]
    default = (await call(api, "GET", "/1.0/profiles/default"))["metadata"]
    assert (await call(api, "GET", "/1.0/profiles/default?project=shared"))["metadata"] \
        == default

    await call(api, "POST", "/1.0/profiles?project=own",
               {"name": "lean", "config": {"limits.memory": "256MiB"}}, status=201)
    await call(api, "GET", "/1.0/profiles/lean", status=404)
    assert (await call(api, "GET", "/1.0/profiles?project=own"))["metadata"] == [
        "/1.0/profiles/default?project=own", "/1.0/profiles/lean?project=own"]
    await _launch(api, "p1", "own", profiles=["default", "lean"])
    shown = (await call(api, "GET", "/1.0/instances/p1?project=own"))["metadata"]
    assert shown["profiles"] == ["default", "lean"]
    assert shown["expanded_config"]["limits.memory"] == "256MiB"
    lean = (await call(api, "GET", "/1.0/profiles/lean?project=own"))["metadata"]
    assert lean["used_by"] == ["/1.0/instances/p1?project=own"]
    error = await call(api, "DELETE", "/1.0/profiles/lean?project=own", status=400)
    assert error["error"] == "Profile 'lean' is currently in use by p1"
    error = await call(api, "DELETE", "/1.0/profiles/default?project=own", status=403)
    assert error["error"] == "The 'default' profile cannot be deleted"
    # A profile of default is not one of own's.
    error = await call(api, "POST", "/1.0/instances?project=own",
                       {"name": "p2", "profiles": ["nosuch"],
                        "source": {"type": "image", "alias": "debian"}}, status=404)
    assert error["error"] == "Profile 'nosuch' not found"

    # A project without features.profiles uses default's (and its devices).
    await _launch(api, "p3", "shared")
    shared = (await call(api, "GET", "/1.0/instances/p3?project=shared"))["metadata"]
    assert shared["profiles"] == ["default"]
    assert shared["expanded_devices"] == default["devices"]
    used = (await call(api, "GET", "/1.0/profiles/default"))["metadata"]["used_by"]
    assert "/1.0/instances/p3?project=shared" in used

    # Renames stay in the project.
    await wait(api, await call(api, "PATCH", "/1.0/instances/p1?project=own",
                               {"profiles": ["default"]}, status=202))
    await call(api, "POST", "/1.0/profiles/lean?project=own", {"name": "slim"}, status=201)
    await call(api, "GET", "/1.0/profiles/slim?project=own")
    await call(api, "DELETE", "/1.0/profiles/slim?project=own")
    for project, name in (("own", "p1"), ("shared", "p3")):
        await wait(api, await call(api, "DELETE", f"/1.0/instances/{name}?project={project}",
                                   status=202))
    await call(api, "DELETE", "/1.0/projects/own")
    await call(api, "DELETE", "/1.0/projects/shared")
    assert (await call(api, "GET", "/1.0/profiles?all-projects=true"))["metadata"] == \
        (await call(api, "GET", "/1.0/profiles"))["metadata"]


async def test_copy_between_projects(api) -> None:  # type: ignore[no-untyped-def]
    await _project(api, "dst")
    await _launch(api, "src")
    op = await wait(api, await call(api, "POST", "/1.0/instances?project=dst", {
        "name": "copy", "source": {"type": "copy", "source": "src", "project": "default"}},
        status=202))
    assert op["metadata"]["entity_url"] == "/1.0/instances/copy?project=dst"
    copy = (await call(api, "GET", "/1.0/instances/copy?project=dst"))["metadata"]
    assert (copy["project"], copy["profiles"]) == ("dst", ["default"])
    error = await call(api, "POST", "/1.0/instances?project=dst", {
        "name": "x", "source": {"type": "copy", "source": "src"}}, status=404)
    assert error["error"] == "Instance 'src' not found"
    error = await call(api, "POST", "/1.0/instances?project=dst", {
        "name": "x", "source": {"type": "copy", "source": "src", "project": "nope"}},
        status=404)
    assert error["error"] == "Project 'nope' not found"
    await wait(api, await call(api, "DELETE", "/1.0/instances/copy?project=dst", status=202))
    await wait(api, await call(api, "DELETE", "/1.0/instances/src", status=202))
    await call(api, "DELETE", "/1.0/projects/dst")


async def test_own_images(api) -> None:  # type: ignore[no-untyped-def]
    """features.images (on by default): a project sees its own images and aliases; the
    same tree serves every project that has it; deleting it in one leaves the others'."""
    await call(api, "POST", "/1.0/projects", {"name": "img"}, status=201)
    default = (await call(api, "GET", "/1.0/images?recursion=1"))["metadata"]
    debian = next(i for i in default if any(a["name"] == "debian" for a in i["aliases"]))
    fingerprint = debian["fingerprint"]
    assert (await call(api, "GET", "/1.0/images?project=img"))["metadata"] == []
    await call(api, "GET", f"/1.0/images/{fingerprint}?project=img", status=404)

    # Launching from the recipe's name makes the built image one of img's (no rebuild).
    op = await _launch(api, "i1", "img")
    assert op["status"] == "Success"
    own = (await call(api, "GET", "/1.0/images?project=img&recursion=1"))["metadata"]
    assert [(i["fingerprint"], i["project"]) for i in own] == [(fingerprint, "img")]
    assert [a["name"] for a in own[0]["aliases"]] == [a["name"] for a in debian["aliases"]]
    assert (await call(api, "GET", "/1.0/images?project=img"))["metadata"] == [
        f"/1.0/images/{fingerprint}?project=img"]
    used = (await call(api, "GET", "/1.0/projects/img"))["metadata"]["used_by"]
    assert f"/1.0/images/{fingerprint}?project=img" in used

    # Aliases are per project.
    await call(api, "POST", "/1.0/images/aliases?project=img",
               {"name": "mine", "target": fingerprint}, status=201)
    await call(api, "GET", "/1.0/images/aliases/mine?project=img")
    await call(api, "GET", "/1.0/images/aliases/mine", status=404)
    every = (await call(api, "GET", "/1.0/images?all-projects=true&recursion=1"))["metadata"]
    assert sorted((i["fingerprint"], i["project"]) for i in every if
                  i["fingerprint"] == fingerprint) == [(fingerprint, "default"),
                                                       (fingerprint, "img")]

    # LXD's image_source_project (`lxc image copy --target-project`): another project gets
    # default's image by fingerprint, no bytes move.
    await call(api, "POST", "/1.0/projects", {"name": "img2"}, status=201)
    secret = await wait(api, await call(api, "POST", f"/1.0/images/{fingerprint}/secret",
                                        status=202))
    assert len(secret["metadata"]["secret"]) == 64
    op = await wait(api, await call(api, "POST", "/1.0/images?project=img2", {
        "aliases": [{"name": "deb"}], "source": {
            "type": "image", "mode": "pull", "protocol": "lxd",
            "fingerprint": fingerprint, "project": "default",
            "secret": secret["metadata"]["secret"]}}, status=202))
    assert op["metadata"]["fingerprint"] == fingerprint
    await call(api, "GET", "/1.0/images/aliases/deb?project=img2")
    error = await call(api, "POST", "/1.0/images?project=img2", {"source": {
        "type": "image", "server": "https://elsewhere:8443", "fingerprint": fingerprint,
        "project": "default"}}, status=501)
    assert error["error"].startswith("Copying images from another server ('https://elsewhere")
    error = await call(api, "POST", "/1.0/images?project=img2", {"source": {
        "type": "image", "fingerprint": "0" * 64, "project": "default"}}, status=404)
    assert error["error"].startswith("Image '0000")
    await wait(api, await call(api, "DELETE", f"/1.0/images/{fingerprint}?project=img2",
                               status=202))
    await call(api, "DELETE", "/1.0/projects/img2")

    # img lets go of the image: default keeps it (and its instance in img keeps running
    # from the same tree).
    await wait(api, await call(api, "DELETE", f"/1.0/images/{fingerprint}?project=img",
                               status=202))
    assert (await call(api, "GET", "/1.0/images?project=img"))["metadata"] == []
    await call(api, "GET", f"/1.0/images/{fingerprint}")
    await wait(api, await call(api, "PUT", "/1.0/instances/i1/state?project=img",
                               {"action": "start"}, status=202))
    await wait(api, await call(api, "DELETE", "/1.0/instances/i1?project=img&force=1",
                               status=202))
    await call(api, "DELETE", "/1.0/projects/img")


async def test_own_networks(api) -> None:  # type: ignore[no-untyped-def]
    """features.networks: the project's own networks, and bridges live in default only
    (as LXD 5.0), so it has none; without the feature it uses default's."""
    await _project(api, "net", **{"features.networks": "true"})
    await _project(api, "nonet")
    await call(api, "POST", "/1.0/networks", {"name": "pbr0", "config": {
        "ipv4.address": "none", "ipv6.address": "none"}}, status=201)
    try:
        assert (await call(api, "GET", "/1.0/networks?project=net"))["metadata"] == []
        error = await call(api, "POST", "/1.0/networks?project=net", {"name": "x"}, status=400)
        assert error["error"] == "Network type does not support non-default projects"
        error = await call(api, "GET", "/1.0/networks/pbr0?project=net", status=404)
        assert error["error"] == "Network 'pbr0' not found"
        await call(api, "GET", "/1.0/networks/pbr0/forwards?project=net", status=404)
        nic = {"eth0": {"type": "nic", "network": "pbr0", "name": "eth0"}}
        error = await call(api, "POST", "/1.0/instances?project=net", {
            "name": "n1", "devices": nic, "source": {"type": "image", "alias": "debian"}},
            status=404)
        assert error["error"] == "Network 'pbr0' of device 'eth0' not found"
        # Sharing default's networks: its instances use them.
        shown = (await call(api, "GET", "/1.0/networks/pbr0?project=nonet"))["metadata"]
        assert shown["project"] == "default"
        await _launch(api, "n2", "nonet", devices=nic)
        used = (await call(api, "GET", "/1.0/networks/pbr0"))["metadata"]["used_by"]
        assert "/1.0/instances/n2?project=nonet" in used
        await wait(api, await call(api, "DELETE", "/1.0/instances/n2?project=nonet",
                                   status=202))
    finally:
        await call(api, "DELETE", "/1.0/networks/pbr0")
    await call(api, "DELETE", "/1.0/projects/net")
    await call(api, "DELETE", "/1.0/projects/nonet")


async def test_own_volumes(api) -> None:  # type: ignore[no-untyped-def]
    """features.storage.volumes (on by default): the project's own custom volumes, named as
    its instances' disks name them; a project without the feature uses default's."""
    await _project(api, "vol")
    await _project(api, "novol", **{"features.storage.volumes": "false"})
    base = "/1.0/storage-pools/default/volumes/custom"
    await call(api, "POST", f"{base}?project=vol", {"name": "data"})
    await call(api, "POST", base, {"name": "data"})  # default's, same name
    listed = (await call(api, "GET", f"{base}?project=vol&recursion=1"))["metadata"]
    assert [(v["name"], v["project"]) for v in listed] == [("data", "vol")]
    assert (await call(api, "GET", f"{base}?project=vol"))["metadata"] == [
        f"{base}/data?project=vol"]
    every = (await call(api, "GET", f"{base}?all-projects=true&recursion=1"))["metadata"]
    assert sorted((v["name"], v["project"]) for v in every) == [("data", "default"),
                                                                ("data", "vol")]
    assert (await call(api, "GET", f"{base}?project=novol"))["metadata"] == [f"{base}/data"]
    used = (await call(api, "GET", "/1.0/projects/vol"))["metadata"]["used_by"]
    assert f"{base}/data?project=vol" in used

    # A disk of an instance in vol mounts vol's volume; default's is untouched.
    disk = {"data": {"type": "disk", "pool": "default", "source": "data", "path": "/data"}}
    await _launch(api, "v1", "vol", devices=disk)
    shown = (await call(api, "GET", f"{base}/data?project=vol"))["metadata"]
    assert shown["used_by"] == ["/1.0/instances/v1?project=vol"]
    pool = "/1.0/storage-pools/default/volumes"
    assert (await call(api, "GET", f"{pool}?project=vol"))["metadata"] == [
        f"{pool}/container/v1?project=vol", f"{base}/data?project=vol"]
    error = await call(api, "GET", "/1.0/storage-pools/nope/volumes?project=vol", status=404)
    assert error["error"] == "Storage pool 'nope' not found"
    assert (await call(api, "GET", f"{base}/data"))["metadata"]["used_by"] == []
    await wait(api, await call(api, "PUT", "/1.0/instances/v1/state?project=vol",
                               {"action": "start"}, status=202))
    state = (await call(api, "GET", "/1.0/instances/v1/state?project=vol"))["metadata"]
    with open(f"/proc/{state['pid']}/mountinfo") as f:
        mounts = f.read()
    assert " /data " in mounts and "vol+data" in mounts
    error = await call(api, "DELETE", f"{base}/data?project=vol", status=400)
    assert error["error"] == "The storage volume is still in use"
    await wait(api, await call(api, "DELETE", "/1.0/instances/v1?project=vol&force=1",
                               status=202))
    # Snapshots, renames and copies between projects.
    await wait(api, await call(api, "POST", f"{base}/data/snapshots?project=vol",
                               {"name": "s1"}, status=202))
    assert (await call(api, "GET", f"{base}/data/snapshots?project=vol"))["metadata"] == [
        f"{base}/data/snapshots/s1?project=vol"]
    await call(api, "POST", f"{base}/data?project=vol", {"name": "data2"}, status=201)
    await wait(api, await call(api, "POST", base, {
        "name": "fromvol", "source": {"type": "copy", "name": "data2", "project": "vol"}},
        status=202))
    await call(api, "GET", f"{base}/fromvol")
    for url in (f"{base}/data2?project=vol", f"{base}/data", f"{base}/fromvol"):
        await call(api, "DELETE", url)
    await call(api, "DELETE", "/1.0/projects/vol")
    await call(api, "DELETE", "/1.0/projects/novol")

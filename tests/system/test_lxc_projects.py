"""LXD's own `lxc` client (5.0, Debian's lxd-client; skipped when not installed) works in
projects on a real lxmgrd, as an LXD user types it: project create/switch/list/show/set/get,
launch and init in the project, list, exec, profile list/create there, limits.instances
refusing a launch with LXD's message, delete, project delete (back to default); then a
certificate restricted to one project over HTTPS: `lxc remote add` picks that project and
every other one is "not authorized".

The projects are made with features.images=false: a project with its own images starts
with none (as in LXD), `lxc launch lxm:debian` resolves the alias in the project first
(GET /1.0/images/aliases/debian?project=P) and finds nothing there, and `lxc image copy
--target-project` needs POST /1.0/images/FP/secret, which lxmgr does not serve."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.system.conftest import https_port
from tests.system.test_lxc_client import lxc, lxc_runner  # noqa: F401 - the fixture

pytestmark = [pytest.mark.kernel, pytest.mark.system,
              pytest.mark.skipif(shutil.which("lxc") is None, reason="lxc is not installed")]


def purge_projects(daemon: Any) -> None:
    """Every project's instances (stopped by force), its own profiles and images, then the
    projects themselves: Daemon.cleanup knows default's objects only, and an instance left
    running in a project would outlive its daemon. Only objects whose URL names the project
    are removed (a project sharing default's profiles or images lists default's)."""
    listing = daemon.api("GET", "/1.0/instances?all-projects=true&recursion=1", check=False)
    for inst in (listing or {}).get("metadata") or []:
        resp = daemon.api("DELETE", f"/1.0/instances/{inst['name']}?project={inst['project']}"
                                    "&force=1", check=False)
        if resp and resp.get("operation"):
            daemon.api("GET", f"{resp['operation']}/wait?timeout=60", check=False)
    for url in daemon.api("GET", "/1.0/projects")["metadata"]:
        name = url.rsplit("/", 1)[-1]
        if name == "default":
            continue
        own = f"?project={name}"
        for kind in ("profiles", "images"):
            for obj in daemon.api("GET", f"/1.0/{kind}{own}")["metadata"]:
                if obj.endswith(own) and not obj.startswith("/1.0/profiles/default?"):
                    resp = daemon.api("DELETE", obj, check=False)
                    if resp and resp.get("operation"):
                        daemon.api("GET", f"{resp['operation']}/wait?timeout=60", check=False)
        daemon.api("DELETE", url, check=False)


@pytest.fixture(autouse=True)
def _purged(daemon) -> Iterator[None]:  # type: ignore[no-untyped-def]
    yield
    purge_projects(daemon)


def _names(lxc, *args: str) -> list[tuple[str, str, str]]:  # type: ignore[no-untyped-def]  # noqa: F811
    rows = json.loads(lxc("list", *args, "--format", "json").stdout)
    return [(r["project"], r["name"], r["status"]) for r in rows]


def test_lxc_project_flow(lxc) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    assert lxc("project", "create", "lxm:lxp", "-c", "features.images=false", "-c",
               "user.team=a").stdout == "Project lxp created\n"
    lxc("project", "switch", "lxm:lxp")
    projects = lxc("project", "list", "lxm:", "--format", "csv").stdout.splitlines()
    assert projects[0].startswith("default,YES,YES,YES,YES,Default LXD project,")
    assert projects[1] == "lxp (current),NO,YES,YES,NO,,1"  # its own default profile

    lxc("launch", "lxm:debian", "lxm:lx1")
    lxc("init", "lxm:debian", "lxm:lx2")
    assert _names(lxc, "lxm:") == [("lxp", "lx1", "Running"), ("lxp", "lx2", "Stopped")]
    assert _names(lxc, "lxm:", "--project", "default") == []
    assert lxc("exec", "lxm:lx1", "--", "hostname").stdout == "lx1\n"  # not lxp_lx1
    assert lxc("exec", "lxm:lx1", "--", "cat", "/etc/hostname").stdout == "lx1\n"
    shown = yaml.safe_load(lxc("project", "show", "lxm:lxp").stdout)
    assert (shown["name"], shown["config"]["user.team"]) == ("lxp", "a")
    assert {"/1.0/instances/lx1?project=lxp", "/1.0/instances/lx2?project=lxp",
            "/1.0/profiles/default?project=lxp"} == set(shown["used_by"])

    # Profiles: the project's own default, and one made there that default does not see.
    assert lxc("profile", "list", "lxm:", "--format", "csv").stdout == \
        "default,Default LXD profile for project lxp,2\n"
    lxc("profile", "create", "lxm:lean")
    lxc("profile", "set", "lxm:lean", "limits.memory=256MiB")
    lxc("profile", "add", "lxm:lx2", "lean")
    assert lxc("config", "get", "lxm:lx2", "limits.memory", "--expanded").stdout == "256MiB\n"
    assert "lean" not in lxc("profile", "list", "lxm:", "--project", "default",
                             "--format", "csv").stdout
    lxc("profile", "remove", "lxm:lx2", "lean")
    lxc("profile", "delete", "lxm:lean")

    # limits.instances: not below what the project holds, then a launch over it refused.
    low = lxc("project", "set", "lxm:lxp", "limits.instances=1", check=False)
    assert (low.returncode, low.stderr) == (1, (
        "Error: Can't change \"limits.instances\" in project \"lxp\": 'limits.instances' is "
        "too low: there currently are 2 total instances in project \"lxp\"\n"))
    lxc("delete", "lxm:lx2")
    lxc("project", "set", "lxm:lxp", "limits.instances=1")
    assert lxc("project", "get", "lxm:lxp", "limits.instances").stdout == "1\n"
    refused = lxc("launch", "lxm:debian", "lxm:lx3", check=False)
    assert refused.returncode == 1
    assert refused.stderr.endswith(
        'Error: Reached maximum number of instances in project "lxp"\n'), refused.stderr
    assert _names(lxc, "lxm:") == [("lxp", "lx1", "Running")]

    busy = lxc("project", "delete", "lxm:lxp", check=False)
    assert (busy.returncode, busy.stderr) == (1, "Error: Only empty projects can be removed\n")
    lxc("delete", "lxm:lx1", "--force")
    assert _names(lxc, "lxm:") == []
    lxc("project", "delete", "lxm:lxp")
    assert lxc("project", "list", "lxm:", "--format", "csv").stdout.startswith(
        "default (current),")  # lxc goes back to default when its project is deleted


def test_lxc_all_projects_and_project_info(lxc, daemon) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """lxc checks instance_all_projects and project_usage in GET /1.0 before sending
    `list --all-projects` and `project info`; and `image copy --target-project` (LXD's
    image_source_project) gives a project with its own images default's image."""
    lxc("project", "create", "lxm:lxa", "-c", "features.images=false", "-c",
        "limits.instances=3")
    lxc("init", "lxm:debian", "lxm:la1", "--project", "lxa")
    lxc("init", "lxm:debian", "lxm:ld1")
    try:
        listed = lxc("list", "lxm:", "--all-projects", "--format", "csv", check=False)
        assert listed.returncode == 0, listed.stderr
        assert sorted(listed.stdout.splitlines()) == ["default,ld1,STOPPED,,,CONTAINER,0",
                                                      "lxa,la1,STOPPED,,,CONTAINER,0"]
        info = lxc("project", "info", "lxm:lxa", "--format", "csv", check=False)
        assert info.returncode == 0, info.stderr
        assert "INSTANCES,3,1\n" in info.stdout and "CONTAINERS,UNLIMITED,1\n" in info.stdout
        https_port(daemon)  # LXD's client copies images only from a server on the network
        # container_copy_project: lxc 5.0.2 copies within one server with source.project
        # over HTTPS (on a unix socket its UseProject drops the socket path, so lxc takes
        # the servers for two and migrates, which lxmgr does not do).
        lxc("remote", "switch", "lxm")  # lxc 5.0.2 reads a lone `lxm:` as a certificate
        token = lxc("config", "trust", "add", "--name", "admin").stdout.splitlines()[-1]
        lxc("remote", "add", "lxh", token)
        lxc("copy", "lxh:ld1", "lxh:lc1", "--target-project", "lxa")
        assert [n for _p, n, _s in _names(lxc, "lxm:", "--project", "lxa")] == ["la1", "lc1"]
        refused = lxc("copy", "lxm:ld1", "lxm:lc2", "--target-project", "lxa", check=False)
        assert refused.stderr == "Error: Migrating instances to another host is not supported\n"
        lxc("project", "create", "lxm:lxi")  # its own images: none yet
        missing = lxc("launch", "lxm:debian", "lxm:li1", "--project", "lxi", check=False)
        assert missing.returncode == 1
        lxc("image", "copy", "lxm:debian", "lxm:", "--target-project", "lxi",
            "--alias", "deb")
        lxc("launch", "lxm:deb", "lxm:li1", "--project", "lxi")
        assert lxc("exec", "lxm:li1", "--project", "lxi", "--", "hostname").stdout == "li1\n"
        lxc("delete", "lxm:li1", "--project", "lxi", "--force")
    finally:
        lxc("delete", "lxm:ld1")


def test_lxc_restricted_certificate(lxc, daemon, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """`lxc config trust add --restricted --projects P` on the admin's remote; a second lxc
    (its own LXD_CONF, so its own client certificate) joins with the token over HTTPS,
    gets P as the remote's project, works there (exec over wss) and nowhere else."""
    https_port(daemon)
    for name in ("crew", "others"):
        lxc("project", "create", f"lxm:{name}", "-c", "features.images=false")
    lxc("remote", "switch", "lxm")  # lxc 5.0.2 reads a lone `lxm:` as the certificate file
    token = lxc("config", "trust", "add", "--name", "crew-cert", "--restricted",
                "--projects", "crew").stdout.splitlines()[-1]
    conf = tmp_path / "crewconf"
    crew = lxc_runner(conf)

    crew("remote", "add", "lxr", token)
    remote = yaml.safe_load((conf / "config.yml").read_text())["remotes"]["lxr"]
    assert remote["project"] == "crew"  # the only project the server lists to it
    assert crew("project", "list", "lxr:", "--format", "csv").stdout == \
        "crew (current),NO,YES,YES,NO,,1\n"
    crew("launch", "lxr:debian", "lxr:rc1")
    assert crew("exec", "lxr:rc1", "--", "hostname").stdout == "rc1\n"
    assert _names(crew, "lxr:") == [("crew", "rc1", "Running")]
    for args in (("list", "lxr:", "--project", "default"),
                 ("list", "lxr:", "--project", "others"),
                 ("launch", "lxr:debian", "lxr:rc2", "--project", "others"),
                 ("project", "create", "lxr:mine"),
                 ("project", "set", "lxr:crew", "limits.instances=5")):
        refused = crew(*args, check=False)
        assert (refused.returncode, refused.stderr.splitlines()[-1]) == (
            1, "Error: not authorized"), args
    crew("delete", "lxr:rc1", "--force")
    certs = daemon.api("GET", "/1.0/certificates?recursion=1")["metadata"]
    assert [(c["name"], c["restricted"], c["projects"]) for c in certs] == [
        ("crew-cert", True, ["crew"])]

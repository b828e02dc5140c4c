"""pylxd 2.4's client.projects against a real lxmgrd over its unix socket: create, get, all,
exists, save, rename, delete, and LXD's refusals for `default`; then the same through the
`lxmgr project` CLI. Skipped when pylxd is not installed (test extras)."""

from __future__ import annotations

import pytest

pylxd = pytest.importorskip("pylxd", reason="pylxd is not installed (test extras)")

pytestmark = pytest.mark.system


def test_pylxd_projects(daemon) -> None:  # type: ignore[no-untyped-def]
    client = pylxd.Client(endpoint=daemon.socket)
    assert client.has_api_extension("projects")
    default = client.projects.get("default")
    assert default.config["features.images"] == "true"
    assert "/1.0/profiles/default" in default.used_by

    project = client.projects.create("pyproj", description="From pylxd",
                                     config={"features.networks": "true"})
    try:
        assert (project.name, project.description, project.used_by) == (
            "pyproj", "From pylxd", ["/1.0/profiles/default?project=pyproj"])
        assert project.config == {"features.images": "true", "features.profiles": "true",
                                  "features.storage.volumes": "true",
                                  "features.networks": "true"}
        assert sorted(p.name for p in client.projects.all()) == ["default", "pyproj"]
        assert client.projects.exists("pyproj") and not client.projects.exists("nope")
        project.description = "Saved"
        project.config = {**project.config, "user.team": "a"}
        project.save()
        assert client.projects.get("pyproj").config["user.team"] == "a"
        project = project.rename("pyproj2")
        assert project.name == "pyproj2" and project.description == "Saved"
        assert not client.projects.exists("pyproj")
        with pytest.raises(pylxd.exceptions.LXDAPIException,
                           match="The 'default' project cannot be deleted"):
            default.delete()
        with pytest.raises(pylxd.exceptions.LXDAPIException,
                           match="Project configuration keys not supported yet: "
                                 "limits.virtual-machines"):
            client.projects.create("pyproj3", config={"limits.virtual-machines": "2"})
    finally:
        project.delete()
    assert [p.name for p in client.projects.all()] == ["default"]


def test_project_cli(daemon) -> None:  # type: ignore[no-untyped-def]
    """The real `lxmgr project` CLI against the same kind of daemon."""
    assert daemon.cli("project", "create", "clip", "user.a=b", "-d", "CLI").stdout \
        == "Project clip created\n"
    try:
        listed = daemon.cli("project", "list", "-f", "csv").stdout
        assert "clip,YES,YES,YES,NO,CLI,1\n" in listed  # its own default profile
        daemon.cli("project", "set", "clip", "features.networks=true")
        assert daemon.cli("project", "get", "clip", "features.networks").stdout == "true\n"
        daemon.cli("project", "unset", "clip", "user.a")
        assert "user.a" not in daemon.cli("project", "show", "clip").stdout
        assert "INSTANCES" in daemon.cli("project", "info", "clip").stdout
        daemon.cli("project", "rename", "clip", "clip2")
        refused = daemon.cli("project", "delete", "default", check=False)
        assert refused.returncode == 1
        assert refused.stderr == "Error: The 'default' project cannot be deleted\n"
    finally:
        for name in ("clip2", "clip"):
            daemon.cli("project", "delete", name, check=False)
    assert daemon.cli("project", "list", "-f", "csv").stdout.count("\n") == 1

"""pylxd 2.4's client.projects against a real lxmgrd over its unix socket: create, get, all,
exists, save, rename, delete, and LXD's refusals for `default`; then the same through the
`lxmgr project` CLI. Then pylxd working in a project, as `pylxd.Client(project=P)` sends
?project=P on every request: an instance created, listed, started, exec'd, stopped and
deleted there, the project's own profiles and images, limits.instances and restricted
refusals with LXD's messages, and a certificate restricted to one project over HTTPS.
Skipped when pylxd is not installed (test extras)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest

from tests.system.conftest import https_port
from tests.system.test_lxc_projects import purge_projects

pylxd = pytest.importorskip("pylxd", reason="pylxd is not installed (test extras)")

pytestmark = pytest.mark.system

# pylxd's execute() leaves its stdin websocket to the garbage collector, and may stop ws4py's
# WebSocketManager while its thread still reads a close frame: both are the client's (see
# tests/system/test_pylxd.py); other warnings and threads' exceptions still fail a test.
_LEAKED_STDIN = "ignore::ResourceWarning"
_MANAGER_RACE = ("ignore:Exception in thread WebSocketManager:"
                 "pytest.PytestUnhandledThreadExceptionWarning")
DEBIAN = {"type": "image", "alias": "debian"}


@pytest.fixture
def purged(daemon) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    """The daemon; every project's instances, profiles, images and the projects are removed
    afterwards (Daemon.cleanup knows only default's), even when the test fails."""
    yield daemon
    gc.collect()  # pylxd's leaked stdin sockets are finalized under the test's filters
    purge_projects(daemon)


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


def _error(excinfo: Any) -> tuple[int, str]:
    response = excinfo.value.response
    return response.status_code, response.json()["error"]


@pytest.mark.kernel
@pytest.mark.filterwarnings(_LEAKED_STDIN)
@pytest.mark.filterwarnings(_MANAGER_RACE)
def test_pylxd_instance_in_a_project(purged) -> None:  # type: ignore[no-untyped-def]
    """The user's path in a project with every feature (its own images and profiles)."""
    admin = pylxd.Client(endpoint=purged.socket)
    admin.projects.create("pyinst")
    client = pylxd.Client(endpoint=purged.socket, project="pyinst")
    assert client.images.all() == []  # its own images: none yet
    # lxmgr's recipe name `debian` makes the built image one of the project's (no rebuild),
    # so pylxd creates from the alias as against default (an LXD project with its own
    # images would have no such alias until an image is copied or imported into it).
    inst = client.instances.create({"name": "pi1", "source": DEBIAN}, wait=True)
    assert (inst.name, inst.project, inst.status) == ("pi1", "pyinst", "Stopped")
    image = client.images.get_by_alias("debian")
    assert image.project == "pyinst"
    assert admin.images.get(image.fingerprint).project == "default"
    # The same name in default is another instance.
    admin.instances.create({"name": "pi1", "description": "default's", "source": DEBIAN},
                           wait=True)
    # recursion=1: a plain listing's URLs end in ?project=P (as LXD's), which pylxd keeps
    # in the names it splits off them.
    assert [(i.name, i.project) for i in client.instances.all(recursion=1)] == [
        ("pi1", "pyinst")]
    assert [(i.name, i.project, i.description) for i in admin.instances.all(recursion=1)] \
        == [("pi1", "default", "default's")]

    inst.start(wait=True)
    assert client.instances.get("pi1").status == "Running"
    assert admin.instances.get("pi1").status == "Stopped"
    assert inst.execute(["hostname"]).stdout == "pi1\n"  # its own name, not pyinst_pi1
    assert inst.execute(["cat", "/etc/hostname"]).stdout == "pi1\n"
    result = inst.execute(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (result.exit_code, result.stdout, result.stderr) == (3, "out\n", "err\n")

    # Profiles: the project's own default, and one made there that default does not see.
    assert [(p.name, p.project) for p in client.profiles.all()] == [("default", "pyinst")]
    client.profiles.create("lean", config={"limits.memory": "256MiB"})
    assert [p.name for p in client.profiles.all()] == ["default", "lean"]
    assert not admin.profiles.exists("lean")
    inst.profiles = ["default", "lean"]
    inst.save(wait=True)
    assert client.instances.get("pi1").expanded_config["limits.memory"] == "256MiB"
    with pytest.raises(pylxd.exceptions.LXDAPIException) as busy:
        client.profiles.get("lean").delete()
    assert _error(busy) == (400, "Profile 'lean' is currently in use by pi1")

    inst.stop(wait=True)
    assert client.instances.get("pi1").status == "Stopped"
    project = admin.projects.get("pyinst")
    assert {"/1.0/instances/pi1?project=pyinst", "/1.0/profiles/lean?project=pyinst",
            f"/1.0/images/{image.fingerprint}?project=pyinst"} <= set(project.used_by)
    inst.delete(wait=True)
    assert not client.instances.exists("pi1")
    assert admin.instances.exists("pi1")
    client.profiles.get("lean").delete()
    # A project holding an image is not empty (LXD's rule); without it, it goes.
    with pytest.raises(pylxd.exceptions.LXDAPIException) as held:
        project.delete()
    assert _error(held) == (400, "Only empty projects can be removed")
    client.images.get(image.fingerprint).delete(wait=True)
    project.delete()
    assert admin.images.get(image.fingerprint).project == "default"  # default keeps its own
    assert not admin.projects.exists("pyinst")


def test_pylxd_project_limits_and_restrictions(purged) -> None:  # type: ignore[no-untyped-def]
    """limits.instances and restricted refusals reach pylxd as LXDAPIException with LXD's
    messages (lxd/project/permissions.go); the project sharing default's images
    (features.images=false) creates from default's alias. No container starts."""
    admin = pylxd.Client(endpoint=purged.socket)
    project = admin.projects.create("pylim", config={"features.images": "false",
                                                     "limits.instances": "1"})
    client = pylxd.Client(endpoint=purged.socket, project="pylim")
    client.instances.create({"name": "l1", "source": DEBIAN}, wait=True)
    with pytest.raises(pylxd.exceptions.LXDAPIException) as full:
        client.instances.create({"name": "l2", "source": DEBIAN}, wait=True)
    assert _error(full) == (400, 'Reached maximum number of instances in project "pylim"')
    assert not client.instances.exists("l2")

    project.config = {**project.config, "limits.instances": "0"}
    with pytest.raises(pylxd.exceptions.LXDAPIException) as low:
        project.save()
    assert _error(low) == (400, "Can't change \"limits.instances\" in project \"pylim\": "
                                "'limits.instances' is too low: there currently are 1 total "
                                "instances in project \"pylim\"")
    project = admin.projects.get("pylim")
    project.config = {**project.config, "limits.instances": "2", "restricted": "true"}
    project.save()
    with pytest.raises(pylxd.exceptions.LXDAPIException) as privileged:
        client.instances.create({"name": "l2", "source": DEBIAN,
                                 "config": {"security.privileged": "true"}}, wait=True)
    assert _error(privileged) == (400, 'Invalid value "true" for config "security.privileged" '
                                       'on container "l2" of project "pylim": Privileged '
                                       "containers are forbidden")
    inst = client.instances.get("l1")
    inst.config["security.nesting"] = "true"
    with pytest.raises(pylxd.exceptions.LXDAPIException) as nesting:
        inst.save(wait=True)
    assert _error(nesting) == (400, 'Invalid value "true" for config "security.nesting" on '
                                    'container "l1" of project "pylim": Container nesting is '
                                    "forbidden")
    assert "security.nesting" not in client.instances.get("l1").config
    client.instances.create({"name": "l2", "source": DEBIAN}, wait=True)
    state = admin.api.projects["pylim"].state.get().json()["metadata"]["resources"]
    assert state["instances"] == {"Limit": 2, "Usage": 2}


@pytest.mark.kernel
@pytest.mark.filterwarnings(_LEAKED_STDIN)
@pytest.mark.filterwarnings(_MANAGER_RACE)
def test_pylxd_restricted_certificate(purged, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A token made through pylxd with restricted=True, projects=[P]: the pylxd client over
    HTTPS that joins with it works in P (exec over wss included) and gets 403 in default,
    in another project and on server-wide changes."""
    from lxmgr.api.certificate import generate_certificate

    # requests lets these override the session's `verify` (psf/requests#3829).
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    port = https_port(purged)
    admin = pylxd.Client(endpoint=purged.socket)
    for name in ("team", "other"):
        admin.projects.create(name)
    crt, key = tmp_path / "team.crt", tmp_path / "team.key"
    cert_pem, key_pem = generate_certificate("team", [], client=True)
    crt.write_bytes(cert_pem)
    key.write_bytes(key_pem)
    token = admin.certificates.create_token(name="team-cert", projects=["team"],
                                            restricted=True)

    def tls(project: str | None) -> Any:
        return pylxd.Client(endpoint=f"https://127.0.0.1:{port}", cert=(str(crt), str(key)),
                            verify=f"{purged.root}/server.crt", project=project)

    team = tls("team")
    assert not team.trusted
    team.authenticate(token)
    assert team.trusted
    [entry] = admin.certificates.all()
    assert (entry.name, entry.restricted, entry.projects) == ("team-cert", True, ["team"])

    assert [p.name for p in team.projects.all()] == ["team"]
    inst = team.instances.create({"name": "t1", "source": DEBIAN}, wait=True)
    inst.start(wait=True)
    assert inst.execute(["hostname"]).stdout == "t1\n"
    assert inst.execute(["cat"], stdin_payload="over wss\n").stdout == "over wss\n"
    assert [(i.name, i.project, i.status) for i in team.instances.all(recursion=1)] == [
        ("t1", "team", "Running")]
    team.profiles.create("mine")
    assert team.profiles.exists("mine")

    for project in (None, "default", "other"):
        elsewhere = tls(project)
        assert elsewhere.trusted  # GET /1.0 answers; what it asks for next does not
        for call in (elsewhere.instances.all,
                     lambda c=elsewhere: c.instances.create({"name": "x", "source": DEBIAN},
                                                            wait=True),
                     lambda c=elsewhere: c.profiles.create("p")):
            with pytest.raises(pylxd.exceptions.LXDAPIException) as refused:
                call()
            assert _error(refused) == (403, "not authorized"), project
    for call in (lambda: team.projects.create("mine"),
                 lambda: team.projects.get("team").delete(),
                 lambda: team.api.patch(json={"config": {}}),
                 lambda: team.certificates.create_token(name="more")):
        with pytest.raises(pylxd.exceptions.LXDAPIException) as refused:
            call()
        assert _error(refused) == (403, "not authorized")
    assert admin.instances.all() == []  # nothing of the team's landed in default

    inst.stop(wait=True)
    inst.delete(wait=True)
    assert team.instances.all() == []

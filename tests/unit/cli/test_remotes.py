"""REMOTE:NAME resolution in the CLI (App.target, the RemoteRef argument type), the default
remote (`remote switch`), and what the click-free fast path leaves to click."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from lxmgr.api.certificate import generate_certificate
from lxmgr.cli import fast
from lxmgr.cli.app import App, default_remote_switched
from lxmgr.errors import InvalidConfig, NotFound
from lxmgr.images.remotes import (
    add_remote,
    default_remote,
    load_remotes,
    remove_remote,
    set_default_remote,
)
from lxmgr.model.remote import validate_remote_url
from tests.unit.cli.conftest import FakeClient


@pytest.fixture
def conf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A client config dir with a server remote `prod` and an image server `mirror`."""
    monkeypatch.setenv("LXMGR_CONF", str(tmp_path))
    monkeypatch.delenv("LXMGR_SOCKET", raising=False)
    add_remote(tmp_path / "remotes.yaml", "prod", "https://192.0.2.1:8443", protocol="lxd",
               public=False)
    add_remote(tmp_path / "remotes.yaml", "mirror", "https://images.example.org")
    (tmp_path / "servercerts").mkdir()
    (tmp_path / "servercerts" / "prod.crt").write_bytes(
        generate_certificate("prod", ["prod"])[0])
    return tmp_path


def test_target_strips_the_remote_and_keeps_one_per_command(conf: Path) -> None:
    app = App()
    assert app.target("prod:web1") == "web1"
    assert app.server == "prod"
    assert app.target("prod:web2/snap0") == "web2/snap0"
    with pytest.raises(InvalidConfig, match="one command works on one remote"):
        app.target("web3")  # a bare name is on the default remote, local
    assert app.client.remote.url == "https://192.0.2.1:8443"


@pytest.mark.parametrize(("ref", "error", "words"), [
    ("nowhere:web1", NotFound, "Remote 'nowhere' not found"),
    ("mirror:web1", InvalidConfig, "image server"),
    (":web1", InvalidConfig, "[REMOTE:]NAME"),
])
def test_target_refusals(conf: Path, ref: str, error: type[Exception], words: str) -> None:
    with pytest.raises(error) as info:
        App().target(ref)
    assert words in str(info.value)


def test_bare_names_follow_remote_switch(conf: Path) -> None:
    path = conf / "remotes.yaml"
    assert default_remote(path) == "local" and not default_remote_switched()
    set_default_remote(path, "prod")
    assert default_remote(path) == "prod" and default_remote_switched()
    app = App()
    assert app.target("web1") == "web1" and app.server == "prod"
    assert App(socket_path="/run/x.socket").server == "local"  # --socket means local
    with pytest.raises(InvalidConfig, match="image server"):
        set_default_remote(path, "mirror")
    remove_remote(path, "prod")  # removing the default falls back to local
    assert default_remote(path) == "local" and not default_remote_switched()
    assert set(load_remotes(path)) == {"local", "ubuntu", "images", "mirror"}


def test_fast_path_leaves_remotes_to_click(conf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert fast.fast_runner(["list", "prod:"]) is None
    assert fast.fast_runner(["start", "prod:web1"]) is None
    assert fast.fast_runner(["exec", "web1", "--", "echo", "a:b"]) is not None
    set_default_remote(conf / "remotes.yaml", "prod")
    assert fast.fast_runner(["list"]) is None
    monkeypatch.setenv("LXMGR_SOCKET", "/run/x.socket")
    assert fast.fast_runner(["list"]) is not None


def test_local_prefix_and_server_config(run: Callable[..., Result], fake: FakeClient) -> None:
    fake.answers[("GET", "/1.0/instances")] = []
    assert run("list", "local:").exit_code == 0
    assert fake.calls[-1].path == "/1.0/instances"
    result = run("start", "local:web1")
    assert result.exit_code == 0, result.output
    assert fake.mutations()[-1] == ("PUT", "/1.0/instances/web1/state")
    fake.answers[("PATCH", "/1.0")] = {}
    assert run("config", "set", "core.https_address=:8443").exit_code == 0
    assert fake.last("PATCH", "/1.0").body == {"config": {"core.https_address": ":8443"}}
    assert run("config", "set", "local:", "core.https_address", "[::]:8443").exit_code == 0
    assert fake.last("PATCH", "/1.0").body == {"config": {"core.https_address": "[::]:8443"}}


@pytest.mark.parametrize(("url", "protocol", "ok"), [
    ("unix:///var/lib/lxmgr/unix.socket", "lxd", True),
    ("unix://relative.socket", "lxd", False),
    ("unix:///a/../b.socket", "lxd", False),
    ("unix:///var/lib/lxmgr/unix.socket", "simplestreams", False),
    ("https://192.0.2.1:8443", "lxd", True),
])
def test_server_urls(url: str, protocol: str, ok: bool) -> None:
    if ok:
        validate_remote_url(url, protocol)
    else:
        with pytest.raises(InvalidConfig):
            validate_remote_url(url, protocol)


def test_image_of_one_server_for_an_instance_on_another(conf: Path) -> None:
    from lxmgr.cli.remotes import image_source

    assert image_source("debian", "prod") is None  # bare: the target server's own image
    assert image_source("prod:debian", "prod") is None
    assert image_source("local:debian", "local") is None
    for ref, target in (("local:debian", "prod"), ("prod:debian", "local")):
        with pytest.raises(InvalidConfig, match="copying images between servers"):
            image_source(ref, target)
    assert image_source("mirror:debian/12", "prod") == {
        "type": "image", "mode": "pull", "server": "https://images.example.org",
        "protocol": "simplestreams", "alias": "debian/12"}


def test_rename_and_set_url(conf: Path, run: Callable[..., Result]) -> None:
    path = conf / "remotes.yaml"
    set_default_remote(path, "prod")
    result = run("remote", "rename", "prod", "production")
    assert result.exit_code == 0, result.output
    assert default_remote(path) == "production"
    assert (conf / "servercerts" / "production.crt").exists()
    assert not (conf / "servercerts" / "prod.crt").exists()
    result = run("remote", "set-url", "production", "https://192.0.2.20:8443")
    assert result.exit_code == 0, result.output
    assert load_remotes(path)["production"].url == "https://192.0.2.20:8443"
    for args, words in ((("rename", "images", "x"), "built in"),
                        (("rename", "production", "mirror"), "already exists"),
                        (("rename", "production", "Bad Name"), "Bad Name"),
                        (("set-url", "production", "ftp://x"), "ftp://x"),
                        (("set-url", "nope", "https://x"), "not found")):
        result = run("remote", *args)
        assert result.exit_code == 1 and words in result.output, (args, result.output)

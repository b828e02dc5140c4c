"""Profile YAML: parse, dump, roundtrip, directory loading and the shipped profiles."""

from __future__ import annotations

from pathlib import Path

import pytest

from lxmgr.errors import InvalidConfig, NotFound
from lxmgr.model.config import validate_config
from lxmgr.model.devices import validate_devices
from lxmgr.model.profile import (
    Profile,
    dump_profile,
    load_profiles_dir,
    parse_profile,
    validate_profile_name,
)

SHIPPED = Path(__file__).resolve().parents[3] / "profiles"

LXD_SHOW = """\
name: web
description: Web servers
config:
  limits.cpu: 2
  security.nesting: true
  limits.memory: 1GiB
  environment.LANG: C.UTF-8
  cloud-init.user-data: |
    #cloud-config
    packages:
      - nginx
devices:
  root:
    path: /
    pool: default
    type: disk
  http:
    type: proxy
    listen: tcp:0.0.0.0:80
    connect: tcp:127.0.0.1:80
    nat: false
used_by:
  - /1.0/instances/web1
"""


def test_parse_coerces_values_like_lxd() -> None:
    p = parse_profile(LXD_SHOW)
    assert p.name == "web"
    assert p.description == "Web servers"
    assert p.config["limits.cpu"] == "2"
    assert p.config["security.nesting"] == "true"
    assert p.config["cloud-init.user-data"].startswith("#cloud-config\npackages:")
    assert p.devices["http"]["nat"] == "false"
    assert p.devices["root"] == {"path": "/", "pool": "default", "type": "disk"}


def test_roundtrip() -> None:
    p = parse_profile(LXD_SHOW)
    text = dump_profile(p)
    assert parse_profile(text) == p
    assert "used_by" not in text
    assert "cloud-init.user-data: |" in text  # multi-line values stay readable


def test_dump_quotes_strings_that_look_like_other_types() -> None:
    p = Profile("x", config={"limits.cpu": "1", "security.nesting": "true"})
    assert parse_profile(dump_profile(p)).config == p.config
    assert "'1'" in dump_profile(p)


def test_minimal_profile_uses_name_hint() -> None:
    p = parse_profile("description: hi\n", name_hint="minimal")
    assert p == Profile("minimal", "hi", {}, {})
    assert parse_profile("", name_hint="empty") == Profile("empty")


@pytest.mark.parametrize(("text", "hint", "pattern"), [
    ("name: a\nconfig: {limits.cpus: 2}\n", None,
     r"^Unknown config key 'limits.cpus': did you mean 'limits.cpu'\?$"),
    ("name: a\ndevices: {r: {type: disk, path: /, pool: p, x: 1}}\n", None, r"unknown key 'x'"),
    ("name: a\nconfig: {volatile.uuid: x}\n", None, r"volatile"),
    ("name: a\nfoo: bar\n", None, r"^Unknown profile field 'foo'$"),
    ("name: a\ndevies: {}\n", None, r"^Unknown profile field 'devies': did you mean 'devices'\?$"),
    ("- a\n- b\n", None, r"must be a mapping"),
    ("description: x\n", None, r"no name"),
    ("name: a\n", "b", r"'a' does not match 'b'"),
    ("name: a/b\n", None, r"Invalid profile name"),
    ("name: a\nconfig: [x]\n", None, r"must be mappings"),
    ("name: a\ndescription: [x]\n", None, r"description must be a string"),
    ("name: a\nconfig: {user.x: {y: 1}}\n", None, r"key 'user.x'"),
])
def test_parse_rejects(text: str, hint: str | None, pattern: str) -> None:
    with pytest.raises(InvalidConfig, match=pattern):
        parse_profile(text, hint)


def test_invalid_yaml_is_one_line() -> None:
    with pytest.raises(InvalidConfig) as info:
        parse_profile("name: a\nconfig: {\n  limits.cpu: [\n", "a")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("Invalid YAML in profile 'a': ")
    assert "line" in message


def test_load_dir_names_the_bad_file(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text("name: good\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nconfig:\n  - : :\n  x: [\n")
    with pytest.raises(InvalidConfig) as info:
        load_profiles_dir(tmp_path)
    assert str(info.value).startswith(f"Invalid YAML in profile file '{bad}': ")
    assert "\n" not in str(info.value)


def test_load_dir_names_the_file_on_invalid_config(tmp_path: Path) -> None:
    bad = tmp_path / "x.yaml"
    bad.write_text("config: {limits.memory: lots}\n")
    with pytest.raises(InvalidConfig, match=rf"^Invalid profile file '{bad}': Invalid config key"):
        load_profiles_dir(tmp_path)


def test_load_dir_reads_only_yaml_and_uses_stem(tmp_path: Path) -> None:
    (tmp_path / "one.yaml").write_text("description: first\n")
    (tmp_path / "notes.txt").write_text("not a profile")
    assert load_profiles_dir(tmp_path) == {"one": Profile("one", "first")}


def test_load_missing_dir(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        load_profiles_dir(tmp_path / "nope")


def test_shipped_profiles_parse_and_validate() -> None:
    profiles = load_profiles_dir(SHIPPED)
    assert {"default", "small"} <= set(profiles)
    for p in profiles.values():
        assert p.description
        assert validate_config(p.config) == p.config
        assert validate_devices(p.devices) == p.devices
    assert profiles["default"].config == {}
    assert profiles["default"].devices == {"root": {"path": "/", "pool": "default", "type": "disk"}}
    assert profiles["small"].config == {"limits.cpu": "1", "limits.cpu.allowance": "50%",
                                        "limits.memory": "256MiB", "limits.processes": "500"}


@pytest.mark.parametrize("name", ["default", "small", "my_profile", "web.v2", "A1"])
def test_good_profile_names(name: str) -> None:
    validate_profile_name(name)


@pytest.mark.parametrize("name", ["", ".", "..", ".hidden", "-x", "a/b", "a b", "x" * 64])
def test_bad_profile_names(name: str) -> None:
    with pytest.raises(InvalidConfig, match="Invalid profile name"):
        validate_profile_name(name)

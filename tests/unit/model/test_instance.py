"""Instance names, generated names, status codes and InstanceSpec serialisation."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime

import pytest

from lxmgr.errors import InvalidConfig
from lxmgr.model.instance import (
    InstanceSpec,
    InstanceStatus,
    generate_name,
    validate_instance_name,
)

GOOD_NAMES = ["a", "web", "web-1", "Web1", "brave-otter", "a1-b2-c3", "x" * 63, "a--b"]
BAD_NAMES = [
    ("", "empty"),
    ("1web", "leading digit"),
    ("-web", "leading hyphen"),
    ("web-", "trailing hyphen"),
    ("x" * 64, "too long"),
    ("web_1", "underscore"),
    ("web.1", "dot"),
    ("web 1", "space"),
    ("wéb", "non-ASCII"),
    ("web/1", "slash"),
    ("web\n", "newline"),
]


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_good_names(name: str) -> None:
    validate_instance_name(name)


@pytest.mark.parametrize("name", [n for n, _ in BAD_NAMES], ids=[why for _, why in BAD_NAMES])
def test_bad_names(name: str) -> None:
    with pytest.raises(InvalidConfig, match="^Invalid instance name"):
        validate_instance_name(name)


def test_generated_names_are_valid_and_deterministic_with_rng() -> None:
    names = {generate_name() for _ in range(200)}
    assert len(names) > 50
    for name in names:
        validate_instance_name(name)
        assert name.count("-") == 1
    assert generate_name(random.Random(7)) == generate_name(random.Random(7))


def test_status_codes_match_lxd() -> None:
    assert InstanceStatus.STOPPED.value == 102
    assert InstanceStatus.RUNNING.value == 103
    assert InstanceStatus.STARTING.value == 106
    assert InstanceStatus.STOPPING.value == 107
    assert InstanceStatus.ABORTING.value == 108
    assert InstanceStatus.FREEZING.value == 109
    assert InstanceStatus.FROZEN.value == 110
    assert InstanceStatus.THAWED.value == 111
    assert InstanceStatus.ERROR.value == 112
    assert InstanceStatus.READY.value == 113
    assert InstanceStatus.FAILURE.value == 400


def test_status_labels() -> None:
    assert str(InstanceStatus.RUNNING) == "Running"
    assert InstanceStatus.OPERATION_CREATED.label == "Operation created"
    assert InstanceStatus.from_label("Frozen") is InstanceStatus.FROZEN
    assert InstanceStatus.SUCCESS.is_final and not InstanceStatus.RUNNING.is_final
    with pytest.raises(InvalidConfig):
        InstanceStatus.from_label("running")


def _spec() -> InstanceSpec:
    return InstanceSpec(
        name="web",
        image_fingerprint="ab" * 32,
        profiles=["default", "small"],
        config={"limits.cpu": "2", "volatile.uuid": "u"},
        devices={"root": {"type": "disk", "path": "/", "pool": "default"}},
        ephemeral=True,
        created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        storage_driver="overlay",
        description="web server",
    )


def test_spec_roundtrip_through_json() -> None:
    spec = _spec()
    data = json.loads(json.dumps(spec.to_dict()))
    assert InstanceSpec.from_dict(data) == spec


def test_spec_defaults() -> None:
    spec = InstanceSpec("a", "f")
    assert spec.profiles == ["default"]
    assert spec.created_at.tzinfo is not None
    assert spec.storage_driver == "dir"
    assert not spec.ephemeral


@pytest.mark.parametrize(("change", "pattern"), [
    ({"name": "1bad"}, "Invalid instance name"),
    ({"profiles": "default"}, "'profiles' has the wrong type"),
    ({"profiles": [1]}, "profiles must be strings"),
    ({"config": {"a": 1}}, "config must map strings"),
    ({"devices": {"root": {"path": 1}}}, "device 'root' must map strings"),
    ({"created_at": "yesterday"}, "created_at"),
    ({"ephemeral": "yes"}, "'ephemeral' has the wrong type"),
])
def test_spec_from_dict_rejects(change: dict[str, object], pattern: str) -> None:
    data = {**_spec().to_dict(), **change}
    with pytest.raises(InvalidConfig, match=pattern):
        InstanceSpec.from_dict(data)


def test_spec_from_dict_missing_field() -> None:
    data = _spec().to_dict()
    del data["image_fingerprint"]
    with pytest.raises(InvalidConfig, match="missing 'image_fingerprint'"):
        InstanceSpec.from_dict(data)
    with pytest.raises(InvalidConfig, match="not a mapping"):
        InstanceSpec.from_dict([])

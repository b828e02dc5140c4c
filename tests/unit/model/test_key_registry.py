"""Accept only what you apply: every registered config key and device key names the module
that applies it, and that module reads it. A new key without code applying it fails here."""

from __future__ import annotations

import importlib
import inspect

import pytest

from lxmgr import devices
from lxmgr.model import config as cfg
from lxmgr.model import devices as model_devices


def _source(module: str) -> str:
    return inspect.getsource(importlib.import_module(module))


def test_every_key_has_an_applier() -> None:
    assert set(cfg.APPLIED_BY) == set(cfg.KEYS) | set(cfg.PREFIX_KEYS)


@pytest.mark.parametrize("key", sorted(cfg.APPLIED_BY))
def test_the_applier_reads_the_key(key: str) -> None:
    module = cfg.APPLIED_BY[key]
    if key in ("user.", "volatile."):
        return  # stored for the user / for lxmgr itself: nothing more to apply
    text = _source(module)
    literal = f'"{key}' if key.endswith(".") else f'"{key}"'
    assert literal in text or (key.endswith(".") and f"{key}{{" in text), \
        f"{module} never reads {key}"


def test_every_device_type_is_registered_or_refused() -> None:
    assert set(model_devices.DEVICE_KEYS) <= set(devices.DEVICES)
    assert not set(model_devices.UNSUPPORTED_TYPES) & set(devices.DEVICES)


@pytest.mark.parametrize("dtype", sorted(devices.DEVICES))
def test_every_device_key_is_read_where_the_device_is_applied(dtype: str) -> None:
    cls = devices.DEVICES[dtype]
    modules = [cls.__module__, *[m.strip() for m in cls.applied_by.split(",") if m.strip()]]
    text = "".join(_source(m) for m in modules)
    for key in model_devices.DEVICE_KEYS.get(dtype, {}):
        assert f'"{key}"' in text, f"device type {dtype}: key {key} is read by none of {modules}"

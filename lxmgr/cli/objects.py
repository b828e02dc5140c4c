"""Reading and writing API objects with their ETag, click-free (the fast path and the click
commands share it): GET with the ETag, PUT with If-Match, waiting for an async answer."""

from __future__ import annotations

TYPE_CHECKING = False  # no typing import at run time (lxmgr.cli.fast)
if TYPE_CHECKING:
    from typing import Any

    from lxmgr.cli.app import App

# The writable part of an instance (InstancePut), in `lxc config show` order.
PUT_FIELDS = ("architecture", "config", "devices", "ephemeral", "profiles", "stateful",
              "description")


def instance_put(inst: dict[str, Any], expanded: bool = False) -> dict[str, Any]:
    """The InstancePut fields of an instance (expanded config/devices on request)."""
    put = {key: inst[key] for key in PUT_FIELDS if key in inst}
    if expanded:
        put["config"] = inst.get("expanded_config", put.get("config", {}))
        put["devices"] = inst.get("expanded_devices", put.get("devices", {}))
    return put


def get_object(app: App, path: str) -> tuple[dict[str, Any], str]:
    """GET path: the object and its ETag ('' when the server sent none)."""
    response = app.client.request("GET", path)
    response.raise_for_error()
    return dict(response.metadata or {}), response.headers.get("etag", "")


def put_object(app: App, path: str, body: dict[str, Any], etag: str = "") -> None:
    """PUT body to path (If-Match etag when known); wait if the answer is async."""
    headers = {"If-Match": etag} if etag else None
    response = app.client.request("PUT", path, body=body, headers=headers)
    response.raise_for_error()
    if (response.envelope or {}).get("type") == "async":
        app.client.wait_operation(response.operation)


def get_instance(app: App, name: str) -> tuple[dict[str, Any], str]:
    return get_object(app, app.instance_path(name))


def save_instance(app: App, name: str, inst: dict[str, Any], etag: str) -> None:
    put_object(app, app.instance_path(name), instance_put(inst), etag)


def described_put(data: dict[str, Any]) -> dict[str, Any]:
    """The description/config part (NetworkPut, ProjectPut) of an object."""
    return {"description": str(data.get("description") or ""),
            "config": dict(data.get("config") or {})}


def parse_described_yaml(text: str, what: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the YAML a user typed, its description/config with config values coerced to
    strings); InvalidConfig when it is not a mapping with a 'config' mapping."""
    from lxmgr.cli.terminal import parse_yaml
    from lxmgr.errors import InvalidConfig
    from lxmgr.model.config import to_config_value

    data = parse_yaml(text, what) or {}
    if not isinstance(data, dict) or not isinstance(data.get("config") or {}, dict):
        raise InvalidConfig(f"Invalid YAML for {what}: expected a mapping with a 'config' "
                            "mapping")
    result = described_put(data)
    result["config"] = {str(k): to_config_value(v) for k, v in result["config"].items()}
    return data, result

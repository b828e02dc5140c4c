"""PURE image metadata rules: the `templates:` section of an LXD image's metadata.yaml.

Owns TemplateRule (one target file rendered from a template in the image's templates/
directory), its validation, trigger filtering and TemplateContext (what a template may read
about the instance). Must not import anything but lxmgr.errors and the stdlib; no I/O
(rendering and writing live in lxmgr.images.templates).

Schema (LXD's api.ImageMetadataTemplate, incus shared/api/image.go):

    templates:
      /etc/hostname:            # absolute target path inside the instance
        when: [create, copy]    # triggers: create, copy, start, rename
        create_only: false      # true: leave an existing file alone
        template: hostname.tpl  # a file name in the image's templates/ directory
        properties: {}          # strings handed to the template as `properties`
        uid: "0"                # optional (LXD image_template_permissions): owner of a new
        gid: "0"                #   file, a container id below 65536
        mode: "644"             # optional: mode of a new file (an octal string)
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lxmgr.errors import InvalidConfig
from lxmgr.model.validate import did_you_mean

TRIGGERS = ("create", "copy", "start", "rename")
DEFAULT_MODE = 0o644

# Each instance maps 65536 ids (README "Ids"); an owner beyond them has no host id.
_MAX_CONTAINER_ID = 65535
_KEYS = frozenset({"when", "create_only", "template", "properties", "uid", "gid", "mode"})


@dataclass(frozen=True)
class TemplateRule:
    """One `templates:` entry: render `template` into `path` on the `when` triggers."""

    path: str
    when: tuple[str, ...]
    template: str
    properties: dict[str, str] = field(default_factory=dict)
    create_only: bool = False
    uid: int | None = None
    gid: int | None = None
    mode: int | None = None


@dataclass(frozen=True)
class TemplateContext:
    """What templates may know about the instance (LXD's templateApplyNow context)."""

    name: str
    architecture: str = ""
    privileged: bool = False
    ephemeral: bool = False
    config: Mapping[str, str] = field(default_factory=dict)
    devices: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def instance_meta(self) -> dict[str, str]:
        """`container`/`instance` as LXD passes them: every value a string."""
        return {"name": self.name, "type": "container", "architecture": self.architecture,
                "privileged": _bool_str(self.privileged),
                "ephemeral": _bool_str(self.ephemeral)}


def parse_templates(data: object) -> list[TemplateRule]:
    """Validate metadata.yaml's `templates` mapping (None: no rules) into rules, in order."""
    if data is None:
        return []
    if not isinstance(data, Mapping):
        raise InvalidConfig("Invalid image metadata 'templates': expected a mapping of paths")
    return [parse_rule(path, entry) for path, entry in data.items()]


def parse_rule(path: object, entry: object) -> TemplateRule:
    """One `templates:` entry; errors name the target path and the field."""
    target = _check_path(path)
    if not isinstance(entry, Mapping):
        raise InvalidConfig(f"Invalid image template '{target}': expected a mapping")
    unknown = sorted(str(k) for k in entry if k not in _KEYS)
    if unknown:
        raise InvalidConfig(f"Invalid image template '{target}': unknown field '{unknown[0]}'"
                            f"{did_you_mean(unknown[0], _KEYS)}")
    return TemplateRule(
        path=target,
        when=_check_when(target, entry.get("when")),
        template=_check_name(target, entry.get("template")),
        properties=_check_properties(target, entry.get("properties")),
        create_only=_check_bool(target, "create_only", entry.get("create_only", False)),
        uid=_check_id(target, "uid", entry.get("uid")),
        gid=_check_id(target, "gid", entry.get("gid")),
        mode=_check_mode(target, entry.get("mode")),
    )


def rules_for(rules: Iterable[TemplateRule], trigger: str) -> list[TemplateRule]:
    """The rules that apply on trigger, in their order."""
    if trigger not in TRIGGERS:
        raise InvalidConfig(f"Invalid template trigger '{trigger}': expected one of "
                            f"{', '.join(TRIGGERS)}")
    return [rule for rule in rules if trigger in rule.when]


def _bool_str(value: bool) -> str:
    return "true" if value else "false"


def _fail(target: str, name: str, why: str) -> InvalidConfig:
    return InvalidConfig(f"Invalid image template '{target}' field '{name}': {why}")


def _check_path(path: object) -> str:
    if not isinstance(path, str):
        raise InvalidConfig(f"Invalid image template path {path!r}: expected a string")
    parts = path.split("/")
    if (not path.startswith("/") or path == "/" or "\0" in path or ".." in parts
            or posixpath.normpath(path) != path):
        raise InvalidConfig(f"Invalid image template path '{path}': must be absolute, "
                            "normalized and without '..'")
    return path


def _check_when(target: str, when: object) -> tuple[str, ...]:
    if when is None:
        return ()
    if not isinstance(when, list | tuple) or not all(isinstance(w, str) for w in when):
        raise _fail(target, "when", "expected a list of triggers")
    for trigger in when:
        if trigger not in TRIGGERS:
            raise _fail(target, "when", f"unknown trigger '{trigger}' (expected one of "
                        f"{', '.join(TRIGGERS)})")
    return tuple(dict.fromkeys(when))


def _check_name(target: str, name: object) -> str:
    if not isinstance(name, str) or not name:
        raise _fail(target, "template", "a template file name is required")
    if "/" in name or "\0" in name or name in (".", ".."):
        raise _fail(target, "template", f"'{name}' must be a plain file name")
    return name


def _check_properties(target: str, props: object) -> dict[str, str]:
    if props is None:
        return {}
    if not isinstance(props, Mapping):
        raise _fail(target, "properties", "expected a mapping of strings")
    out: dict[str, str] = {}
    for key, value in props.items():
        if not isinstance(key, str):
            raise _fail(target, "properties", f"key {key!r} is not a string")
        out[key] = _scalar_str(target, f"properties.{key}", value)
    return out


def _scalar_str(target: str, name: str, value: Any) -> str:
    """YAML scalars as Go's yaml decodes them into map[string]string."""
    if isinstance(value, bool):
        return _bool_str(value)
    if isinstance(value, str | int | float):
        return str(value)
    raise _fail(target, name, "expected a string")


def _check_bool(target: str, name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise _fail(target, name, "expected true or false")
    return value


def _check_id(target: str, name: str, value: object) -> int | None:
    if value is None or value == "":
        return None
    text = _scalar_str(target, name, value)
    if not text.isdigit() or int(text) > _MAX_CONTAINER_ID:
        raise _fail(target, name, f"'{text}' is not a container id (0-{_MAX_CONTAINER_ID})")
    return int(text)


def _check_mode(target: str, value: object) -> int | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        # YAML 1.1 reads an unquoted 0644 as the integer 420: only a string is unambiguous.
        raise _fail(target, "mode", "expected a quoted octal string such as \"644\"")
    text = value
    try:
        mode = int(text, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o777:
        raise _fail(target, "mode", f"'{text}' is not an octal file mode (e.g. 644)")
    return mode

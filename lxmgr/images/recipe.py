"""PURE image recipes: parse and validate images/<distro>.yaml data, build the debootstrap argv.

Imports only lxmgr.errors. YAML is parsed by the caller (debootstrap.py); this module sees
plain data and raises InvalidConfig naming the offending field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from lxmgr.errors import InvalidConfig

VARIANTS = ("minbase", "buildd", "fakechroot")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_ALIAS_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$")
_PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]{0,127}$")
_UNIT_RE = re.compile(r"^[A-Za-z0-9:_.@\\-]+\.(service|socket|mount|automount|target|timer|"
                      r"path|swap|slice|scope|device)$")
_GENERATOR_RE = re.compile(r"^[A-Za-z0-9_.@-]+-generator$")
_MIRROR_RE = re.compile(r"^(https?|file)://[^\s,]+$")
_ARCH_RE = re.compile(r"^[a-z0-9]+$")
_COMPONENT_RE = re.compile(r"^[a-z0-9][a-z0-9/_-]{0,63}$")
_KEYS = {"name", "os", "release", "suite", "mirror", "variant", "architecture", "aliases",
         "packages", "mask_units", "mask_generators", "enable_units", "files", "description",
         "apt_sources", "extends"}
# Lists a recipe with `extends` adds to its parent's; `files` replace a parent file at the
# same path. Every other field is the child's own when it sets it, else the parent's, except
# `aliases` and `description`, which are never inherited (they name one image).
_MERGED_LISTS = ("packages", "mask_units", "mask_generators", "enable_units", "apt_sources")
_NOT_INHERITED = ("aliases", "description", "extends")
SOURCES_LIST = "/etc/apt/sources.list"  # apt_sources replace debootstrap's one line here


@dataclass(frozen=True)
class RecipeFile:
    """A file written into the rootfs after debootstrap, owned by root."""

    path: str
    content: str
    mode: int = 0o644


@dataclass(frozen=True)
class AptSource:
    """One `deb URI SUITE COMPONENT...` line of the image's sources.list."""

    uri: str
    suite: str
    components: tuple[str, ...]

    def line(self) -> str:
        return f"deb {self.uri} {self.suite} {' '.join(self.components)}"


@dataclass(frozen=True)
class Recipe:
    """A validated recipe; tuples keep it hashable and immutable."""

    name: str
    os: str
    release: str
    suite: str
    mirror: str
    architecture: str
    variant: str = "minbase"
    aliases: tuple[str, ...] = ()
    packages: tuple[str, ...] = ()
    mask_units: tuple[str, ...] = ()
    mask_generators: tuple[str, ...] = ()
    enable_units: tuple[str, ...] = ()
    files: tuple[RecipeFile, ...] = field(default=())
    description: str = ""
    apt_sources: tuple[AptSource, ...] = ()


def parse(data: object, *, host_arch: str) -> Recipe:
    """Validate recipe data (a YAML mapping); architecture defaults to host_arch."""
    if not isinstance(data, Mapping):
        raise InvalidConfig("Invalid recipe: expected a mapping at the top level")
    unknown = sorted(set(data) - _KEYS, key=str)
    if unknown:
        raise InvalidConfig(f"Invalid recipe: unknown field '{unknown[0]}'")
    name = _match(data, "name", _NAME_RE)
    files = _files(data.get("files", []))
    apt_sources = _apt_sources(data.get("apt_sources", []))
    if apt_sources and any(f.path == SOURCES_LIST for f in files):
        raise InvalidConfig(f"Invalid recipe: both 'apt_sources' and 'files' write {SOURCES_LIST}")
    return Recipe(
        name=name,
        os=_match(data, "os", _NAME_RE),
        release=_text(data, "release"),
        suite=_match(data, "suite", _NAME_RE),
        mirror=_match(data, "mirror", _MIRROR_RE),
        architecture=_match(data, "architecture", _ARCH_RE, default=host_arch),
        variant=_variant(data),
        aliases=_list(data, "aliases", _ALIAS_RE),
        packages=_list(data, "packages", _PACKAGE_RE),
        mask_units=_list(data, "mask_units", _UNIT_RE),
        mask_generators=_list(data, "mask_generators", _GENERATOR_RE),
        enable_units=_list(data, "enable_units", _UNIT_RE),
        files=files,
        description=_text(data, "description", default=f"{name} image"),
        apt_sources=apt_sources,
    )


def extends(data: object) -> str | None:
    """The parent recipe named by `extends`, if any."""
    if not isinstance(data, Mapping) or "extends" not in data:
        return None
    parent = data["extends"]
    if not isinstance(parent, str) or not _NAME_RE.match(parent):
        raise InvalidConfig(f"Invalid recipe field 'extends': '{parent}' is not a recipe name")
    return parent


def merge(parent: Mapping[str, object], child: Mapping[str, object]) -> dict[str, object]:
    """The data of a recipe that `extends` parent (both plain YAML data)."""
    out: dict[str, object] = {k: v for k, v in parent.items() if k not in _NOT_INHERITED}
    for key, value in child.items():
        if key == "extends":
            continue
        if key in _MERGED_LISTS and isinstance(value, list):
            before = out.get(key, [])
            before = before if isinstance(before, list) else []
            out[key] = before + [item for item in value if item not in before]
        elif key == "files" and isinstance(value, list):
            paths = {f.get("path") for f in value if isinstance(f, Mapping)}
            before = out.get("files", [])
            before = before if isinstance(before, list) else []
            out["files"] = [f for f in before if not isinstance(f, Mapping)
                            or f.get("path") not in paths] + value
        else:
            out[key] = value
    return out


def debootstrap_argv(recipe: Recipe, target: str) -> list[str]:
    """The debootstrap command line that builds recipe's base system into target."""
    argv = ["debootstrap", f"--variant={recipe.variant}", f"--arch={recipe.architecture}"]
    if recipe.packages:
        argv.append("--include=" + ",".join(recipe.packages))
    return [*argv, recipe.suite, target, recipe.mirror]


def render_sources_list(recipe: Recipe) -> str:
    """The image's /etc/apt/sources.list text for recipe.apt_sources ("" when it has none)."""
    if not recipe.apt_sources:
        return ""
    head = f"# Written by lxmgr's image recipe '{recipe.name}' (apt_sources)\n"
    return head + "".join(f"{source.line()}\n" for source in recipe.apt_sources)


def _text(data: Mapping[str, object], key: str, default: str | None = None) -> str:
    value = data.get(key, default)
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)  # release: 12 written without quotes
    if not isinstance(value, str) or not value.strip():
        raise InvalidConfig(f"Invalid recipe field '{key}': expected a non-empty string")
    return value


def _match(data: Mapping[str, object], key: str, pattern: re.Pattern[str],
           default: str | None = None) -> str:
    value = _text(data, key, default)
    if not pattern.match(value):
        raise InvalidConfig(f"Invalid recipe field '{key}': '{value}' is not allowed")
    return value


def _variant(data: Mapping[str, object]) -> str:
    value = _text(data, "variant", default="minbase")
    if value not in VARIANTS:
        raise InvalidConfig(f"Invalid recipe field 'variant': '{value}' is not one of "
                            f"{', '.join(VARIANTS)}")
    return value


def _list(data: Mapping[str, object], key: str, pattern: re.Pattern[str]) -> tuple[str, ...]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise InvalidConfig(f"Invalid recipe field '{key}': expected a list")
    for item in value:
        if not isinstance(item, str) or not pattern.match(item):
            raise InvalidConfig(f"Invalid recipe field '{key}': '{item}' is not allowed")
    if len(set(value)) != len(value):
        raise InvalidConfig(f"Invalid recipe field '{key}': duplicate entries")
    return tuple(value)


def _apt_sources(value: object) -> tuple[AptSource, ...]:
    """apt_sources: ["URI SUITE COMPONENT...", ...], one sources.list line each."""
    if not isinstance(value, list):
        raise InvalidConfig("Invalid recipe field 'apt_sources': expected a list")
    out = []
    for index, item in enumerate(value):
        fields = item.split() if isinstance(item, str) else []
        if (len(fields) < 3 or not _MIRROR_RE.match(fields[0])
                or not _NAME_RE.match(fields[1])
                or not all(_COMPONENT_RE.match(f) for f in fields[2:])):
            raise InvalidConfig(f"Invalid recipe field 'apt_sources[{index}]': '{item}' is "
                                "not 'URI SUITE COMPONENT...'")
        out.append(AptSource(fields[0], fields[1], tuple(fields[2:])))
    if len(set(out)) != len(out):
        raise InvalidConfig("Invalid recipe field 'apt_sources': duplicate entries")
    return tuple(out)


def _files(value: object) -> tuple[RecipeFile, ...]:
    if not isinstance(value, list):
        raise InvalidConfig("Invalid recipe field 'files': expected a list")
    return tuple(_file(i, item) for i, item in enumerate(value))


def _file(index: int, item: object) -> RecipeFile:
    where = f"files[{index}]"
    if not isinstance(item, Mapping) or set(item) - {"path", "content", "mode"}:
        raise InvalidConfig(f"Invalid recipe field '{where}': expected path, content, mode")
    path = item.get("path")
    if (not isinstance(path, str) or not path.startswith("/") or path.endswith("/")
            or any(part in ("..", ".") for part in path.split("/"))):
        raise InvalidConfig(f"Invalid recipe field '{where}.path': '{path}' must be an "
                            "absolute, normalized file path")
    content = item.get("content", "")
    if not isinstance(content, str):
        raise InvalidConfig(f"Invalid recipe field '{where}.content': expected a string")
    return RecipeFile(path, content, _mode(where, item.get("mode", 0o644)))


def _mode(where: str, value: object) -> int:
    if isinstance(value, str):
        try:
            value = int(value, 8)
        except ValueError:
            value = -1
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0o7777:
        raise InvalidConfig(f"Invalid recipe field '{where}.mode': expected an octal mode "
                            "such as '0644'")
    return value

"""Rendering of LXD image templates (pongo2 syntax) in a jinja2 sandbox; no file I/O (reading
and writing live in lxmgr.images.templates).

Imports jinja2, lxmgr.errors and lxmgr.model.image only.

Templates are image data, hence untrusted: they are rendered with jinja2's
SandboxedEnvironment, no globals, an allowlist of filters, `config_get()` as the only callable,
no include/extends/import/macro (LXD bans include, extends, import and ssi too) and caps on
loop iterations, string and output sizes and render time.

pongo2 (LXD's engine) vs what we render; what real images use works unchanged:
- translated: `|filter:arg` -> `|filter(arg)`, `&&`/`||` -> and/or, `forloop.Counter` (and
  Counter0, Revcounter, Revcounter0, First, Last) -> `loop.*`, `{% for ... reversed %}`,
  `{% for ... sorted %}` (maps are always iterated sorted by key), `{% empty %}` -> else,
  verbatim -> raw.
- `{% for k, v in mapping %}` iterates (key, value) pairs as pongo2 does.
- `None` renders empty, missing names and attributes render empty (pongo2's nil).
- not supported (a clean error): pongo2-only tags (comment, cycle, firstof, ifequal, now,
  spaceless, lorem, templatetag, widthratio, ssi), `!` for not, filters outside _FILTERS,
  method calls, `{% macro %}`, `{% set %}...{% endset %}`, `{% filter %}`.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.filters import FILTERS
from jinja2.sandbox import SandboxedEnvironment
from jinja2.visitor import NodeTransformer

from lxmgr.errors import InvalidConfig
from lxmgr.model.image import TemplateContext

MAX_OUTPUT_SIZE = 1 << 20     # characters rendered by one template
MAX_STRING_SIZE = 1 << 20     # characters in any string a template builds
MAX_ITERATIONS = 100_000      # loop iterations over one render, nested loops included
MAX_RENDER_SECONDS = 5.0
_MAX_INT_BITS = 4096

_FILTERS = ("default", "d", "first", "last", "length", "count", "lower", "upper", "title",
            "capitalize", "trim", "escape", "e", "safe", "int", "float", "urlencode",
            "striptags", "wordcount", "reverse", "sort")


class TemplateLimit(SecurityError):
    """A template went over one of the render caps."""


# pongo2 -> jinja2 ---------------------------------------------------------------------------

_TAG = re.compile(r"(\{\{|\{%)(.*?)(\}\}|%\})", re.S)
_STRING = re.compile(r"(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')", re.S)
_VERBATIM = re.compile(r"\{%(-?)\s*verbatim\s*(-?)%\}(.*?)\{%(-?)\s*endverbatim\s*(-?)%\}",
                       re.S)
_FORLOOP = re.compile(r"\bforloop\.(Counter0|Counter|Revcounter0|Revcounter|First|Last)\b")
_FORLOOP_NAMES = {"Counter0": "index0", "Counter": "index", "Revcounter0": "revindex0",
                  "Revcounter": "revindex", "First": "first", "Last": "last"}
_FILTER_ARG = re.compile(r"(\|\s*\w+)\s*:\s*(-?[\w.]+)")
_FILTER_ARG_STRING = re.compile(r"(\|\s*\w+)\s*:\s*$")
_EMPTY = re.compile(r"^(\s*-?\s*)empty(\s*-?\s*)$")
_FOR_SUFFIX = re.compile(r"^(\s*-?\s*for\s.*?)\s+(sorted|reversed)(\s*-?\s*)$", re.S)


def translate_pongo2(source: str) -> str:
    """Rewrite the pongo2 spellings jinja2 lacks (see the module docstring)."""
    out, pos = [], 0
    for m in _VERBATIM.finditer(source):
        out.append(_TAG.sub(_translate_tag, source[pos:m.start()]))
        ws1, ws2, body, ws3, ws4 = m.groups()
        out.append(f"{{%{ws1} raw {ws2}%}}{body}{{%{ws3} endraw {ws4}%}}")
        pos = m.end()
    out.append(_TAG.sub(_translate_tag, source[pos:]))
    return "".join(out)


def _translate_tag(m: re.Match[str]) -> str:
    parts = _STRING.split(m.group(2))
    close = False
    for i, part in enumerate(parts):
        if i % 2:  # a string literal
            if close:
                parts[i], close = part + ")", False
            continue
        part = part.replace("&&", " and ").replace("||", " or ")
        part = _FORLOOP.sub(lambda f: "loop." + _FORLOOP_NAMES[f.group(1)], part)
        part = _FILTER_ARG.sub(r"\1(\2)", part)
        parts[i], opened = _FILTER_ARG_STRING.subn(r"\1(", part)
        close = bool(opened)
    body = "".join(parts)
    if m.group(1) == "{%":
        body = _EMPTY.sub(r"\1else\2", body)
        body = _FOR_SUFFIX.sub(
            lambda f: f.group(1) + ("|reverse" if f.group(2) == "reversed" else "") + f.group(3),
            body)
    return m.group(1) + body + m.group(3)


# The sandbox --------------------------------------------------------------------------------

_BANNED_NODES: dict[type[nodes.Node], str] = {
    nodes.Extends: "extends", nodes.Include: "include", nodes.Import: "import",
    nodes.FromImport: "from ... import", nodes.Macro: "macro", nodes.CallBlock: "call",
    nodes.FilterBlock: "filter", nodes.AssignBlock: "set ... endset",
}


class _Undefined(jinja2.ChainableUndefined):
    """pongo2's nil: a missing name or attribute renders as nothing, even chained."""


class _Limits:
    """The per-render budget every guarded operation charges."""

    def __init__(self) -> None:
        self.iterations = 0
        self.deadline = time.monotonic() + MAX_RENDER_SECONDS

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateLimit(f"rendering took over {MAX_RENDER_SECONDS:g} s")

    def iterate(self, value: Any, pairs: bool) -> Iterator[Any]:
        """The iterable of every {% for %}: counted, maps as sorted pairs for `k, v`."""
        if isinstance(value, Mapping):
            value = sorted(value.items(), key=lambda kv: str(kv[0])) if pairs else list(value)
        for item in value:
            self.iterations += 1
            if self.iterations > MAX_ITERATIONS:
                raise TemplateLimit(f"over {MAX_ITERATIONS} loop iterations")
            self.tick()
            yield item


def check_size(value: Any, limit: int = MAX_STRING_SIZE) -> None:
    """Raise TemplateLimit if value (walked through containers) exceeds limit characters."""
    stack, total = [value], 0
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, Mapping):
            total += 4 * len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            total += 2 * len(item)
            stack.extend(item)
        else:
            total += 32
        if total > limit:
            raise TemplateLimit(f"a value is over {limit} characters")


def _text(value: Any) -> str:
    """str() of a template value, refusing anything that would be huge."""
    if value is None or callable(value) and not isinstance(value, jinja2.Undefined):
        return ""  # pongo2 renders nil as nothing; never leak an object's repr
    check_size(value)
    return str(value)


def _concat(items: list[Any]) -> str:
    """The `~` operator with a size cap."""
    parts = [_text(item) for item in items]
    if sum(map(len, parts)) > MAX_STRING_SIZE:
        raise TemplateLimit(f"a string is over {MAX_STRING_SIZE} characters")
    return "".join(parts)


def _join(value: Any, d: str = "", attribute: Any = None) -> str:
    """pongo2's/jinja's join, without attribute lookup, with a size cap."""
    if attribute is not None:
        raise SecurityError("join(attribute=...) is not supported")
    check_size(value)
    return _concat([part for item in value for part in (d, item)][1:])


class _Guard(NodeTransformer):
    """Route every loop and `~` through the per-render budget."""

    def visit_For(self, node: nodes.For) -> nodes.Node:  # noqa: N802 - visitor spelling
        self.generic_visit(node)
        pairs = isinstance(node.target, nodes.Tuple) and len(node.target.items) == 2
        node.iter = nodes.Filter(node.iter, "_lxmgr_iter", [nodes.Const(pairs)], [], None, None)
        node.iter.set_lineno(node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:  # noqa: N802
        self.generic_visit(node)
        new = nodes.Filter(nodes.List(node.nodes), "_lxmgr_concat", [], [], None, None)
        return new.set_lineno(node.lineno)


def _check_ast(tree: nodes.Template) -> None:
    for node in tree.find_all(nodes.Node):
        tag = _BANNED_NODES.get(type(node))
        if tag:
            raise SecurityError(f"line {node.lineno}: '{{% {tag} %}}' is not allowed")
        if isinstance(node, nodes.Call) and not (
                isinstance(node.node, nodes.Name) and node.node.name == "config_get"):
            raise SecurityError(f"line {node.lineno}: only config_get() may be called")
        if isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
            raise SecurityError(f"line {node.lineno}: access to '{node.attr}' is not allowed")
        if isinstance(node, nodes.Filter) and node.name.startswith("_"):
            raise SecurityError(f"line {node.lineno}: no filter named '{node.name}'")


class _Environment(SandboxedEnvironment):
    """One render's sandbox: no globals, allowlisted filters, capped operators."""

    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def __init__(self, limits: _Limits) -> None:
        super().__init__(autoescape=False, undefined=_Undefined, keep_trailing_newline=True,
                         finalize=_text, auto_reload=False, cache_size=0)
        self.limits = limits
        self.globals.clear()  # range, lipsum, cycler, joiner, namespace, dict
        self.filters = {name: self._capped(FILTERS[name]) for name in _FILTERS}
        self.filters["join"] = self._capped(_join)
        self.filters["_lxmgr_iter"] = limits.iterate
        self.filters["_lxmgr_concat"] = _concat

    def _capped(self, func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)  # keeps jinja's pass_* marker
        def capped(*args: Any, **kwargs: Any) -> Any:
            self.limits.tick()
            result = func(*args, **kwargs)
            if isinstance(result, str) and len(result) > MAX_STRING_SIZE:
                raise TemplateLimit(f"a string is over {MAX_STRING_SIZE} characters")
            return result
        return capped

    def unsafe_undefined(self, obj: Any, attribute: str) -> jinja2.Undefined:
        raise SecurityError(f"access to attribute '{attribute}' of a "
                            f"'{type(obj).__name__}' is not allowed")

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any,
                   right: Any) -> Any:
        self.limits.tick()
        if operator == "%" and isinstance(left, str):
            raise SecurityError("string formatting with % is not supported")
        _check_binop(operator, left, right)
        return self.binop_table[operator](left, right)


def _check_binop(operator: str, left: Any, right: Any) -> None:
    seqs = (str, list, tuple)
    if operator == "+" and isinstance(left, seqs) and isinstance(right, seqs):
        size = len(left) + len(right)
    elif operator == "*" and isinstance(left, seqs) and isinstance(right, int):
        size = len(left) * max(right, 0)
    elif operator == "*" and isinstance(right, seqs) and isinstance(left, int):
        size = len(right) * max(left, 0)
    elif isinstance(left, int) and isinstance(right, int):
        bits = {"+": 1 + max(left.bit_length(), right.bit_length()),
                "*": left.bit_length() + right.bit_length(),
                "**": left.bit_length() * max(right, 0), "%": 0}[operator]
        if bits > _MAX_INT_BITS:
            raise TemplateLimit(f"an integer is over {_MAX_INT_BITS} bits")
        return
    else:
        return
    if size > MAX_STRING_SIZE:
        raise TemplateLimit(f"a value is over {MAX_STRING_SIZE} characters or items")


def build_variables(context: TemplateContext, trigger: str, path: str,
               properties: Mapping[str, str]) -> dict[str, Any]:
    """Exactly LXD's template context (instance meta values are strings, as in LXD)."""
    config = {str(k): str(v) for k, v in context.config.items()}

    def config_get(key: Any, default: Any = "") -> Any:
        value = config.get(str(key))
        return default if value is None else value.rstrip("\r\n")

    meta = context.instance_meta()
    return {"trigger": trigger, "path": path, "container": meta, "instance": dict(meta),
            "config": config, "properties": dict(properties), "config_get": config_get,
            "devices": {str(n): {str(k): str(v) for k, v in d.items()}
                        for n, d in context.devices.items()}}


def render_source(source: str, variables: dict[str, Any]) -> str:
    """Render source with variables; raises jinja2/SecurityError/TemplateLimit errors."""
    limits = _Limits()
    env = _Environment(limits)
    tree = env.parse(translate_pongo2(source))
    _check_ast(tree)
    tree = _Guard().visit(tree)
    tree.set_environment(env)
    template = env.template_class.from_code(env, env.compile(tree), env.make_globals(None))
    out, size = [], 0
    for chunk in template.generate(variables):
        size += len(chunk)
        if size > MAX_OUTPUT_SIZE:
            raise TemplateLimit(f"output is over {MAX_OUTPUT_SIZE} characters")
        out.append(chunk)
    return "".join(out)


def describe_error(err: Exception) -> str:
    """One line saying why a render failed."""
    if isinstance(err, jinja2.TemplateSyntaxError):
        text = f"line {err.lineno}: {err.message}"
    elif isinstance(err, jinja2.TemplateError | TemplateLimit):
        text = str(err)
    elif isinstance(err, RecursionError):
        text = "too deeply nested"
    else:
        text = f"{type(err).__name__}: {err}"
    return " ".join(text.split())


def render_template(source: str, context: TemplateContext, *, trigger: str = "create",
                    path: str = "", properties: Mapping[str, str] | None = None,
                    name: str = "<string>") -> str:
    """Render one pongo2/jinja2 template source in the sandbox; InvalidConfig names it."""
    try:
        return render_source(source, build_variables(context, trigger, path, properties or {}))
    except Exception as err:  # any failure of image data is an invalid template
        raise InvalidConfig(f"Invalid template '{name}': {describe_error(err)}") from err

"""Output for the CLI: lxc-style tables, json/yaml/csv, sizes and dates, raw tty mode.

Plain text on purpose: `lxmgr list` must not pay for importing rich. Imports stdlib only
(yaml lazily).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from datetime import UTC, datetime

TYPE_CHECKING = False  # no typing import at run time: ~10 ms of every CLI start (cli.fast)
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from typing import Any

FORMATS = ("table", "json", "yaml", "csv")


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """An ASCII table as `lxc list` draws it: centred headers, a rule after every row."""
    cells = [[str(c).split("\n") for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, lines in enumerate(row):
            widths[i] = max(widths[i], *(len(line) for line in lines))
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    out = [rule, "|" + "|".join(f" {h.center(w)} " for h, w in zip(headers, widths,
                                                                     strict=True)) + "|", rule]
    for row in cells:
        height = max((len(lines) for lines in row), default=1)
        for n in range(height):
            parts = [lines[n] if n < len(lines) else "" for lines in row]
            out.append("|" + "|".join(f" {p.ljust(w)} " for p, w in zip(parts, widths,
                                                                        strict=True)) + "|")
        out.append(rule)
    return "\n".join(out)


def render_csv(rows: Sequence[Sequence[str]]) -> str:
    import csv
    import io

    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue().rstrip("\n")


def render_json(value: Any) -> str:
    return json.dumps(value, indent=None, separators=(",", ":"), sort_keys=False)


def render_yaml(value: Any) -> str:
    """Block-style YAML, multi-line strings as literal blocks (like `lxc config show`)."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
        style = "|" if "\n" in text else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)

    Dumper.add_representer(str, represent_str)
    return str(yaml.dump(value, Dumper=Dumper, sort_keys=False, default_flow_style=False,
                         allow_unicode=True)).rstrip("\n")


def render(fmt: str, headers: Sequence[str], rows: Sequence[Sequence[str]], raw: Any) -> str:
    """One of FORMATS: table/csv from rows, json/yaml from the raw API objects."""
    if fmt == "json":
        return render_json(raw)
    if fmt == "yaml":
        return render_yaml(raw)
    if fmt == "csv":
        return render_csv(rows)
    return render_table(headers, rows)


def parse_yaml(text: str, what: str) -> Any:
    """YAML from a user (editor, stdin); one-line InvalidConfig on a syntax error."""
    import yaml

    from lxmgr.errors import InvalidConfig

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise InvalidConfig(f"Invalid YAML for {what}{where}: "
                            f"{getattr(err, 'problem', None) or err}") from err


def format_size(value: int | float | None) -> str:
    """Bytes as lxc prints them: '123.45MiB'."""
    if value is None:
        return ""
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.2f}{unit}"
        size /= 1024
    return ""  # pragma: no cover


def parse_time(value: str | None) -> datetime | None:
    """An RFC 3339 time from the API (naive means UTC); None for unset, zero or malformed."""
    if not value or value.startswith("0001-01-01"):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def format_time(value: str | None) -> str:
    """An RFC 3339 time as lxc prints it ('2024/01/02 15:04 UTC'); '' for unset/zero."""
    if not value or value.startswith("0001-01-01"):
        return ""
    moment = parse_time(value)
    if moment is None:
        return value  # not a time: show it as the server sent it
    return moment.astimezone(UTC).strftime("%Y/%m/%d %H:%M UTC")


def parse_assignments(args: Sequence[str], what: str) -> dict[str, str]:
    """KEY=VALUE arguments (or a single KEY VALUE pair) into a dict."""
    from lxmgr.errors import InvalidConfig

    if len(args) == 2 and "=" not in args[0]:
        return {args[0]: args[1]}
    result: dict[str, str] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or not key:
            raise InvalidConfig(f"Invalid {what} '{arg}': expected KEY=VALUE")
        result[key] = value
    return result


def is_tty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def terminal_size(fd: int = 1) -> tuple[int, int]:
    """(columns, lines) of the terminal on fd, 80x24 when it is not one."""
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return 80, 24
    return size.columns, size.lines


@contextlib.contextmanager
def raw_mode(fd: int) -> Iterator[None]:
    """Put the tty on fd in raw mode for the block; restore it whatever happens."""
    if not is_tty(fd):
        yield
        return
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd, termios.TCSANOW)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def echo(text: str = "") -> None:
    """Print to stdout without click/rich overhead."""
    sys.stdout.write(text + "\n")

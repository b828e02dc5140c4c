"""The `lxmgr` entry point: a click-free fast path for the verbs scripts run in loops.

A script polling `lxmgr list --format json` or running `lxmgr exec NAME -- true` in a loop
should pay for starting Python and one request, not also ~15-20 ms for importing click and
building the command tree (and, on a 2-CPU host, not steal that CPU from the containers
booting). main() recognises a small, unambiguous subset of the arguments of list, start,
stop, exec and `config device add|remove` and runs the same bodies the click commands run
(lxmgr.cli.listing, lxmgr.cli.actions, lxmgr.cli.device_edit), in the project --project
names (before or after the verb, as the click CLI reads it) or the current one of `local`
(lxmgr.cli.app.scan_project, a line scan: no yaml). Anything else (other verbs, other global
options, --help, `--`-less exec, an option it does not know, a malformed value, a current
project only the YAML parser can read, shell completion) goes to the click CLI in
lxmgr.cli.main, which owns every usage message. tests/unit/cli/test_fast.py runs both
paths on the same arguments and compares what reaches the daemon and the output. The
`lxmgr` launcher (lxmgr.cli.launcher) runs this module without `site`, loaded here only
when click is needed.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # no typing import at run time: ~10 ms of every CLI start (cli.fast)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Runner = Callable[[Any], int]

FORMATS = ("table", "json", "yaml", "csv")  # lxmgr.cli.terminal.FORMATS (a test checks)
HELP = ("-h", "--help")


def _options(args: list[str], flags: dict[str, str], valued: dict[str, str]
             ) -> tuple[dict[str, Any], list[str]] | None:
    """Split args into {dest: value} and positionals; None on anything not plainly known.

    flags maps an option to its dest (True when present); valued maps an option taking one
    value (`-o V`, `--opt V` or `--opt=V`) to its dest, repeated ones collected in a list.
    """
    found: dict[str, Any] = {}
    positional: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("-") or arg == "-":
            positional.append(arg)
        elif arg in flags:
            found[flags[arg]] = True
        else:
            name, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
            if name not in valued or (not eq and i + 1 >= len(args)):
                return None
            if not eq:
                i += 1
                value = args[i]
            found.setdefault(valued[name], []).append(value)
        i += 1
    return found, positional


def _single(values: list[str] | None) -> str | None:
    return values[-1] if values else None


def _integer(values: list[str] | None) -> tuple[bool, int | None]:
    """(ok, value) for an int option; not ok when given and not an integer (click says why)."""
    text = _single(values)
    if text is None:
        return True, None
    try:
        return True, int(text)
    except ValueError:
        return False, None


def parse_list(args: list[str]) -> Runner | None:
    parsed = _options(args, {"--all-projects": "all_projects"},
                      {"-f": "fmt", "--format": "fmt", "-c": "columns", "--columns": "columns"})
    if parsed is None:
        return None
    found, filters = parsed
    fmt = _single(found.get("fmt")) or "table"
    if fmt not in FORMATS:
        return None

    def run(app: Any) -> int:
        from lxmgr.cli.listing import DEFAULT_COLUMNS, list_instances

        list_instances(app, filters, fmt, _single(found.get("columns")) or DEFAULT_COLUMNS,
                       all_projects=bool(found.get("all_projects")))
        return 0

    return run


def parse_start(args: list[str]) -> Runner | None:
    if not args or any(arg.startswith("-") for arg in args):
        return None

    def run(app: Any) -> int:
        from lxmgr.cli.actions import change_states

        change_states(app, args, "start")
        return 0

    return run


def parse_stop(args: list[str]) -> Runner | None:
    parsed = _options(args, {"-f": "force", "--force": "force"}, {"--timeout": "timeout"})
    if parsed is None:
        return None
    found, names = parsed
    ok, timeout = _integer(found.get("timeout"))
    if not names or not ok:
        return None

    def run(app: Any) -> int:
        from lxmgr.cli.actions import change_states

        change_states(app, names, "stop", timeout=timeout, force=bool(found.get("force")))
        return 0

    return run


def parse_exec(args: list[str]) -> Runner | None:
    if "--" not in args:
        return None
    split = args.index("--")
    command = args[split + 1:]
    parsed = _options(args[:split], {"-t": "force_pty", "--force-interactive": "force_pty",
                                     "-T": "no_pty", "--force-noninteractive": "no_pty"},
                      {"-E": "env", "--env": "env", "--user": "user", "--group": "group",
                       "--cwd": "cwd"})
    if parsed is None or not command:
        return None
    found, names = parsed
    (user_ok, user), (group_ok, group) = _integer(found.get("user")), _integer(
        found.get("group"))
    if len(names) != 1 or not (user_ok and group_ok):
        return None

    def run(app: Any) -> int:
        from lxmgr.cli.actions import run_command, want_pty
        from lxmgr.cli.terminal import parse_assignments

        env = found.get("env")
        environment = parse_assignments(tuple(env), "environment variable") if env else {}
        status = run_command(app, names[0], command, env=environment, user=user, group=group,
                             cwd=_single(found.get("cwd")),
                             interactive=want_pty(bool(found.get("force_pty")),
                                                  bool(found.get("no_pty"))))
        sys.stdout.flush()
        return status

    return run


def parse_config(args: list[str]) -> Runner | None:
    """`config device add NAME DEVICE TYPE [KEY=VALUE]...` and `config device remove NAME
    DEVICE...` (a script hot-plugging disks); other config verbs are the click CLI's."""
    if len(args) < 4 or args[0] != "device" or any(arg.startswith("-") for arg in args):
        return None
    verb, name, rest = args[1], args[2], args[3:]
    if verb == "add" and len(rest) >= 2:
        def run(app: Any) -> int:
            from lxmgr.cli import device_edit

            device_edit.add(app, device_edit.instance_owner(), name, rest[0], rest[1],
                            tuple(rest[2:]))
            return 0
        return run
    if verb == "remove":
        def run_remove(app: Any) -> int:
            from lxmgr.cli import device_edit

            device_edit.remove(app, device_edit.instance_owner(), name, tuple(rest))
            return 0
        return run_remove
    return None


PARSERS: dict[str, Callable[[list[str]], Runner | None]] = {  # annotation: not evaluated
    "list": parse_list,
    "start": parse_start,
    "stop": parse_stop,
    "exec": parse_exec,
    "config": parse_config,
}


def _project_option(argv: list[str]) -> tuple[str | None, list[str]] | None:
    """(--project's value or None, argv without it) as lxmgr.cli.main.hoist_globals reads
    it anywhere before `--`; None when it lacks its value (click's usage message)."""
    project: str | None = None
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            return project, rest + argv[i:]
        if arg.startswith("--project="):
            project = arg.partition("=")[2]
        elif arg == "--project":
            if i + 1 >= len(argv) or argv[i + 1] == "--":
                return None
            i += 1
            project = argv[i]
        else:
            rest.append(arg)
        i += 1
    return project, rest


def fast_runner(argv: list[str]) -> Runner | None:
    """The fast path's runner for argv, or None when the click CLI must handle it."""
    if "_LXMGR_COMPLETE" in os.environ:
        return None
    split = _project_option(argv)
    if split is None:
        return None
    project, argv = split
    if not argv or argv[0] not in PARSERS:
        return None
    args = argv[1:]
    options = args[:args.index("--")] if "--" in args else args
    from lxmgr.cli.app import LOCAL, default_remote_switched, scanned_project

    if any(arg in HELP or ":" in arg for arg in options) or default_remote_switched():
        return None  # REMOTE: names and a switched default remote are the click CLI's
    if not project and scanned_project(LOCAL) is None:
        return None  # a current project only the YAML parser can read: the click CLI's
    runner = PARSERS[argv[0]](args)
    if runner is None or not project:
        return runner

    def run_in_project(app: Any) -> int:
        app.project_override = project
        return runner(app)

    return run_in_project


def run_fast(runner: Runner, app: Any = None) -> int:
    """Run with app (default: a fresh App); errors become `Error: ...` and status 1 as in
    the click CLI."""
    from lxmgr.cli.app import App, describe_error, describe_os_error
    from lxmgr.errors import LxmgrError

    try:
        return runner(app or App(socket_path=os.environ.get("LXMGR_SOCKET") or None))
    except LxmgrError as err:
        message = describe_error(err)
    except OSError as err:
        message = describe_os_error(err)
    except KeyboardInterrupt:
        print("", file=sys.stderr)
        return 130
    except SystemExit as done:  # App.abort: the message is out already
        return done.code if isinstance(done.code, int) else 1
    print(f"Error: {message}", file=sys.stderr, flush=True)
    return 1


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `lxmgr` script."""
    args = sys.argv[1:] if argv is None else list(argv)
    runner = fast_runner(args)
    if runner is None:
        if sys.flags.no_site:  # started by the launcher (lxmgr.cli.launcher): click needs it
            import site

            site.main()
        from lxmgr.cli.main import main as click_main

        click_main(args)
        return
    sys.exit(run_fast(runner))


if __name__ == "__main__":
    main()

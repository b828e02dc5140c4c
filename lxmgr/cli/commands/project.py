"""`lxmgr project ...`: project CRUD and usage, and the current project (`lxc project`).

Talks to /1.0/projects only, through the client; the daemon validates names and config keys.
`switch` keeps the current project of a server remote in the CLI's remotes file
(lxmgr.cli.remotes.set_current_project), where every later command finds it (lxmgr.cli.app:
App.project); a global `--project` overrides it for one command.
"""

from __future__ import annotations

import sys
from typing import Any
from urllib.parse import quote

import click

from lxmgr.cli.app import App
from lxmgr.cli.commands.config import edit_text, get_object, put_object, unset_keys
from lxmgr.cli.objects import described_put, parse_described_yaml
from lxmgr.cli.options import ON_SERVER, format_option, get_app
from lxmgr.cli.terminal import parse_assignments, render, render_yaml

# `lxc project show` order; edit writes description and config.
SHOW_FIELDS = ("name", "description", "config", "used_by")
EDIT_FIELDS = ("name", "description", "config")
# `lxc project list` columns (LXD 5.0 lxc/project.go), networks included.
LIST_HEADERS = ["NAME", "IMAGES", "PROFILES", "STORAGE VOLUMES", "NETWORKS", "DESCRIPTION",
                "USED BY"]
FEATURE_COLUMNS = ("features.images", "features.profiles", "features.storage.volumes",
                   "features.networks")


def project_path(name: str, *rest: str) -> str:
    return "/".join([f"/1.0/projects/{quote(name, safe='')}", *rest])


project_put = described_put  # the ProjectPut part (description, config)


def parse_project_text(text: str, name: str) -> dict[str, Any]:
    """description/config from YAML typed by a user; config values coerced to strings."""
    return parse_described_yaml(text, f"project '{name}'")[1]


def _list_row(project: dict[str, Any]) -> list[str]:
    config = project.get("config") or {}
    features = ["YES" if str(config.get(key, "")).lower() in ("true", "1", "yes", "on")
                else "NO" for key in FEATURE_COLUMNS]
    return [str(project.get("name", "")), *features, str(project.get("description", "")),
            str(len(project.get("used_by") or []))]


def render_project_info(state: dict[str, Any]) -> list[list[str]]:
    """`lxc project info`'s rows: RESOURCE, LIMIT, USAGE (LXD's ProjectStateResource keys
    are capitalized: Limit, Usage)."""
    rows = []
    for resource, usage in sorted((state.get("resources") or {}).items()):
        limit = usage.get("Limit", -1)
        rows.append([resource.upper(), "UNLIMITED" if limit == -1 else str(limit),
                     str(usage.get("Usage", 0))])
    return rows


@click.group()
def project() -> None:
    """Manage projects: separate sets of instances, images, profiles, volumes and networks.

    Commands work in the current project of their remote (`default` until `lxmgr project
    switch`), or in the one the global --project names for one command.

    \b
    Examples:
      lxmgr project list
      lxmgr project create web features.networks=true --description "Web team"
      lxmgr project switch web
      lxmgr --project default list
      lxmgr project show web
      lxmgr project rename web www
    """


@project.command("list")
@click.argument("remote", required=False, metavar="[REMOTE:]", type=ON_SERVER)
@format_option
def list_(remote: str | None, fmt: str) -> None:
    """List projects; the current one is marked (current).

    \b
    Examples:
      lxmgr project list
      lxmgr project list prod:
      lxmgr project list --format yaml
    """
    app = get_app()
    if remote:
        app.abort(f"Expected REMOTE: (a remote name and a colon), not '{remote}'")
    projects = sorted(app.query("GET", "/1.0/projects", params={"recursion": 1}) or [],
                      key=lambda p: str(p.get("name", "")))
    rows = [_list_row(p) for p in projects]
    for row in rows:
        if row[0] == app.current_project:
            row[0] += " (current)"
    app.echo(render(fmt, LIST_HEADERS, rows, projects))


@project.command()
@click.argument("name", metavar="[REMOTE:]NAME", type=ON_SERVER)
def switch(name: str) -> None:
    """Make NAME the current project of its remote: later commands work in it.

    \b
    Examples:
      lxmgr project switch web
      lxmgr project switch prod:web
      lxmgr project switch default
    """
    from lxmgr.cli.remotes import set_current_project

    app = get_app()
    app.query("GET", project_path(name))  # as lxc: the project must exist (404 names it)
    set_current_project(app.server, name)


@project.command()
@click.argument("name", type=ON_SERVER)
def show(name: str) -> None:
    """Show a project as YAML.

    \b
    Examples:
      lxmgr project show default
    """
    app = get_app()
    data, _ = get_object(app, project_path(name))
    app.echo(render_yaml({key: data[key] for key in SHOW_FIELDS if key in data}))


@project.command()
@click.argument("name", type=ON_SERVER)
@click.argument("assignments", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("-d", "--description", default=None, help="Project description.")
def create(name: str, assignments: tuple[str, ...], description: str | None) -> None:
    """Create a project (config from KEY=VALUE arguments, or YAML on stdin).

    Features left unset take LXD's defaults: images, profiles and storage volumes on,
    networks off.

    \b
    Examples:
      lxmgr project create web
      lxmgr project create web features.images=false user.team=web
      lxmgr project create web < web.yaml
    """
    app = get_app()
    body: dict[str, Any] = {"name": name, "description": "", "config": {}}
    if not sys.stdin.isatty():
        text = sys.stdin.read()
        if text.strip():
            body.update(parse_project_text(text, name))
    body["config"].update(parse_assignments(assignments, "config") if assignments else {})
    if description is not None:
        body["description"] = description
    app.query("POST", "/1.0/projects", body=body)
    app.echo(f"Project {name} created")


@project.command()
@click.argument("name", type=ON_SERVER)
def edit(name: str) -> None:
    """Edit a project's description and config as YAML in $EDITOR (or from stdin).

    \b
    Examples:
      lxmgr project edit web
      lxmgr project show web > web.yaml; lxmgr project edit web < web.yaml
    """
    app = get_app()
    data, etag = get_object(app, project_path(name))
    shown = {key: data[key] for key in EDIT_FIELDS if key in data}
    text = edit_text(app, render_yaml(shown) + "\n", f"project '{name}'")
    put_object(app, project_path(name), parse_project_text(text, name), etag)


@project.command("set")
@click.argument("name", type=ON_SERVER)
@click.argument("assignments", nargs=-1, required=True, metavar="KEY=VALUE...")
def set_(name: str, assignments: tuple[str, ...]) -> None:
    """Set project config keys (KEY=VALUE..., or KEY VALUE).

    \b
    Examples:
      lxmgr project set web user.team=web
      lxmgr project set web features.networks true
    """
    app = get_app()
    app.query("PATCH", project_path(name), body={"config": parse_assignments(assignments,
                                                                                "config")})


@project.command()
@click.argument("name", type=ON_SERVER)
@click.argument("keys", nargs=-1, required=True, metavar="KEY...")
def unset(name: str, keys: tuple[str, ...]) -> None:
    """Remove project config keys.

    \b
    Examples:
      lxmgr project unset web user.team
    """
    app = get_app()
    data, etag = get_object(app, project_path(name))
    content = project_put(data)
    unset_keys(app, content["config"], keys)
    put_object(app, project_path(name), content, etag)


@project.command()
@click.argument("name", type=ON_SERVER)
@click.argument("key")
def get(name: str, key: str) -> None:
    """Print one project config value (empty when unset).

    \b
    Examples:
      lxmgr project get default features.images
    """
    app = get_app()
    data, _ = get_object(app, project_path(name))
    app.echo(str((data.get("config") or {}).get(key, "")))


@project.command()
@click.argument("name", type=ON_SERVER)
@click.argument("new_name")
def rename(name: str, new_name: str) -> None:
    """Rename an empty project (not `default`); the current project follows its new name.

    \b
    Examples:
      lxmgr project rename web www
    """
    app = get_app()
    # Waited for outside any project: the POST carries none (lxmgr.client.rest: a project
    # lives in no project), so its operation is `default`'s, and once it ran the old name
    # (maybe the current project) names no project for the daemon to check.
    app.client.project = None
    app.operate("POST", project_path(name), body={"name": new_name})
    app.echo(f"Project {name} renamed to {new_name}")
    _follow_current(app, name, new_name)


@project.command()
@click.argument("names", nargs=-1, required=True, metavar="NAME...", type=ON_SERVER)
def delete(names: tuple[str, ...]) -> None:
    """Delete empty projects (not `default`); deleting the current one makes `default`
    current again.

    \b
    Examples:
      lxmgr project delete web
    """
    app = get_app()
    for name in names:
        app.query("DELETE", project_path(name))
        app.echo(f"Project {name} deleted")
        _follow_current(app, name, None)


def _follow_current(app: App, old: str, new: str | None) -> None:
    """The remote's current project `old` was renamed to new (or deleted: None, back to
    `default`, as lxc's project delete): its stored name follows. lxc 5.0 leaves a renamed
    current project's old name, which every later command would then fail on."""
    from lxmgr.cli.remotes import current_project, set_current_project

    if current_project(app.server) == old:
        set_current_project(app.server, new)


@project.command()
@click.argument("name", type=ON_SERVER)
@format_option
def info(name: str, fmt: str) -> None:
    """Show a project's resource usage and limits.

    \b
    Examples:
      lxmgr project info default
    """
    app = get_app()
    state = app.query("GET", project_path(name, "state")) or {}
    app.echo(render(fmt, ["RESOURCE", "LIMIT", "USAGE"], render_project_info(state), state))

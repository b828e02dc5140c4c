"""`python -m lxmgr.images build|list|delete ...`: a developer front end until the CLI lands.

Imports only lxmgr.images and lxmgr.errors; prints progress with rich.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Callable, Iterator

from lxmgr.errors import LxmgrError
from lxmgr.images import debootstrap
from lxmgr.images.progress import Progress
from lxmgr.images.store import ImageStore


def _build(args: argparse.Namespace) -> None:
    show = _bar_printer if sys.stdout.isatty() else _line_printer
    with show() as report:
        image = debootstrap.build(args.recipe, report)
    print(f"{image.fingerprint}  {image.os} {image.release} {image.architecture}  "
          f"{image.size / 1e6:.0f} MB  aliases: {', '.join(image.aliases) or '-'}")


@contextlib.contextmanager
def _bar_printer() -> Iterator[Callable[[Progress], None]]:
    """A rich progress bar on a terminal."""
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bar

    columns = (TextColumn("{task.fields[stage]:>9}"), BarColumn(),
               TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(),
               TextColumn("{task.description}"))
    with Bar(*columns) as bar:
        task = bar.add_task("", total=1.0, stage="start")
        yield lambda p: bar.update(task, completed=p.fraction, description=p.message[:50],
                                   stage=p.stage)


@contextlib.contextmanager
def _line_printer() -> Iterator[Callable[[Progress], None]]:
    """Plain lines (pipes, logs): one per stage change or 5% step."""
    last: list[Progress] = []

    def report(p: Progress) -> None:
        if not last or p.stage != last[0].stage or p.fraction - last[0].fraction >= 0.05:
            print(f"{p.stage:>9} {p.fraction * 100:3.0f}% {p.message}", flush=True)
            last[:] = [p]

    yield report


def _list(args: argparse.Namespace) -> None:
    for image in ImageStore().list():
        print(f"{image.fingerprint[:12]}  {image.os:<8} {image.release:<6} "
              f"{image.architecture:<6} {image.size / 1e6:>6.0f} MB  {', '.join(image.aliases)}")


def _delete(args: argparse.Namespace) -> None:
    store = ImageStore()
    store.delete(store.get(args.image).fingerprint)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lxmgr.images")
    parser.add_argument("--debug", action="store_true")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build", help="build an image from a recipe name or path").add_argument(
        "recipe")
    sub.add_parser("list", help="list stored images")
    sub.add_parser("delete", help="delete an image").add_argument("image")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING)
    try:
        {"build": _build, "list": _list, "delete": _delete}[args.cmd](args)
    except LxmgrError as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

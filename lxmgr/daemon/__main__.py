"""lxmgrd: the daemon. Owns the state under $LXMGR_DIR and serves LXD's REST API on
$LXMGR_DIR/unix.socket (mode 0660, group `lxmgr` when it exists), or on the socket systemd
passes (socket activation: LISTEN_FDS/LISTEN_PID, see systemd/lxmgr.socket).

Stopping the daemon leaves containers running: each has its own supervisor, found again
through its control socket when the daemon comes back.
"""

from __future__ import annotations

import argparse
import asyncio
import grp
import logging
import os
import signal
import socket
import sys

from lxmgr import __version__, paths
from lxmgr.errors import LxmgrError

log = logging.getLogger("lxmgrd")
SD_LISTEN_FDS_START = 3


def socket_path() -> str:
    return os.environ.get("LXMGR_SOCKET", str(paths.root() / "unix.socket"))


def activated_socket() -> socket.socket | None:
    """The listening socket systemd passed us, if any (sd_listen_fds(3) protocol)."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()) or \
            int(os.environ.get("LISTEN_FDS", "0")) < 1:
        return None
    for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(key, None)
    sock = socket.socket(fileno=SD_LISTEN_FDS_START)
    sock.setblocking(False)
    return sock


def bind_socket(path: str) -> socket.socket:
    """Our own unix socket: stale ones removed, mode 0660, group lxmgr when it exists."""
    if os.path.exists(path):
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
            raise LxmgrError(f"Another lxmgrd already listens on {path}")
        except (ConnectionRefusedError, FileNotFoundError):
            os.unlink(path)
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o117)
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    try:
        os.chown(path, 0, grp.getgrnam("lxmgr").gr_gid)
    except KeyError:
        pass
    os.chmod(path, 0o660)
    sock.listen(128)
    sock.setblocking(False)
    return sock


async def serve(sock: socket.socket) -> None:
    from aiohttp import web

    from lxmgr.daemon.app import create_app
    from lxmgr.instances.host import check_host
    from lxmgr.instances.manager import Manager

    for check in await asyncio.to_thread(check_host, True):
        level = logging.INFO if check.ok else logging.WARNING
        log.log(level, "host check %s: %s%s", check.name, check.detail,
                "" if check.ok else f" (fix: {check.fix})")
    # LXMGR_CGROUP_BASE lets test daemons run side by side with their own cgroup subtree.
    manager = Manager(cgroup_base_name=os.environ.get("LXMGR_CGROUP_BASE", "lxmgr"))
    # LXMGR_DEFAULT_NETWORK: `none` or a name and config other than lxmgrbr0's on first
    # start (test daemons, which must not create NATed bridges or share one name).
    from lxmgr.instances.networks import parse_default_network
    seed = parse_default_network(os.environ.get("LXMGR_DEFAULT_NETWORK"))
    try:
        await asyncio.to_thread(manager.network_service.start, seed)
    except LxmgrError as err:
        log.error("Networks: %s", err)
    app = create_app(manager)
    stop = asyncio.Event()  # SIGTERM/SIGINT (containers keep running) or PUT /internal/shutdown
    from lxmgr.daemon.routes.internal import EXIT
    app[EXIT] = stop
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    # The HTTPS listener of core.https_address (lxmgr.daemon.https), if set, and the trust
    # tokens made before a restart as operations again: both before the unix socket answers,
    # so a client that sees the daemon up also sees them.
    from lxmgr.daemon.https import HTTPS
    from lxmgr.daemon.routes.certificates import restore_tokens
    await app[HTTPS].attach(runner, paths.root())
    await restore_tokens(app)
    await web.SockSite(runner, sock).start()
    log.info("lxmgrd %s listening on %s", __version__, sock.getsockname() or "(activated)")
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("lxmgrd stopping (containers keep running)")
        await runner.cleanup()
        manager.close()


# Path variables lxmgrd and its children read: made absolute before it leaves the directory.
PATH_VARIABLES = ("LXMGR_DIR", "LXMGR_SOCKET", "LXMGR_RECIPES", "LXMGR_PROFILES")


def leave_cwd() -> None:
    """Work in /, as daemons do (daemon(7)): the caller's directory is neither kept busy
    (an unmount would fail) nor read by anything lxmgrd or its helpers start."""
    for key in PATH_VARIABLES:
        if os.environ.get(key):
            os.environ[key] = os.path.abspath(os.environ[key])
    os.chdir("/")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lxmgrd", description=__doc__.split("\n\n")[0])
    parser.add_argument("--debug", action="store_true", help="log debug messages")
    parser.add_argument("--version", action="version", version=__version__)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if os.geteuid() != 0:
        print("Error: lxmgrd must run as root", file=sys.stderr)
        return 1
    leave_cwd()
    paths.root().mkdir(mode=0o711, parents=True, exist_ok=True)
    try:
        sock = activated_socket() or bind_socket(socket_path())
        asyncio.run(serve(sock))
    except LxmgrError as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1
    except OSError as err:  # the state dir itself: unwritable, a full disk
        where = f": {err.filename}" if err.filename else ""
        print(f"Error: {err.strerror or err}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Clients attached to a container's console (LXD's console websocket, through lxmgrd).

Each client is a stream socket the daemon passed over the control socket: what the client
writes goes to the /dev/console pty, what the container prints goes to every client (and
the ring). The supervisor must never block on a slow client: output a client cannot take
at once is dropped for it (the console log keeps everything). Imports only the stdlib.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import selectors

log = logging.getLogger(__name__)
MAX_CLIENTS = 8


class ConsoleClients:
    """Attached console clients, registered in the supervisor's selector."""

    def __init__(self, sel: selectors.BaseSelector) -> None:
        self.sel = sel
        self.masters: dict[int, int] = {}  # client fd -> pty master fd

    def attach(self, fd: int, master: int) -> None:
        """Take ownership of fd (a socket from the daemon) as a client of master."""
        if len(self.masters) >= MAX_CLIENTS:
            os.close(fd)
            raise OSError(errno.EBUSY, f"Too many console clients (at most {MAX_CLIENTS})")
        os.set_blocking(fd, False)
        self.masters[fd] = master
        self.sel.register(fd, selectors.EVENT_READ, self._on_input)

    def _on_input(self, fd: int) -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.detach(fd)
            return
        view = memoryview(data)
        with contextlib.suppress(OSError):  # a full pty buffer: the rest is dropped
            while view:
                view = view[os.write(self.masters[fd], view):]

    def broadcast(self, master: int, data: bytes) -> None:
        """Console output to every client of master; a client gone is detached."""
        for fd, owner in list(self.masters.items()):
            if owner != master:
                continue
            try:
                os.write(fd, data)
            except BlockingIOError:
                log.debug("Console client %d is slow: output dropped for it", fd)
            except OSError:
                self.detach(fd)

    def detach(self, fd: int) -> None:
        if self.masters.pop(fd, None) is not None:
            self.sel.unregister(fd)
            os.close(fd)

    def close_all(self) -> None:
        for fd in list(self.masters):
            self.detach(fd)

"""Synchronous REST/websocket client for lxmgrd over its unix socket (stdlib only).

rest.py (Client: requests, envelopes, errors, operations), websocket.py (RFC 6455 client),
exec.py (LXD's exec protocol). Imports only lxmgr.api and lxmgr.errors; it must stay cheap
to import because every CLI invocation pays for it.
"""

from __future__ import annotations

from lxmgr.client.rest import Client, DaemonNotRunning, Response, default_socket_path

__all__ = ["Client", "DaemonNotRunning", "Response", "default_socket_path"]

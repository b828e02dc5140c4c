"""GET / and GET /1.0: the server object LXD clients read first (auth, api_extensions,
environment); PUT/PATCH /1.0 change the server config (lxmgr.model.server_config)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
from typing import Any

from aiohttp import web

from lxmgr import __version__
from lxmgr.daemon import responses
from lxmgr.daemon.https import HTTPS
from lxmgr.daemon.keys import MANAGER
from lxmgr.daemon.responses import field, json_body
from lxmgr.model.server_config import validate_server_config

routes = web.RouteTableDef()

# Only what is really implemented: clients change request shapes per extension.
API_EXTENSIONS = [
    "instances",
    "container_full",
    "instance_create_start",
    "instance_force_delete",
    "operation_wait",
    "container_exec_user_group_cwd",
    "container_exec_recording",
    "console",
    "operation_metadata_entity_url",
    "network",
    "network_leases",
    "network_state",
    "snapshot_expiry",
    "snapshot_expiry_creation",
    "snapshot_scheduling",
    "snapshot_schedule_aliases",
    "api_filtering",
    "container_backup",
    "backup_compression_algorithm",
    "storage",
    "image_compression_algorithm",
    "metrics",
    "projects",
    "resources",
    "file_delete",
    "file_append",
    "file_symlinks",
    "directory_manipulation",
    "instance_file_head",
    "instances_files_modify_permissions",
    "certificate_token",  # POST /1.0/certificates {"token": true}: a token operation
    "explicit_trust_token",  # {"trust_token": ...} (pylxd sends it instead of "password")
    "instances_state_selective_recursion",  # recursion=2;fields=state.network
]


@routes.get("/")
async def root(request: web.Request) -> web.Response:
    return responses.sync(["/1.0"])


@routes.get("/1.0")
async def server_info(request: web.Request) -> web.Response:
    manager = request.app[MANAGER]
    uname = platform.uname()
    config = await asyncio.to_thread(manager.db.server_config)
    listener = request.app.get(HTTPS)
    addresses = await asyncio.to_thread(listener.addresses) \
        if listener is not None and listener.address else []
    return responses.sync({
        "config": config,
        "api_extensions": API_EXTENSIONS,
        "api_status": "stable",
        "api_version": "1.0",
        "auth": "trusted",
        "auth_methods": ["unix"],
        "public": False,
        "environment": {
            "addresses": addresses,
            "architectures": [uname.machine],
            "driver": "lxmgr",
            "driver_version": __version__,
            "firewall": "nftables",
            "kernel": uname.system,
            "kernel_architecture": uname.machine,
            "kernel_version": uname.release,
            "os_name": "Debian",
            "project": "default",
            "server": "lxmgr",
            "server_clustered": False,
            "server_event_mode": "full-mesh",
            "server_name": uname.node,
            "server_pid": os.getpid(),
            "server_version": __version__,
            "storage": manager.default_storage,
            "storage_version": "",
            "storage_supported_drivers": [{"Name": name, "Version": "", "Remote": False}
                                          for name in ("overlay", "dir", "btrfs")],
        },
    })


async def _update(request: web.Request, merge: bool) -> web.Response:
    manager = request.app[MANAGER]
    body = await json_body(request)
    config = field(body, "config", dict, {})
    if merge:
        config = {**await asyncio.to_thread(manager.db.server_config), **config}
    clean = validate_server_config(config)
    await asyncio.to_thread(manager.db.set_server_config, clean)
    return responses.sync({})


@routes.put("/1.0")
async def put_server(request: web.Request) -> web.Response:
    return await _update(request, merge=False)


@routes.patch("/1.0")
async def patch_server(request: web.Request) -> web.Response:
    return await _update(request, merge=True)


@routes.get("/1.0/resources")
async def resources(request: web.Request) -> web.Response:
    """A small subset of LXD's host resources: CPU count and model, memory."""
    return responses.sync(await asyncio.to_thread(_resources))


def _resources() -> dict[str, Any]:
    import psutil

    memory = psutil.virtual_memory()
    count = os.cpu_count() or 1
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        model = next((line.split(":", 1)[1].strip() for line in f
                      if line.startswith("model name")), "")
    return {
        "cpu": {"architecture": platform.machine(), "total": count, "sockets": [{
            "name": model, "socket": 0, "cores": [{"core": i, "threads": [
                {"id": i, "thread": 0, "online": True}]} for i in range(count)]}]},
        "memory": {"used": memory.total - memory.available, "total": memory.total},
        "storage": {"disks": [], "total": 0}, "gpu": {"cards": [], "total": 0},
        "network": {"cards": [], "total": 0}, "system": {"type": "physical"},
    }

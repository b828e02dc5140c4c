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

# What GET /1.0 advertises: LXD clients (lxc, pylxd, LXD's web UI) change request shapes per
# entry, so each names the module that implements it (LXD's doc/api-extensions.md says what an
# entry means) and tests/unit/daemon/test_api_extensions.py pins the list, imports each
# module and names the test proving the entry. Add an entry only together with its code.
EXTENSIONS: dict[str, str] = {
    # /1.0/instances (LXD's name for what were containers)
    "instances": "lxmgr.daemon.routes.instances",
    # recursion=2: state, snapshots and backups of every instance in one answer
    "container_full": "lxmgr.daemon.views",
    # POST /1.0/instances {"start": true}: create and start in one operation
    "instance_create_start": "lxmgr.daemon.routes.instances",
    # DELETE /1.0/instances/NAME?force=1 stops a running instance first
    "instance_force_delete": "lxmgr.daemon.routes.instances",
    # GET /1.0/operations/ID/wait
    "operation_wait": "lxmgr.daemon.routes.operations",
    # exec's user, group and cwd
    "container_exec_user_group_cwd": "lxmgr.daemon.routes.instance_exec",
    # exec's record-output: files under /1.0/instances/NAME/logs/exec-output
    "container_exec_recording": "lxmgr.daemon.routes.instance_exec",
    # the console websocket (POST .../console), its log (GET/DELETE in routes.instances)
    "console": "lxmgr.daemon.routes.instance_console",
    # metadata.entity_url of the operations creating an instance or a backup
    "operation_metadata_entity_url": "lxmgr.daemon.routes.instances",
    # /1.0/networks: managed bridges (create, update, rename, delete)
    "network": "lxmgr.daemon.routes.networks",
    # GET /1.0/networks/NAME/leases
    "network_leases": "lxmgr.daemon.routes.networks",
    # GET /1.0/networks/NAME/state
    "network_state": "lxmgr.daemon.routes.networks",
    # /1.0/networks/NAME/forwards: DNAT from a host address into the bridge's subnet
    "network_forward": "lxmgr.daemon.routes.network_forwards",
    # snapshots.expiry, expires_at (PUT/PATCH a snapshot), removed by lifecycle's minutely task
    "snapshot_expiry": "lxmgr.daemon.routes.snapshots",
    # expires_at when creating a snapshot
    "snapshot_expiry_creation": "lxmgr.daemon.routes.snapshots",
    # snapshots.schedule, snapshots.schedule.stopped, snapshots.pattern
    "snapshot_scheduling": "lxmgr.instances.lifecycle",
    # filter= on GET /1.0/instances and GET /1.0/images (views.matches)
    "api_filtering": "lxmgr.daemon.views",
    # /1.0/instances/NAME/backups (create, list, show, rename, delete, export), imports
    "container_backup": "lxmgr.daemon.routes.backups",
    # a backup's compression_algorithm: gzip, xz or none
    "backup_compression_algorithm": "lxmgr.daemon.routes.backups",
    # /1.0/storage-pools: pools, the instance volumes they hold and custom volumes
    "storage": "lxmgr.daemon.routes.storage",
    # compression_algorithm of POST /1.0/images from an instance: the image's export format
    "image_compression_algorithm": "lxmgr.instances.manager_publish",
    # GET /1.0/metrics (OpenMetrics text)
    "metrics": "lxmgr.daemon.routes.metrics",
    # /1.0/projects and project= on every route: instances, profiles, images, volumes
    "projects": "lxmgr.daemon.projects",
    # limits.instances|containers|cpu|memory|processes of a project
    "projects_limits": "lxmgr.instances.project_limits",
    # restricted and restricted.* of a project
    "projects_restrictions": "lxmgr.model.project_limits",
    # features.networks (bridges live in default only, as LXD 5.0's bridge driver)
    "projects_networks": "lxmgr.daemon.projects",
    # limits.disk of a project: root disks' and custom volumes' size
    "projects_limits_disk": "lxmgr.model.project_limits",
    # GET /1.0/projects/NAME/state
    "project_usage": "lxmgr.daemon.routes.projects",
    # GET /1.0/instances?all-projects=true
    "instance_all_projects": "lxmgr.daemon.views",
    # events carry their project; /1.0/events?project= and all-projects=true
    "event_project": "lxmgr.instances.events",
    # restricted and projects of a trusted certificate
    "certificate_project": "lxmgr.daemon.routes.certificates",
    # POST /1.0/images {"source": {"project": ...}}: an image of another project of this server
    "image_source_project": "lxmgr.daemon.routes.images",
    # POST /1.0/instances {"source": {"type": "copy", "project": ...}}: copy between projects
    "container_copy_project": "lxmgr.daemon.routes.instances",
    # GET /1.0/resources and /1.0/storage-pools/NAME/resources
    "resources": "lxmgr.daemon.routes.server",
    # DELETE /1.0/instances/NAME/files
    "file_delete": "lxmgr.daemon.routes.instance_files",
    # X-LXD-write: overwrite|append
    "file_append": "lxmgr.instances.files_api",
    # X-LXD-type: symlink
    "file_symlinks": "lxmgr.instances.files_api",
    # X-LXD-type: directory (create, list)
    "directory_manipulation": "lxmgr.instances.files_api",
    # HEAD /1.0/instances/NAME/files
    "instance_file_head": "lxmgr.daemon.routes.instance_files",
    # X-LXD-modify-perm: mode, uid, gid of an existing file
    "instances_files_modify_permissions": "lxmgr.instances.files_api",
    # POST /1.0/certificates {"token": true}: a token operation
    "certificate_token": "lxmgr.daemon.routes.certificates",
    # {"trust_token": ...} (pylxd sends it instead of "password")
    "explicit_trust_token": "lxmgr.daemon.routes.certificates",
    # recursion=2;fields=state.network (responses.state_fields)
    "instances_state_selective_recursion": "lxmgr.daemon.responses",
    # boot.host_shutdown_timeout, boot.stop.priority: the host-shutdown sequence
    "container_host_shutdown_timeout": "lxmgr.instances.lifecycle",
    "container_stop_priority": "lxmgr.instances.lifecycle",
    # security.protection.delete
    "container_protection_delete": "lxmgr.instances.manager",
    # security.idmap.isolated, security.idmap.size, raw.idmap
    "id_map": "lxmgr.model.idmap",
    # security.idmap.base
    "id_map_base": "lxmgr.model.idmap",
    # /1.0/storage-pools/POOL/volumes/custom/NAME/snapshots: read-only volume snapshots
    "storage_api_volume_snapshots": "lxmgr.daemon.routes.storage_volumes",
    # POST /1.0/storage-pools/POOL/volumes/custom/NAME {"name": ...}: rename a custom volume
    "storage_api_volume_rename": "lxmgr.daemon.routes.storage_volumes",
    # copy (source.type copy) and move (POST {"pool": ...}) custom volumes within and
    # between pools
    "storage_api_local_volume_handling": "lxmgr.instances.volumes",
    # created_at of custom volumes and their snapshots (pylxd shows None without it)
    "storage_volumes_created_at": "lxmgr.daemon.routes.storage_volumes",
}
API_EXTENSIONS = list(EXTENSIONS)


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

"""The daemon's REST API described as OpenAPI 3.0 data, served at GET /1.0/openapi.json.

Each resource area is a table of `Endpoint` rows (method, path, summary, response kind,
request body schema, query parameters); `build_spec()` turns them into paths and adds the
path parameters, `project` on every /1.0 call and LXD's envelopes (sync, async with
Location, error) as shared components. tests/unit/daemon/test_openapi.py keeps the tables
equal to the routes the app registers. Pure data: imports nothing from lxmgr."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

Schema = dict[str, Any]

STR: Schema = {"type": "string"}
BOOL: Schema = {"type": "boolean"}
INT: Schema = {"type": "integer"}
STRINGS: Schema = {"type": "array", "items": STR}
STRING_MAP: Schema = {"type": "object", "additionalProperties": STR}
DEVICES: Schema = {"type": "object", "additionalProperties": STRING_MAP}
TIME: Schema = {"type": "string", "format": "date-time"}


def obj(required: tuple[str, ...] = (), **properties: Schema) -> Schema:
    """A JSON object schema; names with `-` are passed as `x__y` (`x-y`)."""
    schema: Schema = {"type": "object",
                      "properties": {k.replace("__", "-"): v for k, v in properties.items()}}
    if required:
        schema["required"] = list(required)
    return schema


@dataclass(frozen=True)
class Endpoint:
    """One method on one path.

    `response`: sync, created (201), async (202), raw (bytes), text, json (no envelope),
    headers (HEAD), websocket, error (always fails)."""

    method: str
    path: str
    summary: str
    response: str = "sync"
    body: Schema | None = None
    query: tuple[str, ...] = ()
    body_required: bool = True
    raw_body: bool = False
    headers: tuple[str, ...] = ()


# -- request bodies ------------------------------------------------------------------------

SOURCE = obj(type={"type": "string", "enum": ["image", "none", "copy", "migration"]},
             alias=STR, fingerprint=STR, server=STR, protocol=STR, mode=STR, source=STR,
             properties=STRING_MAP, instance_only=BOOL)
INSTANCE_PUT = obj(config=STRING_MAP, devices=DEVICES, profiles=STRINGS, description=STR,
                   ephemeral=BOOL, restore=STR, stateful=BOOL)
INSTANCES_POST = obj(name=STR, type={"type": "string", "enum": ["container"]}, source=SOURCE,
                     profiles=STRINGS, config=STRING_MAP, devices=DEVICES, ephemeral=BOOL,
                     description=STR, start=BOOL)
RENAME = obj(("name",), name=STR, migration=BOOL, live=BOOL)
STATE_PUT = obj(("action",), action={"type": "string", "enum": [
    "start", "stop", "restart", "freeze", "unfreeze"]}, timeout=INT, force=BOOL, stateful=BOOL)
EXEC_POST = obj(("command",), command=STRINGS, environment=STRING_MAP,
                wait__for__websocket=BOOL, interactive=BOOL, record__output=BOOL, width=INT,
                height=INT, user=INT, group=INT, cwd=STR)
CONSOLE_POST = obj(width=INT, height=INT, type={"type": "string", "enum": ["console"]},
                   wait__for__websocket=BOOL)
SNAPSHOT_POST = obj(name=STR, stateful=BOOL, expires_at=TIME)
SNAPSHOT_PUT = obj(expires_at=TIME)
BACKUP_POST = obj(name=STR, expires_at=TIME, instance_only=BOOL, container_only=BOOL,
                  optimized_storage=BOOL, compression_algorithm=STR)
BACKUP_RENAME = obj(("name",), name=STR)
PROFILE_PUT = obj(description=STR, config=STRING_MAP, devices=DEVICES)
PROFILES_POST = obj(("name",), name=STR, description=STR, config=STRING_MAP, devices=DEVICES)
IMAGE_SOURCE = obj(type={"type": "string", "enum": ["image", "recipe", "url"]}, name=STR,
                   server=STR, protocol=STR, alias=STR, fingerprint=STR, mode=STR)
IMAGES_POST = obj(source=IMAGE_SOURCE, public=BOOL, auto_update=BOOL, filename=STR,
                  properties=STRING_MAP, compression_algorithm=STR,
                  aliases={"type": "array", "items": obj(name=STR, description=STR)})
IMAGE_PUT = obj(properties=STRING_MAP, public=BOOL, auto_update=BOOL, expires_at=TIME)
ALIASES_POST = obj(("name", "target"), name=STR, target=STR, description=STR)
ALIAS_PUT = obj(target=STR, description=STR)
ALIAS_RENAME = obj(("name",), name=STR)
CONFIG_PUT = obj(config=STRING_MAP, description=STR)
FORWARD_PORT = obj(("protocol", "listen_port", "target_address"), description=STR,
                   protocol={"type": "string", "enum": ["tcp", "udp"]}, listen_port=STR,
                   target_port=STR, target_address=STR)
FORWARD_PUT = obj(description=STR, config=STRING_MAP,
                  ports={"type": "array", "items": FORWARD_PORT})
FORWARDS_POST = obj(("listen_address",), listen_address=STR, description=STR,
                    config=STRING_MAP, ports={"type": "array", "items": FORWARD_PORT})
NETWORKS_POST = obj(("name",), name=STR, type={"type": "string", "enum": ["bridge"]},
                    description=STR, config=STRING_MAP)
POOLS_POST = obj(("name", "driver"), name=STR, driver={
    "type": "string", "enum": ["dir", "overlay", "btrfs"]}, description=STR, config=STRING_MAP)
VOLUME_SOURCE = obj(type={"type": "string", "enum": ["copy"]}, pool=STR, name=STR,
                   volume_only=BOOL)
VOLUMES_POST = obj(("name",), name=STR, type={"type": "string", "enum": ["custom"]},
                   config=STRING_MAP, description=STR,
                   content_type={"type": "string", "enum": ["filesystem"]}, source=VOLUME_SOURCE)
VOLUME_PUT = obj(config=STRING_MAP, description=STR, restore=STR)
VOLUME_RENAME = obj(("name",), name=STR, pool=STR, migration=BOOL)
VOLUME_SNAPSHOT_POST = obj(name=STR)
VOLUME_SNAPSHOT_PUT = obj(description=STR)
PROJECTS_POST = obj(("name",), name=STR, description=STR, config=STRING_MAP)
SERVER_PUT = obj(config=STRING_MAP)

# -- endpoint tables -----------------------------------------------------------------------

LIST = ("recursion", "all-projects")


def server_endpoints() -> list[Endpoint]:
    return [
        Endpoint("GET", "/", "Supported API versions (`[\"/1.0\"]`)"),
        Endpoint("GET", "/1.0", "Server environment, config and API extensions"),
        Endpoint("PUT", "/1.0", "Replace the server config", body=SERVER_PUT),
        Endpoint("PATCH", "/1.0", "Merge into the server config", body=SERVER_PUT),
        Endpoint("GET", "/1.0/openapi.json", "This API description (OpenAPI 3.0)", "json"),
        Endpoint("GET", "/1.0/doctor", "Host readiness and network diagnosis"),
        Endpoint("GET", "/1.0/metrics", "Instance metrics (Prometheus text)", "text"),
        Endpoint("GET", "/1.0/resources", "Host resources (CPU, memory)"),
        Endpoint("GET", "/1.0/events", "Event stream (websocket)", "websocket",
                 query=("type", "all-projects")),
    ]


def instance_endpoints() -> list[Endpoint]:
    base = "/1.0/instances/{name}"
    return [
        Endpoint("GET", "/1.0/instances", "List instances",
                 query=(*LIST, "filter", "fields")),
        Endpoint("POST", "/1.0/instances", "Create an instance (or import a backup tarball)",
                 "async", INSTANCES_POST, raw_body=True),
        Endpoint("GET", base, "Show an instance", query=("recursion", "fields")),
        Endpoint("PUT", base, "Replace an instance's config, or restore a snapshot", "async",
                 INSTANCE_PUT),
        Endpoint("PATCH", base, "Merge into an instance's config", "async", INSTANCE_PUT),
        Endpoint("POST", base, "Rename an instance", "async", RENAME),
        Endpoint("DELETE", base, "Delete an instance", "async", query=("force",)),
        Endpoint("GET", f"{base}/state", "Instance state (processes, memory, network...)"),
        Endpoint("PUT", f"{base}/state", "Start, stop, restart, freeze or unfreeze", "async",
                 STATE_PUT),
        Endpoint("POST", f"{base}/exec", "Run a command (websockets or recorded output)",
                 "async", EXEC_POST),
        Endpoint("GET", f"{base}/console", "Console log", "text"),
        Endpoint("DELETE", f"{base}/console", "Clear the console log"),
        Endpoint("POST", f"{base}/console", "Attach to the console (websockets)", "async",
                 CONSOLE_POST, body_required=False),
        Endpoint("GET", f"{base}/logs", "List log files"),
        Endpoint("GET", f"{base}/logs/{{file}}", "A log file", "text"),
        Endpoint("GET", f"{base}/logs/exec-output", "List recorded exec outputs"),
        Endpoint("GET", f"{base}/logs/exec-output/{{file}}", "A recorded exec output", "text"),
        Endpoint("DELETE", f"{base}/logs/exec-output/{{file}}", "Delete a recorded output"),
    ]


FILE_HEADERS = ("X-LXD-uid", "X-LXD-gid", "X-LXD-mode", "X-LXD-type", "X-LXD-write",
                "X-LXD-modify-perm")


def file_endpoints() -> list[Endpoint]:
    path = "/1.0/instances/{name}/files"
    return [
        Endpoint("GET", path, "A file's bytes, a symlink's target or a directory's entries",
                 "raw", query=("path",)),
        Endpoint("HEAD", path, "A file's type, owner and mode (X-LXD-* headers)", "headers",
                 query=("path",)),
        Endpoint("POST", path, "Write a file, make a directory or a symlink", body={
            "type": "string", "format": "binary"}, query=("path",), headers=FILE_HEADERS),
        Endpoint("DELETE", path, "Delete a file, a symlink or an empty directory",
                 query=("path",)),
    ]


def snapshot_endpoints() -> list[Endpoint]:
    base = "/1.0/instances/{name}/snapshots"
    return [
        Endpoint("GET", base, "List snapshots", query=("recursion",)),
        Endpoint("POST", base, "Create a snapshot", "async", SNAPSHOT_POST,
                 body_required=False),
        Endpoint("GET", f"{base}/{{snap}}", "Show a snapshot"),
        Endpoint("POST", f"{base}/{{snap}}", "Rename a snapshot", "async", RENAME),
        Endpoint("PUT", f"{base}/{{snap}}", "Set a snapshot's expiry", "async", SNAPSHOT_PUT),
        Endpoint("PATCH", f"{base}/{{snap}}", "Set a snapshot's expiry", "async",
                 SNAPSHOT_PUT),
        Endpoint("DELETE", f"{base}/{{snap}}", "Delete a snapshot", "async"),
    ]


def backup_endpoints() -> list[Endpoint]:
    base = "/1.0/instances/{name}/backups"
    return [
        Endpoint("GET", base, "List backups", query=("recursion",)),
        Endpoint("POST", base, "Create a backup tarball", "async", BACKUP_POST,
                 body_required=False),
        Endpoint("GET", f"{base}/{{backup}}", "Show a backup"),
        Endpoint("POST", f"{base}/{{backup}}", "Rename a backup", "async",
                 BACKUP_RENAME),
        Endpoint("DELETE", f"{base}/{{backup}}", "Delete a backup", "async"),
        Endpoint("GET", f"{base}/{{backup}}/export", "Download a backup tarball", "raw"),
    ]


def image_endpoints() -> list[Endpoint]:
    base = "/1.0/images/{fingerprint}"
    return [
        Endpoint("GET", "/1.0/images", "List images", query=(*LIST, "filter")),
        Endpoint("POST", "/1.0/images", "Upload, pull or build an image", "async",
                 IMAGES_POST, raw_body=True),
        Endpoint("GET", "/1.0/images/aliases", "List image aliases", query=("recursion",)),
        Endpoint("POST", "/1.0/images/aliases", "Create an image alias", "created",
                 ALIASES_POST),
        Endpoint("GET", "/1.0/images/aliases/{name}", "Show an image alias"),
        Endpoint("PUT", "/1.0/images/aliases/{name}", "Point an image alias at an image",
                 body=ALIAS_PUT),
        Endpoint("PATCH", "/1.0/images/aliases/{name}", "Point an image alias at an image",
                 body=ALIAS_PUT),
        Endpoint("POST", "/1.0/images/aliases/{name}", "Rename an image alias", "created",
                 ALIAS_RENAME),
        Endpoint("DELETE", "/1.0/images/aliases/{name}", "Delete an image alias"),
        Endpoint("GET", base, "Show an image"),
        Endpoint("PUT", base, "Replace an image's properties and flags", body=IMAGE_PUT),
        Endpoint("PATCH", base, "Merge into an image's properties and flags",
                 body=IMAGE_PUT),
        Endpoint("DELETE", base, "Delete an unused image", "async"),
        Endpoint("GET", f"{base}/export", "Download the unified LXD image tarball", "raw"),
        Endpoint("POST", f"{base}/refresh", "Refresh an image from its server", "async"),
        Endpoint("POST", f"{base}/secret", "An image secret (LXD's client asks for it before "
                 "copying an image between projects)", "async"),
    ]


def profile_endpoints() -> list[Endpoint]:
    base = "/1.0/profiles/{name}"
    return [
        Endpoint("GET", "/1.0/profiles", "List profiles", query=LIST),
        Endpoint("POST", "/1.0/profiles", "Create a profile", "created", PROFILES_POST),
        Endpoint("GET", base, "Show a profile"),
        Endpoint("PUT", base, "Replace a profile", body=PROFILE_PUT),
        Endpoint("PATCH", base, "Merge into a profile", body=PROFILE_PUT),
        Endpoint("POST", base, "Rename a profile", "created", RENAME),
        Endpoint("DELETE", base, "Delete an unused profile"),
    ]


def network_endpoints() -> list[Endpoint]:
    base = "/1.0/networks/{name}"
    return [
        Endpoint("GET", "/1.0/networks", "List networks", query=LIST),
        Endpoint("POST", "/1.0/networks", "Create a managed bridge", "created",
                 NETWORKS_POST),
        Endpoint("GET", base, "Show a network"),
        Endpoint("PUT", base, "Replace a network's config", body=CONFIG_PUT),
        Endpoint("PATCH", base, "Merge into a network's config", body=CONFIG_PUT),
        Endpoint("POST", base, "Rename a network", body=RENAME),
        Endpoint("DELETE", base, "Delete an unused network"),
        Endpoint("GET", f"{base}/leases", "DHCP leases"),
        Endpoint("GET", f"{base}/state", "Link state and counters"),
        Endpoint("GET", f"{base}/forwards", "List network forwards", query=("recursion",)),
        Endpoint("POST", f"{base}/forwards", "Create a network forward (DNAT from a host "
                 "address)", "created", FORWARDS_POST),
        Endpoint("GET", f"{base}/forwards/{{address}}", "Show a network forward"),
        Endpoint("PUT", f"{base}/forwards/{{address}}", "Replace a network forward",
                 body=FORWARD_PUT),
        Endpoint("PATCH", f"{base}/forwards/{{address}}", "Merge into a network forward",
                 body=FORWARD_PUT),
        Endpoint("DELETE", f"{base}/forwards/{{address}}", "Delete a network forward"),
    ]


def storage_endpoints() -> list[Endpoint]:
    base = "/1.0/storage-pools/{name}"
    return [
        Endpoint("GET", "/1.0/storage-pools", "List storage pools", query=("recursion",)),
        Endpoint("POST", "/1.0/storage-pools", "Create a storage pool", "created", POOLS_POST),
        Endpoint("GET", base, "Show a storage pool"),
        Endpoint("PUT", base, "Replace a pool's description and config", body=CONFIG_PUT),
        Endpoint("PATCH", base, "Merge into a pool's description and config",
                 body=CONFIG_PUT),
        Endpoint("DELETE", base, "Delete an unused storage pool"),
        Endpoint("GET", f"{base}/resources", "Space used and available"),
        Endpoint("GET", f"{base}/volumes", "List volumes (instances', custom volumes and "
                 "their snapshots)", query=("recursion",)),
        Endpoint("POST", f"{base}/volumes", "Create or copy a custom volume (`type: custom`)",
                 "sync", VOLUMES_POST),
    ]


def volume_endpoints() -> list[Endpoint]:
    base = "/1.0/storage-pools/{name}/volumes/custom"
    vol, snaps = f"{base}/{{volume}}", f"{base}/{{volume}}/snapshots"
    snap = f"{snaps}/{{snapshot}}"
    return [
        Endpoint("GET", base, "List custom volumes and their snapshots", query=("recursion",)),
        Endpoint("POST", base, "Create a custom volume (sync), or copy one (`source`, async)",
                 "sync", VOLUMES_POST),
        Endpoint("GET", vol, "Show a custom volume and what uses it"),
        Endpoint("PUT", vol, "Replace a volume's config and description, or restore a "
                 "snapshot (`restore`)", body=VOLUME_PUT),
        Endpoint("PATCH", vol, "Merge into a volume's config", body=VOLUME_PUT),
        Endpoint("POST", vol, "Rename a volume not mounted by a running instance (201), or "
                 "move it to another pool (`pool`: an operation)", "created", VOLUME_RENAME),
        Endpoint("DELETE", vol, "Delete a volume no instance or profile uses"),
        Endpoint("GET", snaps, "List a volume's snapshots", query=("recursion",)),
        Endpoint("POST", snaps, "Take a read-only snapshot", "async", VOLUME_SNAPSHOT_POST,
                 body_required=False),
        Endpoint("GET", snap, "Show a volume snapshot"),
        Endpoint("PUT", snap, "Set a volume snapshot's description", body=VOLUME_SNAPSHOT_PUT),
        Endpoint("PATCH", snap, "Set a volume snapshot's description",
                 body=VOLUME_SNAPSHOT_PUT),
        Endpoint("POST", snap, "Rename a volume snapshot", "async", RENAME),
        Endpoint("DELETE", snap, "Delete a volume snapshot", "async"),
    ]


def operation_endpoints() -> list[Endpoint]:
    base = "/1.0/operations/{id}"
    return [
        Endpoint("GET", "/1.0/operations", "List operations by status", query=LIST),
        Endpoint("GET", base, "Show an operation"),
        Endpoint("DELETE", base, "Cancel an operation"),
        Endpoint("GET", f"{base}/wait", "Wait for an operation to finish", query=("timeout",)),
        Endpoint("GET", f"{base}/websocket", "An operation's stream (websocket)", "websocket",
                 query=("secret",)),
    ]


def project_endpoints() -> list[Endpoint]:
    base = "/1.0/projects/{name}"
    return [
        Endpoint("GET", "/1.0/projects", "List projects", query=("recursion",)),
        Endpoint("POST", "/1.0/projects", "Create a project (features.*, user.* keys)",
                 "created", PROJECTS_POST),
        Endpoint("GET", base, "Show a project"),
        Endpoint("PUT", base, "Replace a project's description and config", body=CONFIG_PUT),
        Endpoint("PATCH", base, "Merge into a project's description and config",
                 body=CONFIG_PUT),
        Endpoint("POST", base, "Rename an empty project (not `default`)", "async",
                 BACKUP_RENAME),
        Endpoint("DELETE", base, "Delete an empty project (not `default`)"),
        Endpoint("GET", f"{base}/state", "A project's resource usage"),
    ]


CERTIFICATES_POST = obj(name=STR, type=STR, certificate=STR, trust_token=STR, password=STR,
                        token=BOOL, restricted=BOOL, projects=STRINGS)
CERTIFICATE_PUT = obj(name=STR, type=STR, restricted=BOOL,
                      projects=STRINGS)


def certificate_endpoints() -> list[Endpoint]:
    base = "/1.0/certificates/{fingerprint}"
    return [
        Endpoint("GET", "/1.0/certificates", "List trusted client certificates",
                 query=("recursion",)),
        Endpoint("POST", "/1.0/certificates", "Trust a certificate, make a trust token "
                 "(202 with the token operation), or join with a token", "created",
                 CERTIFICATES_POST),
        Endpoint("GET", base, "Show a trusted certificate"),
        Endpoint("PUT", base, "Replace a certificate's name, restricted and projects",
                 body=CERTIFICATE_PUT),
        Endpoint("PATCH", base, "Merge into a certificate's name, restricted and projects",
                 body=CERTIFICATE_PUT),
        Endpoint("DELETE", base, "Remove a trusted certificate"),
    ]


def endpoints() -> list[Endpoint]:
    """Every documented endpoint, area by area."""
    return [*server_endpoints(), *instance_endpoints(), *file_endpoints(), *snapshot_endpoints(),
            *backup_endpoints(), *image_endpoints(), *profile_endpoints(),
            *network_endpoints(), *storage_endpoints(), *volume_endpoints(),
            *operation_endpoints(),
            *project_endpoints(), *certificate_endpoints()]


# -- the document --------------------------------------------------------------------------

QUERY_PARAMETERS: dict[str, Schema] = {
    "project": {"description": "Project (only `default` exists)",
                "schema": {"type": "string", "default": "default"}},
    "recursion": {"description": "0: URLs, 1: objects, 2: full objects",
                  "schema": {"type": "integer", "minimum": 0, "maximum": 2}},
    "all-projects": {"description": "List across all projects", "schema": BOOL},
    "fields": {"description": "With recursion=2: the costly state fields to include, "
                              "comma-separated (state.disk, state.network; empty: none); "
                              "also written `recursion=2;fields=...`",
               "schema": {"type": "string", "pattern": "^((state\\.disk|state\\.network)"
                                                       "(,(state\\.disk|state\\.network))*)?$"}},
    "filter": {"description": "LXD filter expression (`name eq web1 and status eq Running`)",
               "schema": STR},
    "force": {"description": "Stop a running instance first", "schema": BOOL},
    "timeout": {"description": "Seconds to wait (-1: forever)", "schema": INT},
    "type": {"description": "Comma-separated event types (lifecycle, operation, logging)",
             "schema": STR},
    "secret": {"description": "The stream's secret from the operation metadata",
               "schema": STR},
    "path": {"description": "Absolute path inside the instance", "required": True,
             "schema": STR},
}
HEADER_PARAMETERS: dict[str, Schema] = {
    "X-LXD-uid": {"description": "Owner uid inside the instance", "schema": INT},
    "X-LXD-gid": {"description": "Owner gid inside the instance", "schema": INT},
    "X-LXD-mode": {"description": "Octal mode (`0644`)", "schema": STR},
    "X-LXD-type": {"description": "file, directory or symlink (body: its target)",
                   "schema": {"type": "string", "enum": ["file", "directory", "symlink"]}},
    "X-LXD-write": {"description": "overwrite or append",
                    "schema": {"type": "string", "enum": ["overwrite", "append"]}},
    "X-LXD-modify-perm": {"description": "Which of uid,gid,mode to change on an existing file",
                          "schema": STR},
}


def envelope_schemas() -> dict[str, Schema]:
    """LXD's response envelopes (shared/api/response.go)."""
    common = {"type": STR, "status": STR, "status_code": INT, "operation": STR,
              "error_code": INT, "error": STR, "metadata": {}}
    return {
        "SyncResponse": obj(("type", "metadata"), **{
            **common, "type": {"type": "string", "enum": ["sync"]}}),
        "AsyncResponse": obj(("type", "operation", "metadata"), **{
            **common, "type": {"type": "string", "enum": ["async"]}}),
        "ErrorResponse": obj(("type", "error", "error_code"), **{
            **common, "type": {"type": "string", "enum": ["error"]}}),
    }


def json_content(schema: str) -> Schema:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}


def response_components() -> dict[str, Schema]:
    location = {"Location": {"description": "URL of the operation or the new object",
                             "schema": STR}}
    return {
        "Sync": {"description": "Synchronous result", "content": json_content("SyncResponse")},
        "Created": {"description": "Created", "headers": location,
                    "content": json_content("SyncResponse")},
        "Async": {"description": "Operation created", "headers": location,
                  "content": json_content("AsyncResponse")},
        "Error": {"description": "Error", "content": json_content("ErrorResponse")},
    }


def responses_for(kind: str) -> Schema:
    """The responses object of one endpoint; every endpoint may answer an error."""
    def ref(name: str) -> Schema:
        return {"$ref": f"#/components/responses/{name}"}
    binary = {"schema": {"type": "string", "format": "binary"}}
    by_kind: dict[str, Schema] = {
        "sync": {"200": ref("Sync")},
        "created": {"201": ref("Created")},
        "async": {"202": ref("Async")},
        "raw": {"200": {"description": "File contents",
                        "content": {"application/octet-stream": binary}}},
        "text": {"200": {"description": "Text", "content": {"text/plain": {"schema": STR}}}},
        "json": {"200": {"description": "A JSON document",
                         "content": {"application/json": {"schema": {"type": "object"}}}}},
        "headers": {"200": {"description": "Headers only"}},
        "websocket": {"101": {"description": "Switching to the websocket protocol"}},
        "error": {"501": ref("Error")},
    }
    return {**by_kind[kind], "default": ref("Error")}


def path_parameters(path: str) -> list[Schema]:
    return [{"name": name, "in": "path", "required": True, "schema": STR}
            for name in re.findall(r"{(\w+)}", path)]


def query_parameters(endpoint: Endpoint) -> list[Schema]:
    names = endpoint.query
    if endpoint.path.startswith("/1.0"):
        names = ("project", *names)
    query = [{"name": name, "in": "query", "required": False, **QUERY_PARAMETERS[name]}
             for name in names]
    return query + [{"name": name, "in": "header", "required": False,
                     **HEADER_PARAMETERS[name]} for name in endpoint.headers]


def request_body(endpoint: Endpoint) -> Schema:
    binary = endpoint.body == {"type": "string", "format": "binary"}
    content: Schema = {"application/octet-stream" if binary else "application/json": {
        "schema": endpoint.body}}
    if endpoint.raw_body:
        content["application/octet-stream"] = {
            "schema": {"type": "string", "format": "binary"}}
    return {"required": endpoint.body_required, "content": content}


def render_operation(endpoint: Endpoint) -> Schema:
    """The OpenAPI operation object of one endpoint."""
    operation: Schema = {
        "summary": endpoint.summary,
        "operationId": operation_id(endpoint),
        "tags": [tag_of(endpoint.path)],
        "parameters": path_parameters(endpoint.path) + query_parameters(endpoint),
        "responses": responses_for(endpoint.response),
    }
    if endpoint.body is not None:
        operation["requestBody"] = request_body(endpoint)
    return operation


def operation_id(endpoint: Endpoint) -> str:
    words = re.sub(r"[{}]", "", endpoint.path).strip("/").replace(".", "_")
    return f"{endpoint.method.lower()}_{re.sub(r'[^a-zA-Z0-9]+', '_', words) or 'root'}"


def tag_of(path: str) -> str:
    parts = path.strip("/").split("/")
    return parts[1] if len(parts) > 1 else "server"


def build_paths(table: list[Endpoint]) -> dict[str, Schema]:
    paths: dict[str, Schema] = {}
    for endpoint in table:
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = render_operation(
            endpoint)
    return paths


def build_spec(version: str = "0") -> Schema:
    """The whole OpenAPI 3.0 document."""
    return {
        "openapi": "3.0.3",
        "info": {"title": "lxmgr REST API", "version": version,
                 "description": "LXD's /1.0 API dialect served by lxmgrd on its unix socket. "
                                "Responses use LXD's envelopes: sync, async (202 with the "
                                "operation's URL in Location) and error."},
        "paths": build_paths(endpoints()),
        "components": {"schemas": envelope_schemas(), "responses": response_components()},
    }

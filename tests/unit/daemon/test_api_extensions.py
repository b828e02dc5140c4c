"""The api_extensions GET /1.0 advertises are pinned: each entry names the module implementing
it (lxmgr.daemon.routes.server.EXTENSIONS) and, here, the tests proving it. Adding an entry
means adding its code and its test; this file fails until both are named."""

from __future__ import annotations

import ast
import importlib
from functools import cache
from pathlib import Path

import pytest

from lxmgr.daemon.routes.server import API_EXTENSIONS, EXTENSIONS

ROOT = Path(__file__).resolve().parents[3]
EXT = "tests/integration/test_api_extensions.py"
FILES = "tests/kernel/test_files_api.py"
VOLS = "tests/integration/test_storage_volumes_api.py"
LXC_VOLS = "tests/system/test_lxc_storage_volumes.py::test_lxc_storage_volume_flow"
SCOPING = "tests/integration/test_project_scoping.py"
LIMITS = "tests/integration/test_project_limits.py"

# extension -> the tests that show it through the API, in the order GET /1.0 serves them
PROVEN_BY: dict[str, tuple[str, ...]] = {
    "instances": ("tests/integration/test_api.py::test_instance_lifecycle",),
    "container_full": (f"{EXT}::test_backups_rename_and_full_listing",
                       "tests/integration/test_snapshots_api.py::"
                       "test_snapshot_restore_copy_rename"),
    "instance_create_start": ("tests/integration/test_api.py::test_instance_lifecycle",),
    "instance_force_delete": (f"{EXT}::test_force_delete_stops_a_running_instance",),
    "operation_wait": ("tests/integration/test_api.py::test_instance_lifecycle",),
    "container_exec_user_group_cwd": ("tests/system/test_pylxd.py::test_pylxd_drives_lxmgr",),
    "container_exec_recording": (
        "tests/integration/test_api.py::test_exec_websockets_and_record_output",),
    "console": ("tests/integration/test_console_api.py::test_console_attach",),
    "operation_metadata_entity_url": (f"{EXT}::test_backups_rename_and_full_listing",),
    "network": ("tests/system/test_network.py::"
                "test_two_containers_get_leases_and_reach_each_other_by_name",),
    "network_leases": ("tests/system/test_network.py::"
                       "test_two_containers_get_leases_and_reach_each_other_by_name",),
    "network_state": ("tests/system/test_network.py::"
                      "test_two_containers_get_leases_and_reach_each_other_by_name",),
    "network_forward": ("tests/integration/test_network_forwards_api.py::"
                        "test_forward_lifecycle",
                        "tests/system/test_network_forwards.py::"
                        "test_forward_reaches_a_container_and_survives_a_restart"),
    "snapshot_expiry": ("tests/integration/test_snapshots_api.py::"
                        "test_snapshot_restore_copy_rename",
                        "tests/system/test_snapshots.py::"
                        "test_scheduled_snapshot_appears_and_expires"),
    "snapshot_expiry_creation": (f"{EXT}::test_snapshot_expiry_at_creation",),
    "snapshot_scheduling": ("tests/system/test_snapshots.py::"
                            "test_scheduled_snapshot_appears_and_expires",),
    "api_filtering": ("tests/integration/test_api.py::test_instance_lifecycle",
                      f"{EXT}::test_publish_compression_and_image_filter"),
    "container_backup": ("tests/system/test_lxc_client.py::test_lxc_drives_lxmgr",
                         f"{EXT}::test_backups_rename_and_full_listing"),
    "backup_compression_algorithm": (f"{EXT}::test_backups_rename_and_full_listing",),
    "storage": ("tests/integration/test_storage_api.py::test_dir_pool_lifecycle",),
    "image_compression_algorithm": (f"{EXT}::test_publish_compression_and_image_filter",),
    "metrics": ("tests/integration/test_metrics_api.py::test_metrics_of_a_running_container",),
    "projects": ("tests/integration/test_projects_api.py::test_list_and_show",
                 f"{SCOPING}::test_same_name_in_two_projects",
                 "tests/system/test_lxc_projects.py::test_lxc_project_flow",
                 "tests/system/test_pylxd_projects.py::test_pylxd_instance_in_a_project"),
    "projects_limits": (f"{LIMITS}::test_instance_counts", f"{LIMITS}::test_aggregate_memory"),
    "projects_restrictions": (f"{LIMITS}::test_restricted",),
    "projects_networks": (f"{SCOPING}::test_own_networks",),
    "projects_limits_disk": (f"{LIMITS}::test_disk_limit_needs_sizes",),
    "project_usage": (f"{LIMITS}::test_instance_counts",),
    "instance_all_projects": (f"{SCOPING}::test_same_name_in_two_projects",),
    "event_project": (f"{SCOPING}::test_same_name_in_two_projects",),
    "certificate_project": ("tests/integration/test_https.py::test_restricted_certificate",
                            "tests/system/test_lxc_projects.py::"
                            "test_lxc_restricted_certificate"),
    "image_source_project": (f"{SCOPING}::test_own_images",
                             "tests/system/test_lxc_projects.py::"
                             "test_lxc_all_projects_and_project_info"),
    "container_copy_project": (f"{SCOPING}::test_copy_between_projects",
                               "tests/system/test_lxc_projects.py::"
                               "test_lxc_all_projects_and_project_info"),
    "resources": (f"{EXT}::test_resources",
                  "tests/integration/test_storage_api.py::test_dir_pool_lifecycle"),
    "file_delete": (f"{FILES}::test_directories_symlinks_and_delete",),
    "file_append": (f"{FILES}::test_file_round_trip_with_owner_and_mode",),
    "file_symlinks": (f"{FILES}::test_directories_symlinks_and_delete",),
    "directory_manipulation": (f"{FILES}::test_directories_symlinks_and_delete",),
    "instance_file_head": (f"{FILES}::test_file_round_trip_with_owner_and_mode",),
    "instances_files_modify_permissions": (
        f"{FILES}::test_file_round_trip_with_owner_and_mode",),
    "certificate_token": ("tests/integration/test_https.py::"
                          "test_token_is_an_operation_until_used",),
    "explicit_trust_token": ("tests/integration/test_https.py::"
                             "test_token_join_reuse_and_removal",
                             "tests/system/test_pylxd.py::"
                             "test_pylxd_over_https_with_a_trust_token"),
    "instances_state_selective_recursion": (
        "tests/integration/test_api.py::test_instance_lifecycle",),
    "container_host_shutdown_timeout": (
        "tests/system/test_host_shutdown.py::test_shutdown_in_priority_order_then_restore",),
    "container_stop_priority": (
        "tests/system/test_host_shutdown.py::test_shutdown_in_priority_order_then_restore",),
    "container_protection_delete": (
        "tests/system/test_protection.py::test_protected_instance_is_not_deleted",
        "tests/system/test_protection.py::test_lxc_client_shows_lxd_message"),
    "id_map": ("tests/kernel/test_idmap.py::test_size_alone_is_honoured_with_a_found_base",
               "tests/kernel/test_raw_idmap.py::test_host_uid_1000_is_uid_1000_inside"),
    "id_map_base": ("tests/kernel/test_idmap.py::test_base_and_size_are_the_map_of_init",),
    "storage_api_volume_snapshots": (f"{VOLS}::test_volume_lifecycle", LXC_VOLS),
    "storage_api_volume_rename": (f"{VOLS}::test_volume_lifecycle", LXC_VOLS),
    "storage_api_local_volume_handling": (f"{VOLS}::test_volume_lifecycle",
                                          f"{VOLS}::test_move_to_another_pool", LXC_VOLS),
    "storage_volumes_created_at": ("tests/system/test_pylxd.py::"
                                   "test_pylxd_custom_volumes_and_snapshots",),
}

# Deliberately not advertised, and why (LXD's doc/api-extensions.md):
NOT_ADVERTISED = {
    # comma-separated schedules and @startup: lxmgr.model.snapshot refuses both
    "snapshot_schedule_aliases",
}


def test_the_list_is_pinned() -> None:
    assert API_EXTENSIONS == list(PROVEN_BY)
    assert not NOT_ADVERTISED & set(API_EXTENSIONS)


@pytest.mark.parametrize("name", API_EXTENSIONS)
def test_each_entry_names_the_module_implementing_it(name: str) -> None:
    module = importlib.import_module(EXTENSIONS[name])
    assert module.__file__ and Path(module.__file__).is_relative_to(ROOT / "lxmgr")


@cache
def _functions(path: str) -> frozenset[str]:
    tree = ast.parse((ROOT / path).read_text())
    return frozenset(node.name for node in tree.body
                     if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef))


@pytest.mark.parametrize("name", API_EXTENSIONS)
def test_each_entry_names_tests_that_exist(name: str) -> None:
    for node in PROVEN_BY[name]:
        path, _, function = node.partition("::")
        assert function.startswith("test_") and function in _functions(path), node

"""GET /1.0/metrics against a real running container: LXD's families for the instance, in a
text a Prometheus scrape accepts (checked with our strict parser, and with prometheus_client's
when it is installed)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from lxmgr.daemon.keys import MANAGER
from tests.integration.conftest import call, wait
from tests.integration.test_api import launch
from tests.unit.api.test_metrics import parse_exposition

pytestmark = pytest.mark.kernel

IDENT = {"name": "mon1", "project": "default", "type": "container"}


@pytest.fixture
async def bridge(api) -> AsyncIterator[str]:  # type: ignore[no-untyped-def]
    """A test bridge (no NAT) of our own; our instances and the bridge go afterwards."""
    name = f"lxmt{uuid.uuid4().hex[:8]}"
    await call(api, "POST", "/1.0/networks",
               {"name": name, "config": {"ipv4.address": "auto", "ipv4.nat": "false"}},
               status=201)
    try:
        yield name
    finally:
        manager = api.server.app[MANAGER]
        for instance in await asyncio.to_thread(manager.list):
            await asyncio.to_thread(manager.delete, instance, force=True)
        await call(api, "DELETE", f"/1.0/networks/{name}")


def _samples(families, name: str) -> list:  # type: ignore[no-untyped-def]
    return [(labels, value) for labels, value in families[name]["samples"]
            if labels.get("name") == IDENT["name"]]


async def _scrape(api) -> str:  # type: ignore[no-untyped-def]
    resp = await api.get("/1.0/metrics")
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return await resp.text()


async def test_metrics_of_a_running_container(api, bridge: str) -> None:  # type: ignore[no-untyped-def]
    info = (await call(api, "GET", "/1.0"))["metadata"]
    assert "metrics" in info["api_extensions"]
    assert "lxd_procs_total" not in await _scrape(api)  # nothing runs: no instance metrics
    await launch(api, "mon1", config={"limits.memory": "256MiB"},
                 devices={"eth0": {"type": "nic", "network": bridge, "name": "eth0"}})

    text = await _scrape(api)
    families = parse_exposition(text)
    assert families["lxd_instances"]["samples"][0] == (
        {"project": "default", "type": "container"}, 1)
    procs = _samples(families, "lxd_procs_total")
    assert len(procs) == 1 and procs[0][0] == IDENT and procs[0][1] > 0
    assert families["lxd_procs_total"]["type"] == "gauge"

    cpu = _samples(families, "lxd_cpu_seconds_total")
    assert {labels["mode"] for labels, _ in cpu} == {"user", "system"}
    assert sum(value for _, value in cpu) > 0 and families["lxd_cpu_seconds_total"][
        "type"] == "counter"
    assert _samples(families, "lxd_cpu_effective_total")[0][1] >= 1

    total = _samples(families, "lxd_memory_MemTotal_bytes")[0][1]
    assert total == 256 << 20
    available = _samples(families, "lxd_memory_MemAvailable_bytes")[0][1]
    assert 0 < available <= total
    assert _samples(families, "lxd_memory_RSS_bytes")[0][1] > 0
    assert _samples(families, "lxd_memory_OOM_kills_total")[0][1] == 0

    fs = _samples(families, "lxd_filesystem_size_bytes")
    assert fs and fs[0][0]["mountpoint"] == "/" and fs[0][1] > 0
    rx = _samples(families, "lxd_network_receive_bytes_total")
    assert sorted(labels["device"] for labels, _ in rx) == ["eth0", "lo"]  # as LXD lists
    _check_with_prometheus_client(text)


async def test_stopped_instances_have_no_metrics(api) -> None:  # type: ignore[no-untyped-def]
    await launch(api, "mon1")
    await wait(api, await call(api, "PUT", "/1.0/instances/mon1/state",
                               {"action": "stop", "force": True}, status=202))
    families = parse_exposition(await _scrape(api))
    assert families["lxd_instances"]["samples"][0][1] == 1
    assert all(labels.get("name") != "mon1" for fam in families.values()
               for labels, _ in fam["samples"])


def _check_with_prometheus_client(text: str) -> None:
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        return  # the strict parser above already checked the text
    names = {fam.name for fam in text_string_to_metric_families(text)}
    # prometheus_client drops a counter family's _total suffix.
    assert {"lxd_procs_total", "lxd_cpu_seconds", "lxd_memory_MemTotal_bytes"} <= names

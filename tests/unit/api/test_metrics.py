"""The Prometheus exposition of instance metrics: LXD's names, labels, escaping, HELP/TYPE.

`parse_exposition` is a strict parser of the 0.0.4 text format (the integration test uses it
too); when prometheus_client is installed its parser must agree.
"""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from lxmgr.api.metrics import (
    CONTENT_TYPE,
    FAMILIES,
    MEMORY_FIELDS,
    CpuTime,
    DiskIO,
    Filesystem,
    InstanceMetrics,
    NetworkCounters,
    escape_label_value,
    format_value,
    render_metrics,
    render_sample,
)

_SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: -?\d+)?$")
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


def parse_exposition(text: str) -> dict[str, dict[str, Any]]:
    """family -> {"type", "help", "samples": [(labels, value)]}; AssertionError if malformed.

    Strict: HELP and TYPE at most once and before the family's samples, a family's samples
    contiguous, no duplicate series, only the three escapes in label values.
    """
    assert text.endswith("\n"), "the exposition ends with a line feed"
    families: dict[str, dict[str, Any]] = {}
    closed: set[str] = set()
    current: str | None = None
    series: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for line in text[:-1].split("\n"):
        name = _parse_line(line, families, series)
        if name is None:
            continue
        if name != current:
            assert name not in closed, f"family {name} is not contiguous"
            if current is not None:
                closed.add(current)
            current = name
    return families


def _parse_line(line: str, families: dict[str, dict[str, Any]],
                series: set[tuple[str, tuple[tuple[str, str], ...]]]) -> str | None:
    if line.startswith("# HELP ") or line.startswith("# TYPE "):
        kind, name, rest = line[2:6], *line[7:].split(" ", 1)
        fam = families.setdefault(name, {"samples": []})
        key = kind.lower()
        assert key not in fam, f"second {kind} for {name}"
        assert not fam["samples"], f"{kind} after samples of {name}"
        if kind == "TYPE":
            assert rest in ("counter", "gauge", "histogram", "summary", "untyped"), line
        fam[key] = rest
        return name
    if line.startswith("#") or not line:
        return None
    match = _SAMPLE_RE.match(line)
    assert match, f"malformed sample line: {line!r}"
    name, label_text, value = match.groups()
    labels = _parse_labels(label_text or "")
    key = (name, tuple(sorted(labels.items())))
    assert key not in series, f"duplicate series {key}"
    series.add(key)
    families.setdefault(name, {"samples": []})["samples"].append((labels, float(value)))
    return name


def _parse_labels(text: str) -> dict[str, str]:
    labels: dict[str, str] = {}
    pos = 0
    while pos < len(text):
        match = _LABEL_RE.match(text, pos)
        assert match, f"malformed labels at {text[pos:]!r}"
        name, raw, _sep = match.groups()
        assert name not in labels, f"duplicate label {name}"
        labels[name] = re.sub(r'\\[\\"n]', lambda m: _UNESCAPE[m.group(0)], raw)
        pos = match.end()
    return labels


def sample(name: str = "web1", **kwargs: Any) -> InstanceMetrics:
    """A fully populated instance sample."""
    base: dict[str, Any] = {
        "cpu": (CpuTime("0", "user", 12.5), CpuTime("0", "system", 3.25)),
        "cpus": 4,
        "memory": {"MemTotal": 1 << 30, "MemAvailable": 900 << 20, "RSS": 50 << 20,
                   "Swap": 0, "Cached": 10 << 20},
        "oom_kills": 0,
        "disks": (DiskIO("sda", 4096, 1, 8192, 2),),
        "filesystems": (Filesystem("overlay", "/", "overlay", 10 << 30, 5 << 30, 6 << 30),),
        "networks": (NetworkCounters("eth0", receive_bytes=1500, receive_packets=3,
                                     transmit_bytes=700, transmit_packets=2),),
        "processes": 9,
    }
    base.update(kwargs)
    return InstanceMetrics(name, **base)


def test_families_have_lxd_names_and_counters_end_in_total() -> None:
    names = [f.name for f in FAMILIES]
    assert len(names) == len(set(names))
    assert all(n.startswith("lxd_") for n in names)
    for fam in FAMILIES:
        if fam.kind == "counter":
            assert fam.name.endswith("_total"), fam.name
        if fam.name.endswith("_bytes"):
            assert fam.kind == "gauge", fam.name
    for name in ("lxd_cpu_seconds_total", "lxd_memory_MemTotal_bytes",
                 "lxd_memory_MemAvailable_bytes", "lxd_memory_RSS_bytes",
                 "lxd_memory_Swap_bytes", "lxd_network_receive_bytes_total",
                 "lxd_network_transmit_bytes_total", "lxd_filesystem_size_bytes",
                 "lxd_procs_total", "lxd_disk_read_bytes_total", "lxd_memory_OOM_kills_total"):
        assert name in names


def test_render_one_instance() -> None:
    text = render_metrics([sample()])
    families = parse_exposition(text)
    cpu = families["lxd_cpu_seconds_total"]
    assert cpu["type"] == "counter"
    assert cpu["help"] == "The total number of CPU time used in seconds."
    assert cpu["samples"] == [
        ({"cpu": "0", "mode": "user", "name": "web1", "project": "default",
          "type": "container"}, 12.5),
        ({"cpu": "0", "mode": "system", "name": "web1", "project": "default",
          "type": "container"}, 3.25)]
    assert families["lxd_procs_total"]["type"] == "gauge"
    assert families["lxd_procs_total"]["samples"][0][1] == 9
    assert families["lxd_memory_MemTotal_bytes"]["samples"][0][1] == 1 << 30
    rx = families["lxd_network_receive_bytes_total"]["samples"][0]
    assert rx == ({"device": "eth0", "name": "web1", "project": "default",
                   "type": "container"}, 1500)
    fs = families["lxd_filesystem_avail_bytes"]["samples"][0][0]
    assert fs["mountpoint"] == "/" and fs["fstype"] == "overlay" and fs["device"] == "overlay"
    assert 'lxd_procs_total{name="web1",project="default",type="container"} 9\n' in text


def test_help_and_type_once_per_family_with_many_instances() -> None:
    text = render_metrics([sample("a"), sample("b"), sample("c")],
                          {("default", "container"): 4, ("default", "virtual-machine"): 0})
    for fam in FAMILIES:
        if fam.name.startswith("lxd_memory_") and fam.name not in text:
            continue
        assert text.count(f"# HELP {fam.name} ") == 1, fam.name
        assert text.count(f"# TYPE {fam.name} ") == 1, fam.name
    families = parse_exposition(text)
    assert [s[0]["name"] for s in families["lxd_procs_total"]["samples"]] == ["a", "b", "c"]
    assert families["lxd_instances"]["samples"] == [
        ({"project": "default", "type": "container"}, 4),
        ({"project": "default", "type": "virtual-machine"}, 0)]


def test_families_follow_lxd_order_and_omit_unmeasured() -> None:
    text = render_metrics([InstanceMetrics("bare", processes=1)])
    assert text == ("# HELP lxd_procs_total The number of running processes.\n"
                    "# TYPE lxd_procs_total gauge\n"
                    'lxd_procs_total{name="bare",project="default",type="container"} 1\n')
    order = [line.split()[2] for line in render_metrics([sample()]).splitlines()
             if line.startswith("# TYPE")]
    assert order == [f.name for f in FAMILIES if f.name in order]
    assert render_metrics([]) == ""


@pytest.mark.parametrize("raw,escaped", [
    ("plain", "plain"),
    ('say "hi"', 'say \\"hi\\"'),
    ("back\\slash", "back\\\\slash"),
    ("two\nlines", "two\\nlines"),
    ("\\n literally", "\\\\n literally"),
])
def test_label_values_are_escaped(raw: str, escaped: str) -> None:
    assert escape_label_value(raw) == escaped
    text = render_metrics([InstanceMetrics("c1", processes=1,
                                           networks=(NetworkCounters(raw),))])
    families = parse_exposition(text)
    assert families["lxd_network_receive_bytes_total"]["samples"][0][0]["device"] == raw


def test_invalid_names_are_refused() -> None:
    with pytest.raises(ValueError, match="label name"):
        render_sample("lxd_x", {"bad-name": "v"}, 1)
    with pytest.raises(ValueError, match="label name"):
        render_sample("lxd_x", {"__reserved": "v"}, 1)
    with pytest.raises(ValueError, match="memory metric"):
        render_metrics([InstanceMetrics("c1", memory={"Bogus": 1})])


@pytest.mark.parametrize("value,text", [
    (0, "0"), (7, "7"), (1 << 62, str(1 << 62)), (2.0, "2"), (0.25, "0.25"),
    (1e20, "1e+20"), (float("nan"), "NaN"), (float("inf"), "+Inf"), (float("-inf"), "-Inf"),
])
def test_values(value: float, text: str) -> None:
    assert format_value(value) == text
    parsed = float(text)
    assert (math.isnan(parsed) and math.isnan(value)) or parsed == value


def test_every_memory_field_renders() -> None:
    memory = {key: i for i, key in enumerate(MEMORY_FIELDS)}
    families = parse_exposition(render_metrics([InstanceMetrics("m", memory=memory)]))
    for key, value in memory.items():
        assert families[f"lxd_memory_{key}_bytes"]["samples"][0][1] == value


def test_strict_parser_rejects_malformed_text() -> None:
    good = render_metrics([sample("a"), sample("b")])
    with pytest.raises(AssertionError, match="second HELP"):
        parse_exposition(good + "# HELP lxd_procs_total again\n")
    with pytest.raises(AssertionError, match="not contiguous"):
        parse_exposition(good + 'lxd_cpu_effective_total{name="z"} 1\n')
    with pytest.raises(AssertionError, match="malformed labels"):
        parse_exposition('x{a="unterminated} 1\n')
    with pytest.raises(AssertionError, match="duplicate series"):
        parse_exposition('x{a="1"} 1\nx{a="1"} 2\n')


def test_prometheus_client_parser_agrees() -> None:
    parser = pytest.importorskip("prometheus_client.parser")
    text = render_metrics([sample("a"), sample('we"ird\\na\nme')],
                          {("default", "container"): 2})
    ours = parse_exposition(text)
    theirs = {fam.name: fam for fam in parser.text_string_to_metric_families(text)}
    for name, fam in ours.items():
        # prometheus_client names a counter family without its _total suffix.
        key = name.removesuffix("_total") if fam["type"] == "counter" else name
        assert theirs[key].type == fam["type"] and theirs[key].documentation == fam["help"]
        assert [(s.labels, s.value) for s in theirs[key].samples] == fam["samples"]


def test_content_type_is_prometheus_text_0_0_4() -> None:
    assert CONTENT_TYPE.startswith("text/plain; version=0.0.4")

"""LXD image templates: real lxc-ci/distrobuilder templates render as in LXD, the sandbox holds,
and writes stay inside the instance rootfs (every "host" file here is a canary in tmp_path)."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from lxmgr.errors import InvalidConfig
from lxmgr.images import templates_render
from lxmgr.images.templates import apply_templates, render_template, translate_pongo2
from lxmgr.model.image import TemplateContext, parse_templates

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="chowns files to other ids")

# distrobuilder generators/*.go, as shipped in images.linuxcontainers.org images
HOSTNAME_TPL = "{{ container.name }}\n"
HOSTS_TPL = """127.0.0.1\tlocalhost
127.0.1.1\t{{ container.name }}

# The following lines are desirable for IPv6 capable hosts
::1     localhost ip6-localhost ip6-loopback
"""
META_TPL = """instance-id: {{ container.name }}
local-hostname: {{ container.name }}
{{ config_get("user.meta-data", "") }}
"""
USER_TPL = """{%- if config_get("cloud-init.user-data", properties.default) == properties.default -%}
{{ config_get("user.user-data", properties.default) }}
{%- else -%}
{{- config_get("cloud-init.user-data", properties.default) }}
{%- endif %}
"""  # noqa: E501 - verbatim from distrobuilder
VENDOR_TPL = USER_TPL.replace("user-data", "vendor-data")
NETWORK_TPL = """{%- if config_get("cloud-init.network-config", "") == "" -%}
{%- if config_get("user.network-config", "") == "" -%}
version: 1
config:
  - type: physical
    name: {% if instance.type == "virtual-machine" %}enp5s0{% else %}eth0{% endif %}
    subnets:
      - type: dhcp
        control: auto
{%- else -%}
{{- config_get("user.network-config", "") -}}
{%- endif -%}
{%- else -%}
{{- config_get("cloud-init.network-config", "") -}}
{%- endif %}
"""
# lxc-ci images/fedora.yaml (older cloud-images.ubuntu.com lxd templates read the same)
LINK_LOCAL_TPL = """{% if config_get("user.network-config", "") == "" %}version: 1
config:
  - type: physical
    name: eth0
    subnets:
      - type: {% if config_get("user.network_mode", "") == "link-local" %}manual{% else %}dhcp{% endif %}
        control: auto{% else %}{{ config_get("user.network-config", "") }}{% endif %}
"""  # noqa: E501 - verbatim from lxc-ci
DEFAULT = "#cloud-config\n{}"

CTX = TemplateContext("web1", "x86_64")


def render(source: str, ctx: TemplateContext = CTX, **kw: object) -> str:
    return render_template(source, ctx, **kw)  # type: ignore[arg-type]


def test_hostname_and_hosts() -> None:
    assert render(HOSTNAME_TPL) == "web1\n"
    assert render("{{ instance.name }}") == "web1"
    assert render(HOSTS_TPL).splitlines()[1] == "127.0.1.1\tweb1"
    assert render(HOSTS_TPL).endswith("ip6-loopback\n")


def test_cloud_init_meta_data() -> None:
    assert render(META_TPL) == "instance-id: web1\nlocal-hostname: web1\n\n"
    ctx = TemplateContext("web1", config={"user.meta-data": "public-keys: [k]\n\n"})
    assert render(META_TPL, ctx) == "instance-id: web1\nlocal-hostname: web1\npublic-keys: [k]\n"


@pytest.mark.parametrize(("tpl", "key"), [(USER_TPL, "user-data"), (VENDOR_TPL, "vendor-data")])
def test_cloud_init_user_and_vendor_data(tpl: str, key: str) -> None:
    props = {"default": DEFAULT}
    assert render(tpl, properties=props) == DEFAULT + "\n"
    legacy = TemplateContext("c", config={f"user.{key}": "#cloud-config\npackages: [vim]"})
    assert render(tpl, legacy, properties=props) == "#cloud-config\npackages: [vim]\n"
    new = TemplateContext("c", config={f"user.{key}": "old", f"cloud-init.{key}": "#new\n"})
    assert render(tpl, new, properties=props) == "#new\n"


def test_cloud_init_network_config() -> None:
    out = render(NETWORK_TPL)
    assert out.startswith("version: 1\nconfig:\n  - type: physical\n    name: eth0\n")
    assert out.endswith("control: auto\n")
    ctx = TemplateContext("c", config={"user.network-config": "version: 2\n"})
    assert render(NETWORK_TPL, ctx) == "version: 2\n"
    ctx = TemplateContext("c", config={"cloud-init.network-config": "version: 2\nx: 1"})
    assert render(NETWORK_TPL, ctx) == "version: 2\nx: 1\n"


def test_link_local_network_mode() -> None:
    assert "- type: dhcp\n" in render(LINK_LOCAL_TPL)
    ctx = TemplateContext("c", config={"user.network_mode": "link-local"})
    assert "- type: manual\n" in render(LINK_LOCAL_TPL, ctx)


def test_context_variables() -> None:
    ctx = TemplateContext("db", "aarch64", privileged=True, ephemeral=False,
                          config={"limits.cpu": "2"}, devices={"eth0": {"type": "nic"}})
    tpl = ("{{ trigger }} {{ path }} {{ container.architecture }} {{ instance.privileged }} "
           "{{ instance.ephemeral }} {{ config['limits.cpu'] }} {{ devices.eth0.type }} "
           "{{ properties.p }}")
    out = render(tpl, ctx, trigger="copy", path="/etc/x", properties={"p": "v"})
    assert out == "copy /etc/x aarch64 true false 2 nic v"


def test_missing_values_render_empty_like_pongo2() -> None:
    assert render("[{{ nope }}{{ container.nope.deeper }}{{ config_get('x') }}]") == "[]"
    assert render("{{ config_get('x', none) }}|{{ config.items }}") == "|"


def test_pongo2_spellings_are_translated() -> None:
    ctx = TemplateContext("c", devices={"eth1": {"type": "nic"}, "eth0": {"type": "disk"}})
    tpl = ("{% for name, dev in devices %}{{ forloop.Counter }}:{{ name }}={{ dev.type }}"
           "{% if not forloop.Last %},{% endif %}{% endfor %}")
    assert render(tpl, ctx) == "1:eth0=disk,2:eth1=nic"
    assert render('{{ nope|default:"x" }}{{ 1 && 1 }}{{ 0 || 2 }}') == "x12"
    assert render("{% for c in 'abc' reversed %}{{ c }}{% endfor %}") == "cba"
    assert render("{% verbatim %}{{ x }}{% endverbatim %}") == "{{ x }}"
    assert render("{% for x in nope %}{{ x }}{% empty %}none{% endfor %}") == "none"
    assert translate_pongo2('{{ a|join:", " }}') == '{{ a|join(", ") }}'


ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ config.__class__ }}",
    "{{ config['__class__'] }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ lipsum() }}",
    "{{ range(10) }}",
    "{{ config_get.__globals__ }}",
    "{{ 'x'.center(10) }}",
    "{{ 'x'|format(1) }}",
    "{{ '%s' % 1 }}",
    "{{ x|attr('__class__') }}",
    "{% include '/etc/passwd' %}",
    "{% include '../x' %}",
    "{% extends 'hosts.tpl' %}",
    "{% import 'x' as y %}",
    "{% from 'x' import y %}",
    "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
    "{% set x %}a{% endset %}",
    "{% for x in [1] recursive %}{{ loop([1]) }}{% endfor %}",
    "{{ x|_lxmgr_iter(true) }}",
    "{% if %}",
]


@pytest.mark.parametrize("source", ESCAPES)
def test_sandbox_escapes_fail_cleanly(source: str) -> None:
    with pytest.raises(InvalidConfig, match=r"^Invalid template 'evil.tpl': ") as info:
        render(source, name="evil.tpl")
    assert "\n" not in str(info.value)


BOMBS = [
    "{{ 'x' * 100000000 }}",
    "{{ [1] * 100000000 }}",
    "{{ 9 ** 99999 }}",
    "{% set a = 2 ** 4000 %}{{ a * a }}",
    "{% set a = 'xxxxxxxxxxxxxxxx' %}" + "{% set a = a ~ a %}" * 40 + "{{ a }}",
    "{% set a = 'xxxxxxxxxxxxxxxx' %}" + "{% set a = a + a %}" * 40 + "{{ a }}",
    "{% set a = [config_get('big')] %}" + "{% set a = a + a %}" * 40 + "{{ a|join }}",
    "{% set a = config_get('big') %}{% for x in a %}{% for y in a %}{% endfor %}{% endfor %}",
    "{% for x in config_get('big') %}{{ config_get('big') }}{% endfor %}",
]


@pytest.mark.parametrize("source", BOMBS)
def test_resource_bombs_are_capped(source: str) -> None:
    ctx = TemplateContext("c", config={"big": "y" * 10_000})
    with pytest.raises(InvalidConfig, match=r"over \d+|integer"):
        render(source, ctx)


def test_render_time_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(templates_render, "MAX_RENDER_SECONDS", -1.0)
    with pytest.raises(InvalidConfig, match="rendering took over"):
        render("{% for x in 'ab' %}{% endfor %}")


# apply_templates ----------------------------------------------------------------------------

METADATA = {
    "/etc/hostname": {"when": ["create", "copy"], "template": "hostname.tpl"},
    "/etc/hosts": {"when": ["create", "copy"], "template": "hosts.tpl"},
    "/var/lib/cloud/seed/nocloud-net/meta-data": {
        "when": ["create", "copy"], "create_only": False, "template": "cloud-init-meta.tpl",
        "properties": {"default": DEFAULT}},
    "/var/lib/cloud/seed/nocloud-net/user-data": {
        "when": ["create", "copy"], "template": "cloud-init-user.tpl",
        "properties": {"default": DEFAULT}},
    "/etc/motd": {"when": ["start"], "create_only": True, "template": "motd.tpl"},
}
TEMPLATE_FILES = {"hostname.tpl": HOSTNAME_TPL, "hosts.tpl": HOSTS_TPL,
                  "cloud-init-meta.tpl": META_TPL, "cloud-init-user.tpl": USER_TPL,
                  "motd.tpl": "{{ trigger }} {{ path }}\n"}


@pytest.fixture
def image(tmp_path: Path) -> Path:
    tdir = tmp_path / "image" / "templates"
    tdir.mkdir(parents=True)
    for name, text in TEMPLATE_FILES.items():
        (tdir / name).write_text(text)
    return tmp_path / "image"


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    (tmp_path / "rootfs" / "etc").mkdir(parents=True)
    return tmp_path / "rootfs"


@pytest.fixture
def host(tmp_path: Path) -> Path:
    """A stand-in for the host's /etc: canaries that must never change."""
    (tmp_path / "host" / "etc").mkdir(parents=True)
    for name in ("hostname", "hosts", "shadow"):
        (tmp_path / "host" / "etc" / name).write_text(f"host {name}\n")
    return tmp_path / "host"


def ids() -> dict[str, int]:
    return {"uid": os.getuid(), "gid": os.getgid()}


def apply(image: Path, rootfs: Path, trigger: str = "create", meta: dict | None = None,
          **kw: int) -> list[str]:
    rules = parse_templates(METADATA if meta is None else meta)
    return apply_templates(image, rules, trigger, rootfs, CTX, **(kw or ids()))


def assert_host_untouched(host: Path) -> None:
    for name in ("hostname", "hosts", "shadow"):
        assert (host / "etc" / name).read_text() == f"host {name}\n"
    assert sorted(p.name for p in (host / "etc").iterdir()) == ["hostname", "hosts", "shadow"]


def test_create_writes_the_rendered_files(image: Path, rootfs: Path) -> None:
    written = apply(image, rootfs)
    assert written == [p for p in METADATA if p != "/etc/motd"]
    assert (rootfs / "etc/hostname").read_text() == "web1\n"
    assert "127.0.1.1\tweb1\n" in (rootfs / "etc/hosts").read_text()
    seed = rootfs / "var/lib/cloud/seed/nocloud-net"
    assert (seed / "meta-data").read_text().startswith("instance-id: web1\n")
    assert (seed / "user-data").read_text() == DEFAULT + "\n"
    assert stat.S_IMODE(os.stat(rootfs / "etc/hostname").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(seed).st_mode) == 0o755


def test_triggers_filter_and_create_only(image: Path, rootfs: Path) -> None:
    assert apply(image, rootfs, "start") == ["/etc/motd"]
    assert (rootfs / "etc/motd").read_text() == "start /etc/motd\n"
    (rootfs / "etc/motd").write_text("mine\n")
    assert apply(image, rootfs, "start") == []
    assert (rootfs / "etc/motd").read_text() == "mine\n"
    assert apply(image, rootfs, "rename") == []
    assert not (rootfs / "etc/hostname").exists()


def test_replacing_keeps_the_existing_mode(image: Path, rootfs: Path) -> None:
    target = rootfs / "etc/hostname"
    target.write_text("old name that is longer\n")
    target.chmod(0o600)
    apply(image, rootfs, "copy")
    assert target.read_text() == "web1\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


@needs_root
def test_ownership_of_new_files_and_dirs(image: Path, rootfs: Path) -> None:
    (rootfs / "etc/hosts").write_text("old\n")
    os.chown(rootfs / "etc/hosts", 1000005, 1000006)
    apply(image, rootfs, uid=1000000, gid=1000000)
    for rel in ("etc/hostname", "var", "var/lib/cloud/seed", "var/lib/cloud/seed/nocloud-net",
                "var/lib/cloud/seed/nocloud-net/meta-data"):
        st = os.stat(rootfs / rel)
        assert (st.st_uid, st.st_gid) == (1000000, 1000000), rel
    assert os.stat(rootfs / "etc").st_uid == 0  # existing directories are left alone
    st = os.stat(rootfs / "etc/hosts")
    assert (st.st_uid, st.st_gid) == (1000005, 1000006)  # LXD rewrites in place


@needs_root
def test_permissions_extension(image: Path, rootfs: Path) -> None:
    meta = {"/etc/secret": {"when": ["create"], "template": "hostname.tpl", "uid": "33",
                            "gid": "34", "mode": "640"}}
    apply(image, rootfs, meta=meta, uid=1000000, gid=2000000)
    st = os.stat(rootfs / "etc/secret")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000033, 2000034, 0o640)


@pytest.mark.parametrize("link", ["ABS_HOST", "/etc", "../../..", "../host/etc"])
def test_symlinked_etc_stays_inside_the_rootfs(image: Path, rootfs: Path, host: Path,
                                               link: str) -> None:
    (rootfs / "etc").rmdir()
    target = str(host / "etc") if link == "ABS_HOST" else link
    os.symlink(target, rootfs / "etc")
    if link == "ABS_HOST":  # what the absolute link means inside the rootfs
        (rootfs / target.lstrip("/")).mkdir(parents=True)
    try:
        apply(image, rootfs, meta={k: v for k, v in METADATA.items() if k.startswith("/etc")})
    except InvalidConfig as err:  # e.g. etc -> /etc is a loop inside the rootfs
        assert "Failed to apply template" in str(err)
    assert_host_untouched(host)
    if link == "ABS_HOST":
        inside = rootfs / str(host / "etc").lstrip("/") / "hostname"
        assert inside.read_text() == "web1\n"
    if link == "../../..":
        assert (rootfs / "hostname").read_text() == "web1\n"


def test_dangling_symlinked_parent_is_refused(image: Path, rootfs: Path, host: Path) -> None:
    (rootfs / "etc").rmdir()
    os.symlink(host / "etc", rootfs / "etc")  # dangling inside the rootfs
    with pytest.raises(InvalidConfig, match="'/etc/hostname': '/etc' is a dangling symlink"):
        apply(image, rootfs)
    assert_host_untouched(host)


def test_symlinked_target_and_parent_stay_inside(image: Path, rootfs: Path,
                                                 host: Path) -> None:
    os.symlink(str(host / "etc" / "hostname"), rootfs / "etc" / "hostname")
    os.symlink(str(host), rootfs / "var")
    (rootfs / str(host).lstrip("/")).mkdir(parents=True)
    with pytest.raises(InvalidConfig, match="Failed to apply template 'hostname.tpl' to "
                                            "'/etc/hostname': the target is a dangling"):
        apply(image, rootfs)  # dangling inside the rootfs: refused, not followed to the host
    assert_host_untouched(host)
    (rootfs / "etc/hostname").unlink()
    apply(image, rootfs)
    assert_host_untouched(host)
    assert not (host / "lib").exists()
    seed = rootfs / str(host).lstrip("/") / "lib/cloud/seed/nocloud-net"
    assert (seed / "meta-data").read_text().startswith("instance-id: web1")


def test_target_that_is_a_directory_or_fifo(image: Path, rootfs: Path) -> None:
    (rootfs / "etc/hostname").mkdir()
    with pytest.raises(InvalidConfig, match="'/etc/hostname': the target is not a regular"):
        apply(image, rootfs)
    (rootfs / "etc/hostname").rmdir()
    os.mkfifo(rootfs / "etc/hostname")
    with pytest.raises(InvalidConfig, match="'/etc/hostname': the target is not a regular"):
        apply(image, rootfs)


def test_symlinked_template_is_refused(image: Path, rootfs: Path, host: Path) -> None:
    (image / "templates/hostname.tpl").unlink()
    os.symlink(host / "etc/shadow", image / "templates/hostname.tpl")
    with pytest.raises(InvalidConfig, match="Failed to apply template 'hostname.tpl' to "
                                            "'/etc/hostname': Template 'hostname.tpl' is a "
                                            "symlink"):
        apply(image, rootfs)
    assert not (rootfs / "etc/hostname").exists()


def test_symlinked_templates_dir_is_refused(image: Path, rootfs: Path, tmp_path: Path) -> None:
    (image / "templates").rename(tmp_path / "elsewhere")
    os.symlink(tmp_path / "elsewhere", image / "templates")
    with pytest.raises(InvalidConfig, match="templates directory .* is not a directory"):
        apply(image, rootfs)


def test_template_file_checks(image: Path, rootfs: Path) -> None:
    (image / "templates/hostname.tpl").unlink()
    with pytest.raises(InvalidConfig, match="Template 'hostname.tpl' No such file"):
        apply(image, rootfs)
    os.mkfifo(image / "templates/hostname.tpl")
    with pytest.raises(InvalidConfig, match="is not a regular file"):
        apply(image, rootfs)
    os.unlink(image / "templates/hostname.tpl")
    (image / "templates/hostname.tpl").write_bytes(b"x" * ((1 << 20) + 1))
    with pytest.raises(InvalidConfig, match="is over 1048576 bytes"):
        apply(image, rootfs)
    (image / "templates/hostname.tpl").write_bytes(b"\xff")
    with pytest.raises(InvalidConfig, match="is not UTF-8"):
        apply(image, rootfs)


def test_render_error_names_template_and_path(image: Path, rootfs: Path) -> None:
    (image / "templates/hosts.tpl").write_text("{{ config.__class__ }}\n")
    with pytest.raises(InvalidConfig) as info:
        apply(image, rootfs)
    assert str(info.value) == ("Failed to apply template 'hosts.tpl' to '/etc/hosts': line 1: "
                               "access to '__class__' is not allowed")
    assert not (rootfs / "etc/hosts").exists()


def test_no_rules_no_io(tmp_path: Path) -> None:
    assert apply(tmp_path / "missing", tmp_path / "missing", "rename") == []


def test_rootfs_must_be_a_real_directory(image: Path, rootfs: Path, tmp_path: Path) -> None:
    os.symlink(rootfs, tmp_path / "link")
    with pytest.raises(InvalidConfig, match="Instance rootfs .* is not a directory"):
        apply(image, tmp_path / "link")


def test_no_fd_leaks(image: Path, rootfs: Path, host: Path) -> None:
    before = len(os.listdir("/proc/self/fd"))
    apply(image, rootfs)
    (rootfs / "etc/hosts").unlink()
    os.symlink(host / "nowhere", rootfs / "etc/hosts")
    shutil.rmtree(rootfs / "var")
    os.symlink(host / "etc", rootfs / "var")  # dangling inside the rootfs
    for message in ("'/etc/hosts': the target is a dangling", "'/var' is a dangling"):
        with pytest.raises(InvalidConfig, match=message):
            apply(image, rootfs)
        (rootfs / "etc/hosts").unlink(missing_ok=True)
    assert len(os.listdir("/proc/self/fd")) == before
    assert_host_untouched(host)

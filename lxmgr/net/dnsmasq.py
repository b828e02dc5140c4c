"""dnsmasq per managed network: PURE config/argv/hosts/lease builders and a thin lifecycle.

We run /usr/sbin/dnsmasq rather than a DHCP/DNS server of our own: it owns lease state,
conflict detection and name registration, and LXD and libvirt run it the same way. Hermetic
(C18): `--conf-file=/dev/null` first, then only our rendered file, no upstream servers.
It runs in the foreground in its own session, so it outlives a daemon restart; we keep its
pid in <state dir>/dnsmasq.pid and only ever signal a pid whose command line names our
config file. Imports lxmgr.model, lxmgr.paths and lxmgr.errors.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import jinja2

from lxmgr import paths
from lxmgr.errors import CommandError, InvalidConfig
from lxmgr.linux.children import Children, read_from, send_signal
from lxmgr.model.network import BridgeSettings

log = logging.getLogger(__name__)

DNSMASQ = "/usr/sbin/dnsmasq"
START_TIMEOUT = 5.0
STOP_TIMEOUT = 5.0
RELOAD_TIMEOUT = 2.0
# One DNS label, or two: an instance of another project than default is "NAME.PROJECT"
# (LXD's project.DNS).
_HOSTNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,62}(\.[A-Za-z0-9][A-Za-z0-9-]{0,62})?$")
_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
# Popen handles of dnsmasq processes this process started, so dead ones get reaped.
_children = Children()


def state_dir(network_name: str) -> Path:
    """<root>/networks/<name>/: config, pid, log, leases and hosts files of one network."""
    return paths.root() / "networks" / network_name


@dataclass(frozen=True)
class Lease:
    """One line of dnsmasq's lease file (IPv4)."""

    expiry: int  # epoch seconds; 0 = infinite
    mac: str
    ip: str
    hostname: str | None
    client_id: str | None = None


def _env() -> jinja2.Environment:
    # Our own template, fed only validated values: no HTML autoescape, fail on typos.
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(paths.templates_dir() / "host")),
        autoescape=False, undefined=jinja2.StrictUndefined, trim_blocks=True,
        lstrip_blocks=True, keep_trailing_newline=True)


def build_config(name: str, bridge: str, settings: BridgeSettings, directory: Path) -> str:
    """dnsmasq.conf text for a network (DNS on the gateway, DHCP per ipv4.dhcp)."""
    net = settings.subnet
    return _env().get_template("dnsmasq.conf.j2").render(
        name=name, bridge=bridge, state_dir=str(directory),
        gateway=str(settings.gateway) if settings.gateway else "",
        gateway6=str(settings.ipv6.ip) if settings.ipv6 else "",
        domain=settings.domain,
        dhcp=settings.ipv4_dhcp and net is not None,
        ranges=[(str(a), str(b)) for a, b in settings.dhcp_ranges],
        netmask=str(net.netmask) if net else "",
        expiry=settings.dhcp_expiry,
        upstream_host=settings.upstream == "host",
        servers=[] if settings.upstream in ("none", "host")
        else [s.strip() for s in settings.upstream.split(",")],
    )


def build_argv(conf_path: Path, binary: str = DNSMASQ) -> list[str]:
    """dnsmasq's argv: hermetic, in the foreground (we supervise it), our config only."""
    return [binary, "--keep-in-foreground", "--conf-file=/dev/null",
            f"--conf-file={conf_path}"]


def build_dhcp_hosts(reservations: Mapping[str, tuple[str, str | None]]) -> str:
    """dhcp-hostsfile text: one 'mac,ip[,hostname]' line per reservation."""
    lines = []
    for mac, (ip, hostname) in sorted(reservations.items(), key=lambda kv: kv[0].lower()):
        mac = _check_mac(mac)
        ipaddress.IPv4Address(ip)
        fields = [mac, ip] + ([_check_hostname(hostname)] if hostname else [])
        lines.append(",".join(fields))
    return "".join(f"{line}\n" for line in lines)


def build_hosts(reservations: Mapping[str, tuple[str, str | None]], domain: str) -> str:
    """addn-hosts text: 'ip name.domain name' for each named reservation (DNS before a lease)."""
    lines = []
    for _mac, (ip, hostname) in sorted(reservations.items()):
        if hostname:
            name = _check_hostname(hostname)
            lines.append(f"{ipaddress.IPv4Address(ip)} {name}.{domain} {name}")
    return "".join(f"{line}\n" for line in lines)


def _check_mac(mac: str) -> str:
    if not _MAC_RE.fullmatch(mac.lower()):
        raise InvalidConfig(f"Invalid MAC address '{mac}'")
    return mac.lower()


def _check_hostname(hostname: str) -> str:
    if not _HOSTNAME_RE.fullmatch(hostname):
        raise InvalidConfig(f"Invalid DHCP host name '{hostname}'")
    return hostname


def parse_leases(text: str) -> list[Lease]:
    """Parse dnsmasq's lease file: 'expiry mac ip hostname|* client-id|*' (IPv6 lines skipped)."""
    leases = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[0] == "duid" or ":" in fields[2]:
            continue
        try:
            expiry = int(fields[0])
        except ValueError:
            continue
        client_id = fields[4] if len(fields) > 4 and fields[4] != "*" else None
        leases.append(Lease(expiry, fields[1].lower(), fields[2],
                            None if fields[3] == "*" else fields[3], client_id))
    return leases


def _write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)


class Dnsmasq:
    """The dnsmasq of one network, by its state directory (survives our own restarts).

    Runs in the caller's network namespace. The process is ours when its pid file names a
    live process whose argv holds our --conf-file; nothing else is ever signalled.
    """

    def __init__(self, directory: Path, binary: str = DNSMASQ) -> None:
        self.dir = directory
        self.binary = binary
        self.conf = directory / "dnsmasq.conf"
        self.pid_file = directory / "dnsmasq.pid"
        self.log_file = directory / "dnsmasq.log"
        self.leases_file = directory / "dnsmasq.leases"
        self.hosts_file = directory / "hosts"
        self.dhcp_hosts_file = directory / "dhcp-hosts"

    def prepare(self, config_text: str) -> None:
        """Write the config and create missing hosts/lease files (0755 dir: dnsmasq drops to
        nobody and re-reads the hosts files on SIGHUP)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)
        _write_atomic(self.conf, config_text)
        for path in (self.hosts_file, self.dhcp_hosts_file, self.leases_file):
            if not path.exists():
                _write_atomic(path, "")

    def pid(self) -> int | None:
        """Our dnsmasq's pid if it is running, else None."""
        _children.reap()
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        return pid if f"--conf-file={self.conf}".encode() in argv else None

    def alive(self) -> bool:
        return self.pid() is not None

    def start(self) -> int:
        """Start dnsmasq unless ours runs already; wait until it has bound its sockets.

        prepare() must have written the config. Raises CommandError with the log tail when
        dnsmasq exits during start-up (e.g. port 53 taken on the bridge address).
        """
        pid = self.pid()
        if pid is not None:
            return pid
        argv = build_argv(self.conf, self.binary)
        log.debug("start: %s", " ".join(argv))
        offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        with open(self.log_file, "ab") as out:
            try:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                        start_new_session=True, close_fds=True)
            except OSError as err:
                raise CommandError(argv, 127, f"{self.binary}: {err.strerror}") from err
        _children.add(proc)
        _write_atomic(self.pid_file, f"{proc.pid}\n")
        self._wait_started(proc, argv, offset)
        return proc.pid

    def _wait_started(self, proc: subprocess.Popen[bytes], argv: list[str],
                      offset: int) -> None:
        # dnsmasq logs "read <hosts file>" after it bound every listener, dropped privileges
        # and loaded the reservations: from then on it answers for every static name.
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            code = proc.poll()
            text = self._log_since(offset)
            if code is not None:
                _children.forget(proc.pid)
                self.pid_file.unlink(missing_ok=True)
                raise CommandError(argv, code, text or "dnsmasq exited")
            if f"read {self.hosts_file}" in text:
                return
            time.sleep(0.005)
        self.stop()
        raise CommandError(argv, -1, f"dnsmasq did not start within {START_TIMEOUT}s")

    def _log_since(self, offset: int) -> str:
        return read_from(self.log_file, offset)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM our dnsmasq, SIGKILL it after timeout; remove the pid file."""
        pid = self.pid()
        if pid is not None:
            log.debug("stop dnsmasq %d (%s)", pid, self.dir)
            send_signal(pid, signal.SIGTERM)
            if not _children.wait_gone(pid, timeout):
                send_signal(pid, signal.SIGKILL)
                _children.wait_gone(pid, timeout)
        self.pid_file.unlink(missing_ok=True)

    def reload(self) -> None:
        """SIGHUP: dnsmasq re-reads the hosts and dhcp-hosts files (config needs a restart)."""
        pid = self.pid()
        if pid is None:
            return
        offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        send_signal(pid, signal.SIGHUP)
        # Return once the new reservations are loaded, so a caller that starts an instance
        # right after reserve() never races the reload (dnsmasq handles signals lazily).
        deadline = time.monotonic() + RELOAD_TIMEOUT
        while time.monotonic() < deadline and self.pid() is not None:
            if f"read {self.hosts_file}" in self._log_since(offset):
                return
            time.sleep(0.005)
        log.warning("dnsmasq %d (%s) did not confirm the reload", pid, self.dir)

    def write_static_hosts(self, reservations: Mapping[str, tuple[str, str | None]],
                           domain: str) -> None:
        """Rewrite the reservation files (mac -> (ip, hostname)); reload() to apply."""
        _write_atomic(self.dhcp_hosts_file, build_dhcp_hosts(reservations))
        _write_atomic(self.hosts_file, build_hosts(reservations, domain))

    def read_static_hosts(self) -> dict[str, tuple[str, str | None]]:
        """The reservations last written by write_static_hosts()."""
        out: dict[str, tuple[str, str | None]] = {}
        try:
            text = self.dhcp_hosts_file.read_text()
        except FileNotFoundError:
            return out
        for line in text.splitlines():
            fields = line.split(",")
            if len(fields) >= 2:
                out[fields[0]] = (fields[1], fields[2] if len(fields) > 2 else None)
        return out

    def leases(self) -> list[Lease]:
        try:
            return parse_leases(self.leases_file.read_text())
        except FileNotFoundError:
            return []

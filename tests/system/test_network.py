"""Bridge networking with real containers: leases, names, ports, static addresses, limits,
bad input, and nothing left behind. Test networks never NAT (ipv4.nat=false) and dnsmasq has
no upstream servers: traffic stays between the host and the test containers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import uuid

import pytest

pytestmark = [pytest.mark.kernel, pytest.mark.system]


def addresses(daemon) -> dict[str, str]:  # type: ignore[no-untyped-def]
    rows = json.loads(daemon.cli("list", "--format", "json").stdout)
    out = {}
    for row in rows:
        for nic in ((row.get("state") or {}).get("network") or {}).values():
            for addr in nic["addresses"]:
                if addr["family"] == "inet" and addr["scope"] == "global":
                    out[row["name"]] = addr["address"]
    return out


def wait_leases(daemon, names: list[str], timeout: float = 20) -> dict[str, str]:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    found: dict[str, str] = {}
    while time.monotonic() < deadline:
        found = addresses(daemon)
        if all(n in found for n in names):
            return found
        time.sleep(0.1)
    raise AssertionError(f"no lease for {set(names) - set(found)} within {timeout} s")


@pytest.fixture
def net(daemon):  # type: ignore[no-untyped-def]
    """A test bridge (no NAT) and a profile putting eth0 on it; removed afterwards."""
    name = f"lxmt{uuid.uuid4().hex[:8]}"
    daemon.cli("network", "create", name, "ipv4.address=auto", "ipv4.nat=false")
    daemon.cli("profile", "create", "testnet")
    daemon.cli("profile", "device", "add", "testnet", "eth0", "nic", f"network={name}",
               "name=eth0")
    yield name
    for url in daemon.api("GET", "/1.0/instances")["metadata"]:
        daemon.cli("delete", url.rsplit("/", 1)[-1], "--force", check=False)
    daemon.cli("profile", "delete", "testnet", check=False)
    daemon.cli("network", "delete", name, check=False)


def gateway(daemon, name: str) -> str:  # type: ignore[no-untyped-def]
    config = daemon.api("GET", f"/1.0/networks/{name}")["metadata"]["config"]
    return config["ipv4.address"].split("/")[0]


def test_two_containers_get_leases_and_reach_each_other_by_name(daemon, net) -> None:  # type: ignore[no-untyped-def]
    for name in ("n1", "n2"):
        daemon.cli("launch", "debian", name, "-p", "default", "-p", "testnet")
    leases = wait_leases(daemon, ["n1", "n2"])
    ping = daemon.cli("exec", "n1", "--", "ping", "-c1", "-W3", "n2.lxmgr", check=False)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert leases["n2"] in ping.stdout
    listing = daemon.cli("network", "list-leases", net).stdout
    assert leases["n1"] in listing and leases["n2"] in listing
    # The host resolves names through the bridge address (dnsmasq on the gateway).
    assert _resolve(gateway(daemon, net), "n1.lxmgr") == leases["n1"]
    info = daemon.cli("network", "info", net).stdout
    assert gateway(daemon, net) in info


def test_host_reaches_a_port_in_the_container(daemon, net) -> None:  # type: ignore[no-untyped-def]
    daemon.cli("launch", "debian", "srv", "-p", "default", "-p", "testnet")
    ip = wait_leases(daemon, ["srv"])["srv"]
    server = subprocess.Popen(
        [*daemon.cli_argv, "exec", "srv", "-T", "--", "perl", "-MIO::Socket::INET", "-e",
         '$s=IO::Socket::INET->new(LocalPort=>8080,Listen=>1,ReuseAddr=>1) or die; '
         '$c=$s->accept; print $c "hello from srv\\n"; close $c'],
        env=daemon.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        data = b""
        for _ in range(50):
            try:
                with socket.create_connection((ip, 8080), timeout=2) as conn:
                    data = conn.recv(100)
                break
            except OSError:
                time.sleep(0.1)
        assert data == b"hello from srv\n"
    finally:
        server.wait(timeout=30)


def test_static_address_is_honoured_and_unique(daemon, net) -> None:  # type: ignore[no-untyped-def]
    gw = gateway(daemon, net)
    static = gw.rsplit(".", 1)[0] + ".77"
    daemon.cli("init", "debian", "st1", "-p", "default", "-p", "testnet")
    daemon.cli("config", "device", "override", "st1", "eth0", f"ipv4.address={static}")
    daemon.cli("start", "st1")
    assert wait_leases(daemon, ["st1"])["st1"] == static
    daemon.cli("init", "debian", "st2", "-p", "default", "-p", "testnet")
    daemon.cli("config", "device", "override", "st2", "eth0", f"ipv4.address={static}")
    clash = daemon.cli("start", "st2", check=False)
    assert clash.returncode == 1 and static in clash.stderr


def test_bad_network_input(daemon, net) -> None:  # type: ignore[no-untyped-def]
    subnet = daemon.api("GET", f"/1.0/networks/{net}")["metadata"]["config"]["ipv4.address"]
    overlap = daemon.cli("network", "create", "lxmtover", f"ipv4.address={subnet}",
                         "ipv4.nat=false", check=False)
    assert overlap.returncode == 1 and net in overlap.stderr
    bad = daemon.cli("network", "create", "lxmtbad", "ipv4.address=10.1.2.300/24",
                     check=False)
    assert bad.returncode == 1 and "ipv4.address" in bad.stderr
    missing = daemon.cli("launch", "debian", "m1", "-p", "default", "-p", "testnet",
                         check=False)
    assert missing.returncode == 0
    nic = daemon.cli("config", "device", "add", "m1", "eth1", "nic", "network=nosuchnet",
                     check=False)
    assert nic.returncode == 1 and "nosuchnet" in nic.stderr
    in_use = daemon.cli("network", "delete", net, check=False)
    assert in_use.returncode == 1 and "in use" in in_use.stderr
    names = [n["name"] for n in json.loads(daemon.cli("network", "list", "--format",
                                                      "json").stdout)]
    assert names == [net]


def test_ingress_limit_caps_a_bulk_transfer(daemon, net) -> None:  # type: ignore[no-untyped-def]
    daemon.cli("init", "debian", "lim", "-p", "default", "-p", "testnet")
    daemon.cli("config", "device", "override", "lim", "eth0", "limits.ingress=20Mbit")
    daemon.cli("start", "lim")
    ip = wait_leases(daemon, ["lim"])["lim"]
    receiver = subprocess.Popen(
        [*daemon.cli_argv, "exec", "lim", "-T", "--", "perl", "-MIO::Socket::INET", "-e",
         '$s=IO::Socket::INET->new(LocalPort=>9000,Listen=>1,ReuseAddr=>1) or die; '
         '$c=$s->accept; $n=0; while (($r = sysread($c, $b, 65536)) > 0) { $n += $r } '
         'print "$n\\n"'], env=daemon.env, stdout=subprocess.PIPE, text=True)
    try:
        payload = b"x" * (64 * 1024)
        for _ in range(50):
            try:
                conn = socket.create_connection((ip, 9000), timeout=2)
                break
            except OSError:
                time.sleep(0.1)
        start = time.monotonic()
        sent = 0
        with conn:
            while time.monotonic() - start < 2.0:
                conn.sendall(payload)
                sent += len(payload)
        elapsed = time.monotonic() - start
        out, _ = receiver.communicate(timeout=60)
        total = time.monotonic() - start
    finally:
        if receiver.poll() is None:
            receiver.kill()
            receiver.wait()
    mbit = int(out.strip()) * 8 / total / 1e6
    assert elapsed >= 2.0 and mbit < 30, f"{mbit:.1f} Mbit/s through a 20Mbit limit"


def test_deleting_everything_leaves_nothing(daemon) -> None:  # type: ignore[no-untyped-def]
    name = f"lxmt{uuid.uuid4().hex[:8]}"
    daemon.cli("network", "create", name, "ipv4.address=auto", "ipv4.nat=false")
    state_dir = os.path.join(daemon.root, "networks", name)
    with open(os.path.join(state_dir, "dnsmasq.pid")) as f:
        pid = int(f.read().strip())
    daemon.cli("launch", "debian", "gone", "-p", "default")
    daemon.cli("config", "device", "add", "gone", "eth0", "nic", f"network={name}",
               "name=eth0")
    wait_leases(daemon, ["gone"])
    host_end = json.loads(daemon.cli("list", "--format", "json").stdout)[0][
        "state"]["network"]["eth0"]["host_name"]
    daemon.cli("delete", "gone", "--force")
    daemon.cli("network", "delete", name)
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert name not in links and host_end not in links
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    assert name not in tables
    assert not os.path.exists(f"/proc/{pid}") and not os.path.exists(state_dir)


def _resolve(server: str, name: str) -> str:
    """A minimal A query over UDP to the network's dnsmasq."""
    qid = os.urandom(2)
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    packet = qid + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + labels + b"\x00\x01\x00\x01"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        sock.sendto(packet, (server, 53))
        reply = sock.recv(512)
    assert reply[:2] == qid and reply[7] >= 1, "no answer"
    return ".".join(str(b) for b in reply[-4:])


def test_doctor_reports_a_dead_dnsmasq_and_the_daemon_restarts_it(daemon, net) -> None:  # type: ignore[no-untyped-def]
    healthy = daemon.cli("doctor", check=False)
    assert f"[ OK ] {net} bridge" in healthy.stdout, healthy.stdout
    pid_file = os.path.join(daemon.root, "networks", net, "dnsmasq.pid")

    def dnsmasq_pid() -> int:
        with open(pid_file) as f:
            return int(f.read().strip())
    old = dnsmasq_pid()
    os.kill(old, 9)  # our own network's dnsmasq
    broken = daemon.cli("doctor", check=False)
    restarted = os.path.exists(pid_file) and dnsmasq_pid() != old
    assert restarted or (broken.returncode == 1 and "[FAIL]" in broken.stdout
                         and "dnsmasq" in broken.stdout and "fix:" in broken.stdout)
    for _ in range(100):  # the daemon supervises dnsmasq: a new one comes up
        if os.path.exists(pid_file) and dnsmasq_pid() != old and \
                os.path.exists(f"/proc/{dnsmasq_pid()}"):
            break
        time.sleep(0.1)
    assert dnsmasq_pid() != old
    assert daemon.cli("doctor", check=False).returncode == 0


def test_hot_plug_a_nic_into_a_running_container(daemon, net) -> None:  # type: ignore[no-untyped-def]
    daemon.cli("launch", "debian", "hp1", "-p", "default")
    assert "hp1" not in addresses(daemon)
    daemon.cli("config", "device", "add", "hp1", "eth0", "nic", f"network={net}", "name=eth0")
    ip = wait_leases(daemon, ["hp1"])["hp1"]
    links = daemon.cli("exec", "hp1", "--", "ip", "-o", "-4", "addr", "show", "eth0").stdout
    assert ip in links
    daemon.cli("config", "device", "remove", "hp1", "eth0")
    gone = daemon.cli("exec", "hp1", "--", "ip", "link", "show", "eth0", check=False)
    assert gone.returncode != 0


def test_networks_come_back_after_a_daemon_and_host_restart(daemon, net) -> None:  # type: ignore[no-untyped-def]
    daemon.cli("launch", "debian", "rb1", "-p", "default", "-p", "testnet")
    wait_leases(daemon, ["rb1"])
    daemon.stop()
    # A host reboot loses the bridge and dnsmasq: remove both (they are ours).
    with open(os.path.join(daemon.root, "networks", net, "dnsmasq.pid")) as f:
        os.kill(int(f.read().strip()), 9)
    subprocess.run(["ip", "link", "delete", net], check=True)
    daemon.start()
    links = subprocess.run(["ip", "-o", "link", "show", net], capture_output=True, text=True)
    assert links.returncode == 0 and "UP" in links.stdout
    daemon.cli("restart", "rb1")
    wait_leases(daemon, ["rb1"])


def test_reboot_from_inside_brings_the_nic_back(daemon, net) -> None:  # type: ignore[no-untyped-def]
    daemon.cli("launch", "debian", "rbn", "-p", "default", "-p", "testnet")
    wait_leases(daemon, ["rbn"])
    pid = json.loads(daemon.cli("list", "--format", "json").stdout)[0]["state"]["pid"]
    daemon.cli("exec", "rbn", "--", "systemctl", "reboot", check=False)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        rows = json.loads(daemon.cli("list", "--format", "json").stdout)
        if rows and rows[0]["status"] == "Running" and rows[0]["state"]["pid"] not in (0, pid):
            break
        time.sleep(0.2)
    wait_leases(daemon, ["rbn"])  # the supervisor's hook plugged eth0 into the new netns


GREETER = ("use IO::Socket::INET; my $s = IO::Socket::INET->new(LocalAddr => '0.0.0.0:80', "
           "Listen => 5, ReuseAddr => 1) or die; while (my $c = $s->accept) { "
           "print $c 'hello ' . $c->peerhost . \"\\n\"; close $c }")


def _serve_greeting(daemon, name: str) -> None:  # type: ignore[no-untyped-def]
    """A perl server on port 80 in the container, greeting each client with its address
    as the container sees it; it goes with the container."""
    daemon.cli("exec", name, "--", "sh", "-c",  # $0: the script, untouched by sh
               'perl -e "$0" >/dev/null 2>&1 </dev/null &', GREETER)


def _free_port(addr: str) -> int:
    with socket.socket() as s:
        s.bind((addr, 0))
        return int(s.getsockname()[1])


def _greeting(addr: str, port: int, timeout: float = 20) -> bytes:
    """The first line a TCP server at addr:port sends, retried while the forward or the
    server comes up (a relay accepts, then closes when nothing listens inside)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((addr, port), timeout=2) as conn:
                conn.settimeout(5)
                data = b""
                while not data.endswith(b"\n") and (chunk := conn.recv(100)):
                    data += chunk
                if data:
                    return data
        except OSError:
            pass
        if time.monotonic() > deadline:
            return b""
        time.sleep(0.1)


def _refused(addr: str, port: int) -> bool:
    try:
        socket.create_connection((addr, port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def _nft_table(net: str) -> str:
    """Our network's table only (nothing else is read)."""
    return subprocess.run(["nft", "list", "table", "inet", f"lxmgr_{net}"],
                          capture_output=True, text=True, check=True).stdout


def test_nat_proxy_forwards_the_bridge_address_into_a_running_container(daemon, net) -> None:  # type: ignore[no-untyped-def]
    """nat=true: DNAT rules in the network's table, no relay. The listen address is the
    bridge's (it exists only while the test network does); the host's own connections go
    through the output chain, a neighbour's through prerouting."""
    gw = gateway(daemon, net)
    static = gw.rsplit(".", 1)[0] + ".78"
    daemon.cli("init", "debian", "nat1", "-p", "default", "-p", "testnet")
    daemon.cli("config", "device", "override", "nat1", "eth0", f"ipv4.address={static}")
    daemon.cli("start", "nat1")
    assert wait_leases(daemon, ["nat1"])["nat1"] == static
    _serve_greeting(daemon, "nat1")
    port = _free_port(gw)
    loopback = daemon.cli("config", "device", "add", "nat1", "lo", "proxy",
                          f"listen=tcp:127.0.0.1:{port}", f"connect=tcp:{static}:80",
                          "nat=true", check=False)
    assert loopback.returncode == 1
    assert "Proxy 'lo'" in loopback.stderr and "non-loopback" in loopback.stderr
    # Added to the running instance: it works at once.
    daemon.cli("config", "device", "add", "nat1", "http", "proxy", f"listen=tcp:{gw}:{port}",
               f"connect=tcp:{static}:80", "nat=true")
    rule = f"ip daddr {gw} tcp dport {port} dnat ip to {static}:80"
    assert rule in _nft_table(net)
    # From the host: the output chain's DNAT; the source is the bridge address.
    assert _greeting(gw, port) == f"hello {gw}\n".encode()
    # From a neighbour on the bridge: prerouting's DNAT, masqueraded so that the reply
    # comes back through the host rather than straight from nat1's address.
    daemon.cli("launch", "debian", "nat2", "-p", "default", "-p", "testnet")
    wait_leases(daemon, ["nat2"])
    neighbour = daemon.cli("exec", "nat2", "--", "perl", "-MIO::Socket::INET", "-e",
                           f'$c = IO::Socket::INET->new(PeerAddr => "{gw}:{port}", '
                           'Timeout => 10) or die "$!\\n"; print scalar <$c>', check=False)
    assert neighbour.stdout == f"hello {gw}\n", neighbour.stderr
    # From the container itself: DNATed back to its own port (hairpin on its bridge port).
    itself = daemon.cli("exec", "nat1", "--", "perl", "-MIO::Socket::INET", "-e",
                        f'$c = IO::Socket::INET->new(PeerAddr => "{gw}:{port}", '
                        'Timeout => 10) or die "$!\n"; print scalar <$c>', check=False)
    assert itself.stdout.startswith("hello "), itself.stderr
    daemon.cli("delete", "nat2", "--force")
    daemon.cli("config", "device", "remove", "nat1", "http")
    assert rule not in _nft_table(net)
    assert _refused(gw, port)
    daemon.cli("config", "device", "add", "nat1", "http", "proxy", f"listen=tcp:{gw}:{port}",
               f"connect=tcp:{static}:80", "nat=true")
    assert rule in _nft_table(net)
    daemon.cli("stop", "nat1", "--force")
    assert "dnat" not in _nft_table(net)
    daemon.cli("start", "nat1")  # the device comes back with the instance
    assert rule in _nft_table(net)
    _serve_greeting(daemon, "nat1")
    assert _greeting(gw, port) == f"hello {gw}\n".encode()


def test_relay_proxy_changes_apply_to_a_running_container(daemon) -> None:  # type: ignore[no-untyped-def]
    """nat=false through the CLI: the supervisor's relay on the host's loopback reaches
    the container's loopback; adding, changing and removing the device on the running
    instance restart the relay at once."""
    daemon.cli("launch", "debian", "rel1", "-p", "default")
    _serve_greeting(daemon, "rel1")
    port, other = _free_port("127.0.0.1"), _free_port("127.0.0.1")
    daemon.cli("config", "device", "add", "rel1", "web", "proxy",
               f"listen=tcp:127.0.0.1:{port}", "connect=tcp:127.0.0.1:80")
    assert _greeting("127.0.0.1", port) == b"hello 127.0.0.1\n"
    daemon.cli("config", "device", "set", "rel1", "web", f"listen=tcp:127.0.0.1:{other}")
    assert _greeting("127.0.0.1", other) == b"hello 127.0.0.1\n"
    assert _refused("127.0.0.1", port)
    daemon.cli("config", "device", "remove", "rel1", "web")
    assert _refused("127.0.0.1", other)


def test_rename_an_unused_network_and_not_one_in_use(daemon, net) -> None:  # type: ignore[no-untyped-def]
    """LXD's POST /1.0/networks/NAME through the CLI: the bridge, its dnsmasq and records
    move to the new name; a network in use (400) and a taken name (409) are refused."""
    old, new = f"lxmo{uuid.uuid4().hex[:8]}", f"lxmn{uuid.uuid4().hex[:8]}"
    daemon.cli("network", "create", old, "ipv4.address=auto", "ipv4.nat=false",
               "dns.upstream=none")
    try:
        address = daemon.api("GET", f"/1.0/networks/{old}")["metadata"]["config"][
            "ipv4.address"]
        in_use = daemon.cli("network", "rename", net, new, check=False)
        assert in_use.returncode == 1 and "in use by /1.0/profiles/testnet" in in_use.stderr
        taken = daemon.cli("network", "rename", old, net, check=False)
        assert taken.returncode == 1 and f"Network '{net}' already exists" in taken.stderr
        out = daemon.cli("network", "rename", old, new).stdout
        assert out == f"Network {old} renamed to {new}\n"
        links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True,
                               check=True).stdout
        assert f" {new}:" in links and f" {old}:" not in links
        shown = daemon.api("GET", f"/1.0/networks/{new}")["metadata"]
        assert shown["config"]["ipv4.address"] == address
        state = daemon.api("GET", f"/1.0/networks/{new}/state")["metadata"]
        assert state["state"] == "up"
        missing = daemon.cli("network", "show", old, check=False)
        assert missing.returncode == 1 and "not found" in missing.stderr
    finally:
        daemon.cli("network", "delete", new, check=False)
        daemon.cli("network", "delete", old, check=False)
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True,
                           check=True).stdout
    assert f" {new}:" not in links and f" {old}:" not in links


def test_a_lost_supervisor_leaves_no_rule_link_or_ifb(daemon, net) -> None:  # type: ignore[no-untyped-def]
    """A supervisor killed with -9 (its container orphaned): the daemon's watch takes
    away what the container held on the host (its DNAT rule, its veth, the IFB device of
    limits.egress) and the instance starts again with all of it."""
    import signal
    from pathlib import Path

    from lxmgr.net.nic import NicSpec

    gw = gateway(daemon, net)
    static = gw.rsplit(".", 1)[0] + ".83"
    daemon.cli("init", "debian", "lost1", "-p", "default", "-p", "testnet")
    daemon.cli("config", "device", "override", "lost1", "eth0", f"ipv4.address={static}",
               "limits.egress=100Mbit")
    port = _free_port(gw)
    daemon.cli("config", "device", "add", "lost1", "http", "proxy", f"listen=tcp:{gw}:{port}",
               f"connect=tcp:{static}:80", "nat=true")
    daemon.cli("start", "lost1")
    directory = Path(daemon.root, "instances", "lost1")
    nic = NicSpec.from_dict(json.loads((directory / "nics.json").read_text())[0])
    rule = f"ip daddr {gw} tcp dport {port} dnat ip to {static}:80"

    def links() -> set[str]:
        out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True,
                             check=True).stdout
        return {name for name in (nic.host_name, nic.ifb_name) if f": {name}" in out}

    assert rule in _nft_table(net) and links() == {nic.host_name, nic.ifb_name}
    state = json.loads((directory / "state.json").read_text())
    os.kill(state["supervisor_pid"], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while json.loads((directory / "state.json").read_text())["exit"] != "lost":
        assert time.monotonic() < deadline, "the lost supervisor was not noticed"
        time.sleep(0.2)
    assert rule not in _nft_table(net) and links() == set()
    try:  # the orphaned init was killed (a zombie until the host's init reaps it)
        assert "zombie" in Path(f"/proc/{state['pid']}/status").read_text()
    except FileNotFoundError:
        pass
    daemon.cli("start", "lost1")
    assert rule in _nft_table(net) and links() == {nic.host_name, nic.ifb_name}
    daemon.cli("delete", "lost1", "--force")

"""NIC devices: a veth pair from a host bridge into a container's network namespace.

PURE part: NicSpec (one `type: nic` device, resolved), build_nic(), build_volatile(),
host_name_for(), generate_hwaddr() and build_tc_plan() (bandwidth limits as tc operations).
Side effects, over netlink with pyroute2 (no `ip`/`tc` shell-outs): attach(), detach(),
hot_plug(), hot_unplug(); they run in the host network namespace (the supervisor's boot hook
`python -m lxmgr.net.attach`, or the daemon for hot-plug). pyroute2 is imported lazily: the
daemon builds specs without paying its ~120 ms import. pyroute2 0.9's synchronous IPRoute
runs an asyncio loop of its own, so it fails in a thread whose loop is running: the daemon
calls these through asyncio.to_thread().

Imports lxmgr.model and lxmgr.errors only.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from lxmgr.errors import Conflict, InvalidConfig, KernelError, LxmgrError, NotFound, NotSupported
from lxmgr.model.devices import validate_device
from lxmgr.model.units import parse_bit_rate

log = logging.getLogger(__name__)

LXD_OUI = "00:16:3e"  # Xensource's OUI, which LXD (and we) use for generated MACs
HOST_NAME_PREFIX = "lxm"  # + 8 hex: 11 chars; never 'lxmt' (t is not hex), the tests' prefix

IFB_PREFIX = "lxmi"  # + 8 hex of the host name: the egress-shaping IFB of one NIC

ETH_P_ALL = 0x0003  # linux/if_ether.h: a filter for every protocol
HTB_ROOT = 0x00010000  # handle 1:0, as LXD's `tc qdisc add ... root handle 1:0 htb default 10`
HTB_DEFAULT_MINOR = 0x10  # class 1:10 takes every unclassified packet
HTB_CLASS = HTB_ROOT | HTB_DEFAULT_MINOR
HTB_QUANTUM = 200_000  # the kernel's cap for rate/r2q; explicit so it does not warn in dmesg
INGRESS = 0xFFFF0000  # handle ffff:0, the ingress qdisc
GSO_MAX = 64 * 1024  # veth passes GSO packets up to 64 KiB: a burst must hold one
STALE_WAIT = 3.0  # seconds a previous boot's veth may take to vanish with its namespace


@dataclass(frozen=True)
class NicSpec:
    """One bridged NIC, resolved: everything attach() needs, nothing it must look up."""

    device: str  # the device's name in the config ("eth0")
    name: str  # the interface name inside the container
    host_name: str  # the host end of the veth pair
    parent: str  # the bridge the host end joins
    hwaddr: str  # the container end's MAC
    mtu: int | None = None  # None: the parent bridge's MTU (as LXD)
    ipv4_address: str | None = None  # a static lease, for the DHCP server (not set here)
    limits_ingress: int | None = None  # bit/s into the container
    limits_egress: int | None = None  # bit/s out of the container
    network: str | None = None  # the managed network, when the device named one

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the attach hook's SPEC.json holds a list of these)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NicSpec:
        """Inverse of to_dict(); unknown keys are an error."""
        try:
            return cls(**data)
        except TypeError as err:
            raise InvalidConfig(f"Invalid NIC spec: {err}") from err

    @property
    def ifb_name(self) -> str:
        """The IFB device that shapes limits.egress (see build_tc_plan)."""
        return IFB_PREFIX + hashlib.sha1(self.host_name.encode()).hexdigest()[:8]

    def describe(self) -> str:
        """One line for logs."""
        return (f"NIC '{self.device}': veth '{self.host_name}' on '{self.parent}' -> "
                f"'{self.name}' {self.hwaddr} mtu {self.mtu or 'parent'}")


# -- pure ------------------------------------------------------------------------------------


def host_name_for(instance: str, device_name: str) -> str:
    """The host end's default name: 'lxm' + 8 hex of sha1('instance/device'), 11 chars.
    `instance` is the instance's uuid where it has one: names are per daemon, and two
    daemons on one host (a test daemon beside the real one) may both run a `web1`."""
    digest = hashlib.sha1(f"{instance}/{device_name}".encode()).hexdigest()
    return HOST_NAME_PREFIX + digest[:8]


def generate_hwaddr(rng: random.Random) -> str:
    """A random MAC in LXD's style: 00:16:3e:xx:xx:xx (unicast, globally administered OUI)."""
    return LXD_OUI + "".join(f":{rng.randrange(256):02x}" for _ in range(3))


def build_volatile(device_name: str, device: Mapping[str, str], volatile: Mapping[str, str],
                   rng: random.Random) -> dict[str, str]:
    """The volatile keys to store before the first start: a MAC unless the device or an
    earlier start fixed one, so the container keeps its address (and DHCP lease)."""
    key = f"volatile.{device_name}.hwaddr"
    if device.get("hwaddr") or volatile.get(key):
        return {}
    return {key: generate_hwaddr(rng)}


def build_nic(device_name: str, device: Mapping[str, str], instance: str,
              volatile: Mapping[str, str], bridge_of_network: Callable[[str], str]) -> NicSpec:
    """Resolve one `type: nic` device of an instance into a NicSpec.

    bridge_of_network(network) returns the managed network's bridge and raises NotFound (or
    KeyError) for an unknown network. The MAC is the device's `hwaddr`, else
    `volatile.<device>.hwaddr` (see build_volatile), else one derived from the names."""
    dev = validate_device(device_name, device)
    if dev["type"] != "nic":
        raise InvalidConfig(f"Invalid device '{device_name}': type '{dev['type']}' is not a nic")
    network = dev.get("network") or None
    if network:
        parent = _bridge_of(device_name, network, bridge_of_network)
    elif dev.get("nictype") == "bridged":
        parent = dev["parent"]
    else:
        raise NotSupported(f"NIC '{device_name}': nictype '{dev.get('nictype')}' is not "
                           "supported (only 'bridged' or a managed 'network')")
    hwaddr = (dev.get("hwaddr") or volatile.get(f"volatile.{device_name}.hwaddr")
              or _derived_hwaddr(instance, device_name)).lower()
    if int(hwaddr[:2], 16) & 1:
        raise InvalidConfig(f"Invalid device '{device_name}': hwaddr '{hwaddr}' is multicast")
    return NicSpec(
        device=device_name,
        name=dev.get("name") or device_name,
        host_name=dev.get("host_name") or host_name_for(
            volatile.get("volatile.uuid") or instance, device_name),
        parent=parent,
        hwaddr=hwaddr,
        mtu=int(dev["mtu"]) if dev.get("mtu") else None,
        ipv4_address=dev.get("ipv4.address") or None,
        limits_ingress=_rate(device_name, dev, "limits.ingress"),
        limits_egress=_rate(device_name, dev, "limits.egress"),
        network=network,
    )


def _bridge_of(device_name: str, network: str, bridge_of_network: Callable[[str], str]) -> str:
    try:
        return bridge_of_network(network)
    except KeyError as err:
        raise NotFound(f"NIC '{device_name}': network '{network}' not found") from err


def _derived_hwaddr(instance: str, device_name: str) -> str:
    digest = hashlib.sha1(f"hwaddr/{instance}/{device_name}".encode()).hexdigest()
    return LXD_OUI + "".join(f":{digest[i:i + 2]}" for i in (0, 2, 4))


def _rate(device_name: str, dev: Mapping[str, str], key: str) -> int | None:
    if not dev.get(key):
        return None
    try:
        rate = parse_bit_rate(dev[key])
    except InvalidConfig as err:
        raise InvalidConfig(f"Invalid device '{device_name}' key '{key}': {err}") from err
    if rate < 8:
        raise InvalidConfig(f"Invalid device '{device_name}' key '{key}': at least 8bit")
    return rate


@dataclass(frozen=True)
class TcOp:
    """One traffic-control request (pyroute2's ipr.tc(command, kind, index=..., **args)) on
    the host end ('host') or on the NIC's IFB ('ifb')."""

    dev: str
    command: str
    kind: str
    args: dict[str, Any] = field(default_factory=dict)
    why: str = ""

    def describe(self) -> str:
        """`tc`-like one-liner for logs."""
        args = " ".join(f"{k}={v:#x}" if k in ("handle", "parent", "target") else f"{k}={v}"
                        for k, v in self.args.items())
        return f"tc {self.command} {self.kind} dev {self.dev} {args} ({self.why})"


def build_tc_plan(spec: NicSpec, ifb_index: int = 0) -> list[TcOp]:
    """Bandwidth limits as tc requests, seen from the host end of the veth.

    limits.ingress (the container's download) leaves through the host end: htb on its root
    qdisc, as LXD. limits.egress (the container's upload) arrives on the host end's ingress,
    where nothing can queue: LXD polices it there (act_police), which this project's kernels
    lack (no CONFIG_NET_ACT_POLICE), so it is redirected (act_mirred) to an IFB device
    (ifb_index) and shaped by htb on that device's root qdisc instead, as the CNI bandwidth
    plugin does. Shaping queues instead of dropping, so TCP keeps its rate."""
    ops: list[TcOp] = []
    if spec.limits_ingress:
        ops += _htb("host", spec.limits_ingress, "limits.ingress")
    if spec.limits_egress:
        redirect = {"kind": "mirred", "direction": "egress", "action": "redirect",
                    "ifindex": ifb_index}
        ops += _htb("ifb", spec.limits_egress, "limits.egress")
        ops += [
            TcOp("host", "add", "ingress", {"handle": INGRESS}, "limits.egress: ingress qdisc"),
            TcOp("host", "add-filter", "u32",
                 {"parent": INGRESS, "protocol": ETH_P_ALL, "prio": 1, "keys": ["0x0/0x0+0"],
                  "target": HTB_CLASS, "action": redirect},
                 "limits.egress: everything to the IFB"),
        ]
    return ops


def _htb(dev: str, bits: int, key: str) -> list[TcOp]:
    rate = bits // 8  # pyroute2 takes an int rate as bytes/s (and uses rate64 above 2**32)
    # 10 ms at the rate, but at least one GSO packet (pyroute2's default is rate/HZ + 1600
    # bytes, with HZ read as 10**9 from /proc/net/psched: a 1600-byte burst).
    burst = max(rate // 100, GSO_MAX + 1600)
    return [
        TcOp(dev, "add", "htb", {"handle": HTB_ROOT, "default": HTB_DEFAULT_MINOR},
             f"{key}: root htb"),
        TcOp(dev, "add-class", "htb",
             {"handle": HTB_CLASS, "parent": HTB_ROOT, "rate": rate,
              "burst": burst, "cburst": burst, "quantum": HTB_QUANTUM},
             f"{key}: default class"),
    ]


# -- side effects ----------------------------------------------------------------------------


def attach(spec: NicSpec, pid: int) -> None:
    """Create spec's veth pair with its container end made directly in pid's network
    namespace (final name, MAC and MTU), the host end on the parent bridge and up, limits
    applied. A veth of that host name whose peer is in pid's namespace is replaced (the boot
    hook re-run), so is the NIC's IFB; any other link of those names is a Conflict. Runs in
    the host netns; on failure nothing is left behind."""
    log.debug("Attaching %s to pid %d", spec.describe(), pid)
    nsfd = _open_netns(spec, pid)
    try:
        with _iproute() as ipr, contextlib.ExitStack() as undo:
            bridge = _find_bridge(ipr, spec)
            mtu = spec.mtu or bridge.get_attr("IFLA_MTU")
            _delete_stale(ipr, spec, nsfd)
            index = _create_veth(ipr, spec, nsfd, mtu, pid)
            undo.callback(_delete_quietly, ipr, index)
            _netlink(spec, spec.host_name, "add to bridge", ipr.link, "set", index=index,
                     mtu=mtu, master=bridge["index"], state="up")
            _set_hairpin(spec)
            ifb_index = 0
            if spec.limits_egress:
                ifb_index = _create_ifb(ipr, spec, mtu)
                undo.callback(_delete_quietly, ipr, ifb_index)
            indexes = {"host": index, "ifb": ifb_index}
            for op in build_tc_plan(spec, ifb_index):
                log.debug("%s", op.describe())
                ifname = spec.host_name if op.dev == "host" else spec.ifb_name
                _netlink(spec, ifname, f"apply {op.why} to", ipr.tc, op.command, op.kind,
                         index=indexes[op.dev], **op.args)
            undo.pop_all()
    finally:
        os.close(nsfd)


def _set_hairpin(spec: NicSpec) -> None:
    """Let the bridge send a frame back out the port it came in on: a container reaching
    itself through a nat proxy forward (DNATed back to its own address) needs it when the
    host has br_netfilter loaded."""
    path = f"/sys/class/net/{spec.host_name}/brport/hairpin_mode"
    try:
        with open(path, "w") as f:
            f.write("1")
    except OSError as err:
        log.warning("NIC '%s': could not enable hairpin mode on '%s': %s", spec.device,
                    spec.host_name, err)


def detach(spec: NicSpec) -> None:
    """Delete the host end (the container end and the qdiscs go with it) and the NIC's IFB;
    missing links are fine, a link of those names of another kind is left alone (Conflict).
    Call it on stop too: the IFB outlives the container's namespace, the veth does not."""
    with _iproute() as ipr:
        for ifname, kind in ((spec.host_name, "veth"), (spec.ifb_name, "ifb")):
            link = _get_link(ipr, spec, ifname)
            if link is None:
                continue
            if _kind(link) != kind:
                raise Conflict(f"Interface '{ifname}' of NIC '{spec.device}' is not "
                               f"a {kind}: not deleting it")
            try:
                _netlink(spec, ifname, f"delete {kind}", ipr.link, "del", index=link["index"])
            except NotFound:  # a veth goes with its peer's namespace: gone in between, fine
                log.debug("NIC '%s': %s vanished before we deleted it", spec.device, ifname)


def hot_plug(spec: NicSpec, pid: int) -> None:
    """Attach a NIC to a running container (its init's host pid); refuses a name in use."""
    if not os.path.exists(f"/proc/{pid}"):
        raise NotFound(f"NIC '{spec.device}': container process {pid} not found")
    attach(spec, pid)


def hot_unplug(spec: NicSpec) -> None:
    """Remove a NIC from a running container."""
    detach(spec)


def _open_netns(spec: NicSpec, pid: int) -> int:
    try:
        return os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError as err:
        raise NotFound(f"NIC '{spec.device}': container process {pid} not found") from err
    except OSError as err:
        raise KernelError(f"Failed to open the network namespace of {pid}: "
                          f"{err.strerror}") from err


@contextlib.contextmanager
def _iproute() -> Iterator[Any]:
    from pyroute2 import IPRoute

    # groups=0: no multicast subscription, so replies are not interleaved with events.
    ipr = IPRoute(groups=0)
    try:
        yield ipr
    finally:
        ipr.close()


_ERRORS: dict[int, type[LxmgrError]] = {
    errno.EEXIST: Conflict, errno.EBUSY: Conflict, errno.EADDRINUSE: Conflict,
    errno.ENODEV: NotFound, errno.ENOENT: NotFound,
    errno.EINVAL: InvalidConfig, errno.ERANGE: InvalidConfig, errno.EADDRNOTAVAIL: InvalidConfig,
    errno.EOPNOTSUPP: NotSupported,
}


def _netlink(spec: NicSpec, ifname: str, what: str, call: Callable[..., Any], /, *args: Any,
             **kwargs: Any) -> Any:
    """Run one pyroute2 call; NetlinkError/OSError -> an lxmgr error naming the link."""
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        return call(*args, **kwargs)
    except (NetlinkError, OSError) as err:
        code = err.code if isinstance(err, NetlinkError) else (err.errno or 0)
        cls = _ERRORS.get(code, KernelError)
        raise cls(f"Failed to {what} '{ifname}' (NIC '{spec.device}'): "
                  f"{os.strerror(code) if code else err}") from err


def _get_link(ipr: Any, spec: NicSpec, ifname: str) -> Any | None:
    try:
        return _netlink(spec, ifname, "look up", ipr.link, "get", ifname=ifname)[0]
    except NotFound:
        return None


def _kind(link: Any) -> str | None:
    info = link.get_attr("IFLA_LINKINFO")
    return info.get_attr("IFLA_INFO_KIND") if info else None


def _find_bridge(ipr: Any, spec: NicSpec) -> Any:
    bridge = _get_link(ipr, spec, spec.parent)
    if bridge is None:
        raise NotFound(f"NIC '{spec.device}': parent bridge '{spec.parent}' not found")
    if _kind(bridge) != "bridge":
        raise InvalidConfig(f"NIC '{spec.device}': parent '{spec.parent}' is not a bridge")
    return bridge


def _delete_stale(ipr: Any, spec: NicSpec, nsfd: int) -> None:
    """Delete the veth and IFB an earlier attach to the same namespace left (the hook runs
    again); refuse to touch anything else that carries those names."""
    link = _get_link(ipr, spec, spec.host_name)
    if link is not None:
        peer_nsid = link.get_attr("IFLA_LINK_NETNSID")
        ours = _kind(link) == "veth" and peer_nsid is not None
        if ours:
            target = _netlink(spec, spec.host_name, "look up the peer namespace of",
                              ipr.get_netnsid, fd=nsfd)
            ours = target is not None and target["nsid"] == peer_nsid
        ours = ours or _left_by_dead_container(link, spec)
        if ours:
            log.debug("Replacing veth '%s' left by an earlier attach", spec.host_name)
            _netlink(spec, spec.host_name, "delete stale veth", ipr.link, "del",
                     index=link["index"])
        elif not _gone(ipr, spec, spec.host_name, STALE_WAIT):
            raise Conflict(f"Host interface '{spec.host_name}' of NIC '{spec.device}' exists "
                           "and belongs to something else")
    ifb = _get_link(ipr, spec, spec.ifb_name)
    if ifb is not None:
        if _kind(ifb) != "ifb":
            raise Conflict(f"Interface '{spec.ifb_name}' of NIC '{spec.device}' exists and "
                           "is not an ifb")
        _netlink(spec, spec.ifb_name, "delete stale ifb", ipr.link, "del", index=ifb["index"])


def _gone(ipr: Any, spec: NicSpec, ifname: str, timeout: float) -> bool:
    """Wait for a link to disappear. After a reboot the previous boot's veth lives on until
    the kernel's cleanup_net work destroys the dead PID 1's namespace, asynchronously."""
    deadline = time.monotonic() + timeout
    while _get_link(ipr, spec, ifname) is not None:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def _create_veth(ipr: Any, spec: NicSpec, nsfd: int, mtu: int, pid: int) -> int:
    # The peer is created in the container's netns with its final name: no rename or move
    # afterwards, so the container never sees a half-configured 'vethXXXX' appear.
    peer = {"ifname": spec.name, "net_ns_fd": nsfd, "address": spec.hwaddr, "mtu": mtu}
    try:
        _netlink(spec, spec.host_name, "create veth", ipr.link, "add",
                 ifname=spec.host_name, kind="veth", mtu=mtu, peer=peer)
    except Conflict as err:
        # _delete_stale cleared the host side: the name taken is the container's.
        raise Conflict(f"Failed to create veth '{spec.host_name}' (NIC '{spec.device}'): "
                       f"the container already has an interface '{spec.name}'") from err
    index = _index_of(ipr, spec, spec.host_name)
    # Mark it with the container it serves: after a stop the kernel tears the old namespace
    # (and this veth) down asynchronously; a start right after deletes our leftover of a
    # dead container instead of waiting for it.
    _netlink(spec, spec.host_name, "mark", ipr.link, "set", index=index,
             ifalias=f"{_MARKER} {spec.device} {spec.hwaddr} pid={pid}")
    return index


_MARKER = "lxmgr nic"


def _left_by_dead_container(link: Any, spec: NicSpec) -> bool:
    """Our veth for this NIC whose container (the pid in its alias) no longer runs."""
    alias = link.get_attr("IFLA_IFALIAS") or ""
    prefix = f"{_MARKER} {spec.device} {spec.hwaddr} pid="
    if _kind(link) != "veth" or not alias.startswith(prefix):
        return False
    pid = alias[len(prefix):]
    return pid.isdigit() and not os.path.exists(f"/proc/{pid}")


def _create_ifb(ipr: Any, spec: NicSpec, mtu: int) -> int:
    _netlink(spec, spec.ifb_name, "create ifb", ipr.link, "add", ifname=spec.ifb_name,
             kind="ifb", mtu=mtu, txqlen=1000)  # ifb's default queue is 32 packets
    index = _index_of(ipr, spec, spec.ifb_name)
    _netlink(spec, spec.ifb_name, "bring up", ipr.link, "set", index=index, state="up")
    return index


def _index_of(ipr: Any, spec: NicSpec, ifname: str) -> int:
    link = _get_link(ipr, spec, ifname)
    if link is None:
        raise KernelError(f"Failed to create '{ifname}' (NIC '{spec.device}'): gone after "
                          "creation")
    return int(link["index"])


def _delete_quietly(ipr: Any, index: int) -> None:
    with contextlib.suppress(Exception):
        ipr.link("del", index=index)

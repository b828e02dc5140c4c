"""The host's systemd-resolved and a managed network: send <dns.domain> names to its dnsmasq.

What LXD documents for lxdbr0 (doc/howto/network_bridge_resolved.md), done by lxmgr itself:
`resolvectl dns BRIDGE ADDR...` and `resolvectl domain BRIDGE ~DOMAIN` once the bridge and
its dnsmasq are up, `resolvectl revert BRIDGE` when the network stops or goes. `~DOMAIN` is
a routing-only domain: resolved asks the bridge's dnsmasq for names under DOMAIN only, and
the link never becomes the host's default DNS route. Only where the host's resolver is a
systemd-resolved that serves this network namespace; elsewhere nothing is run and
availability() says why (for `lxmgr doctor`). Imports lxmgr.linux and lxmgr.errors.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from lxmgr.errors import CommandError
from lxmgr.linux import commands

log = logging.getLogger(__name__)

RUN_DIR = Path("/run/systemd/resolve")  # resolved's runtime dir (stub-resolv.conf lives there)
TIMEOUT = 5.0  # resolvectl waits on D-Bus: a wedged bus must not hang a network start

Run = Callable[[Sequence[str]], str]  # argv -> stdout; raises CommandError


def build_link_argvs(tool: str, link: str, servers: Sequence[str], domain: str
                     ) -> list[list[str]]:
    """The resolvectl commands that route ~domain to servers on link.

    DNSSEC off on the link: dnsmasq serves an unsigned zone that the public DNS says does not
    exist, so a host with DNSSEC=yes would reject every answer (LXD's doc says the same).
    """
    return [[tool, "dns", link, *servers],
            [tool, "domain", link, f"~{domain}"],
            [tool, "dnssec", link, "no"]]


def build_revert_argv(tool: str, link: str) -> list[str]:
    """Drop every per-link setting made with resolvectl (servers, domains, DNSSEC)."""
    return [tool, "revert", link]


def parse_link_values(text: str) -> list[str]:
    """The values of `resolvectl dns|domain LINK`: 'Link 5 (br0): 10.1.2.1 fd42::1' ->
    ['10.1.2.1', 'fd42::1'] (a server's '#name' or '%ifindex' suffix dropped)."""
    out: list[str] = []
    for line in text.splitlines():
        if not line.startswith("Link ") or "):" not in line:
            continue
        for value in line.split("):", 1)[1].split():
            out.append(value.split("#", 1)[0].split("%", 1)[0])
    return out


def _same_netns_as_init() -> bool:
    """Whether we share PID 1's network namespace, which resolved serves: resolvectl names a
    link by ifindex, and an index from another namespace would be some other host link."""
    try:
        ours, init = os.stat("/proc/self/ns/net"), os.stat("/proc/1/ns/net")
    except OSError:
        return False
    return (ours.st_dev, ours.st_ino) == (init.st_dev, init.st_ino)


def _run(argv: Sequence[str]) -> str:
    return commands.run(argv, timeout=TIMEOUT).stdout


class HostResolver:
    """The host's systemd-resolved as seen from here; every probe is injectable for tests."""

    def __init__(self, run: Run = _run, run_dir: Path = RUN_DIR,
                 which: Callable[[str], str | None] = shutil.which,
                 same_netns: Callable[[], bool] = _same_netns_as_init) -> None:
        self.run = run
        self.run_dir = run_dir
        self.which = which
        self.same_netns = same_netns

    def availability(self) -> tuple[str | None, str]:
        """(resolvectl's path, "") when resolved can be told about our links, else (None, why
        not). Cheap: no command runs; whether resolved answers shows on the first call."""
        if not self.run_dir.is_dir():
            return None, f"the host does not run systemd-resolved (no {self.run_dir})"
        tool = self.which("resolvectl")
        if tool is None:
            return None, "resolvectl is not installed"
        if not self.same_netns():
            return None, "lxmgr runs in a network namespace of its own, not the host's"
        return tool, ""

    def set_link(self, link: str, servers: Sequence[str], domain: str) -> bool:
        """Route ~domain to servers on link; False (logged) when resolved is not there or
        does not answer. Best effort: the network works without it."""
        tool, why = self.availability()
        if tool is None or not servers:
            log.debug("not telling systemd-resolved about %s: %s", link, why or "no address")
            return False
        for argv in build_link_argvs(tool, link, servers, domain):
            try:
                self.run(argv)
            except CommandError as err:
                log.warning("systemd-resolved: %s", err)
                return False
        log.info("systemd-resolved sends *.%s to %s on %s", domain, ", ".join(servers), link)
        return True

    def revert_link(self, link: str) -> None:
        """Undo set_link (a no-op where resolved is not there or the link is gone)."""
        tool, _ = self.availability()
        if tool is None:
            return
        try:
            self.run(build_revert_argv(tool, link))
        except CommandError as err:
            log.debug("systemd-resolved revert %s: %s", link, err)

    def link_settings(self, link: str) -> tuple[list[str], list[str]]:
        """(DNS servers, domains) resolved has for link; CommandError when it does not
        answer or resolvectl is missing."""
        tool = self.which("resolvectl") or "resolvectl"
        return (parse_link_values(self.run([tool, "dns", link])),
                parse_link_values(self.run([tool, "domain", link])))

"""The per-container supervisor ("monitor"): boots the container, reaps PID 1, holds the
console ptys and a ring-buffered console log, and serves the control socket.

Single-threaded by design (a selectors loop, no asyncio, no threads): it forks the container
and exec helpers, and unshare/setns refuse multi-threaded callers. Imports runtime, cgroups,
linux, model; never instances or front ends.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import select
import selectors
import signal
import socket
import subprocess
import sys
import time
from typing import Any

from lxmgr.cgroups.base import CgroupDriver, read_file
from lxmgr.errors import LxmgrError
from lxmgr.linux import libc
from lxmgr.runtime import attach, child, disks, security
from lxmgr.supervisor import devices, protocol, zygote
from lxmgr.supervisor.config import ConsoleRing, SupervisorConfig
from lxmgr.supervisor.console import ConsoleClients

log = logging.getLogger(__name__)

RELAY_STOP_WAIT = 5.0  # seconds the proxy relay gets to release its ports after SIGTERM


def exit_reason(wstatus: int) -> str:
    """Why init ended, from its wait status: reboot(2) inside a pid namespace ends its init
    as if killed by SIGHUP for a restart and by SIGINT for a power-off or halt
    (kernel/pid_namespace.c, reboot_pid_ns); an init that exits with 0 powered off too (a
    systemd without CAP_SYS_BOOT exits instead); anything else is a crash."""
    if os.WIFSIGNALED(wstatus):
        return {signal.SIGHUP: "reboot", signal.SIGINT: "poweroff"}.get(
            os.WTERMSIG(wstatus), "crash")
    return "poweroff" if os.WIFEXITED(wstatus) and os.WEXITSTATUS(wstatus) == 0 else "crash"


UNHEARD_POLL = 0.1  # seconds between looks at an init that does not handle the stop signal


class Monitor:
    """Owns one container from boot to its last process."""

    def __init__(self, cfg: SupervisorConfig, cgroups: CgroupDriver) -> None:
        self.cfg = cfg
        self.plan = cfg.plan
        self.cgroups = cgroups
        self.sel = selectors.DefaultSelector()
        self.console = ConsoleRing()
        self.console_clients = ConsoleClients(self.sel)
        self.masters: list[int] = []
        self.slaves: list[int] = []
        self.init_pid = 0
        self.init_pidfd = -1
        self.relay_pidfd = -1  # the port-forward relay of the current boot
        self.started_at = 0.0
        self.status = "Stopped"
        self.stop_deadline: float | None = None
        self.stop_unheard = False  # the halt signal reached an init not handling it yet
        self.stop_waiters: list[socket.socket] = []
        self.execs: dict[int, tuple[int, socket.socket]] = {}  # pidfd -> (pid, client)
        self.zygote: zygote.Zygote | None = None  # forks the exec helpers in our cgroups
        self.zygote_wanted = False  # one can live here and the last spawn worked: respawn
        self.listener: socket.socket | None = None
        self.filter = security.build_seccomp(self.plan)
        self.exit_reason = ""
        self.boots = 0

    # -- boot --------------------------------------------------------------------------------

    def boot(self, *, reboot: bool = False) -> int:
        """Create cgroups, ptys and the container; returns PID 1's host pid. The NICs are
        the manager's job on a start (it plugs them in-process right after, pyroute2
        loaded); after a reboot from inside, ours (the manager is not involved)."""
        plan = self.plan
        idmap = plan.idmap  # the container's root and its tty group (5), on the host
        uid = idmap.host_uid(0) if idmap else 0
        gid = idmap.host_gid(0) if idmap else 0
        tty_gid = idmap.host_gid(5) if idmap and idmap.size > 5 else gid + 5
        if not reboot and self.cgroups.exists(plan.name) and self.cgroups.pids(plan.name):
            # A container of this name runs in it (started outside this supervisor's
            # lock, e.g. by another daemon): never take its cgroup apart.
            raise LxmgrError(f"Instance '{plan.name}' still has processes in its cgroup")
        self.cgroups.delete(plan.name)  # leftovers of an earlier boot (reboot) reset systemd
        self.cgroups.create(plan.name, uid, gid)
        try:
            self.cgroups.apply_limits(plan.name, self.cfg.limits)
            self.cgroups.apply_devices(plan.name, plan.cgroup_device_rules())
            consoles = self._open_ptys(uid, tty_gid)
            self.init_pid = child.start(plan, consoles)
        except BaseException:
            self._close_ptys()
            self.cgroups.kill(plan.name)
            self.cgroups.delete(plan.name)
            raise
        self.init_pidfd = libc.pidfd_open(self.init_pid)
        self.sel.register(self.init_pidfd, selectors.EVENT_READ, self._on_init_exit)
        self._start_zygote()
        if reboot:
            self._attach_nics()
        self._start_relay()
        self.started_at = time.time()
        self.status = "Running"
        self.stop_deadline = None
        self.boots += 1
        self._write_state()
        return self.init_pid

    def _nics(self) -> list[dict[str, Any]]:
        """The NIC specs the manager wrote (re-read each time: NICs are hot-plugged)."""
        if not self.cfg.nics_file:
            return []
        try:
            with open(self.cfg.nics_file) as f:
                nics = json.load(f)
            return [n for n in nics if isinstance(n, dict)] if isinstance(nics, list) else []
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as err:
            log.error("Could not read the NIC specs: %s", err)
            return []

    def _detach_nics(self) -> None:
        """After the container's end: remove what outlives its network namespace (the
        egress-shaping IFB devices); the veths went with the namespace."""
        if not any(nic.get("limits_egress") for nic in self._nics()):
            return  # nothing outlives the namespace: no helper on the stop path
        try:
            subprocess.run([sys.executable, "-P", "-S", "-m", "lxmgr.net.attach",
                            self.cfg.nics_file, "--detach"],
                           stdin=subprocess.DEVNULL, close_fds=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as err:
            log.error("Could not detach the NICs: %s", err)

    def _attach_nics(self) -> None:
        """Plug the NICs into the new network namespace from a separate process (pyroute2
        stays out of the supervisor), after a reboot from inside. It runs while
        init boots: systemd-networkd configures eth0 whenever the link appears; the helper
        is reaped with the other orphans on SIGCHLD."""
        if not self._nics():
            return
        try:
            subprocess.Popen([sys.executable, "-P", "-S", "-m", "lxmgr.net.attach",
                              self.cfg.nics_file, str(self.init_pid)],
                             stdin=subprocess.DEVNULL, close_fds=True)
        except OSError as err:
            log.error("Could not start the NIC attach helper: %s", err)

    # -- proxy devices (port forwards): one relay process per boot ----------------------------

    def _start_relay(self) -> None:
        """Start `python -m lxmgr.net.relay` for the proxy devices without nat (those are
        nft rules the manager owns). The manager checked their ports are free; the relay
        logs to our log. It is ours, not the daemon's: forwards survive daemon restarts.
        Tracked by pidfd, so a later SIGTERM never hits a recycled pid."""
        if not self.cfg.proxies_file:
            return
        try:
            with open(self.cfg.proxies_file) as f:
                proxies = json.load(f)
        except FileNotFoundError:
            return
        except (OSError, ValueError) as err:
            log.error("Could not read the proxy devices: %s", err)
            return
        if not isinstance(proxies, list) or all(p.get("nat") for p in proxies
                                                if isinstance(p, dict)):
            return
        try:
            relay = subprocess.Popen([sys.executable, "-P", "-S", "-m", "lxmgr.net.relay",
                                      self.cfg.proxies_file, str(self.init_pid)],
                                     stdin=subprocess.DEVNULL, close_fds=True)
            self.relay_pidfd = libc.pidfd_open(relay.pid)
        except OSError as err:
            log.error("Could not start the proxy relay: %s", err)

    def _stop_relay(self) -> None:
        """SIGTERM the relay and wait until it is gone (its ports are free for the next
        boot's relay); it also exits by itself once PID 1 is gone. Reaped on SIGCHLD."""
        pidfd, self.relay_pidfd = self.relay_pidfd, -1
        if pidfd < 0:
            return
        try:
            for sig, wait in ((signal.SIGTERM, RELAY_STOP_WAIT), (signal.SIGKILL, 1.0)):
                libc.pidfd_send_signal(pidfd, sig)
                if select.select([pidfd], [], [], wait)[0]:  # readable: it has exited
                    break
        except ProcessLookupError:
            pass  # exited and reaped already
        except OSError as err:
            log.error("Could not stop the proxy relay: %s", err)
        finally:
            os.close(pidfd)

    def _reload_relay(self, conn: socket.socket) -> None:
        """The manager rewrote the proxies file of a running container: stop the relay
        (its ports are free once it has exited) and start one for the new devices."""
        if self.status not in ("Running", "Frozen") or self.init_pidfd < 0:
            self._reply(conn, {"error": f"Instance is not running ({self.status})",
                               "status": 409})
            return
        self._stop_relay()
        self._start_relay()
        self._reply(conn, {"ok": True, "relay": self.relay_pidfd >= 0})

    # -- disk devices: hot-plug into the running container, remembered for reboots ----------

    def _disk(self, conn: socket.socket, cmd: str, msg: dict[str, Any]) -> None:
        """Mount or unmount one disk device in the container (a forked helper joins its
        mount namespace); the plan's disk list follows, so a reboot from inside keeps it."""
        if self.status not in ("Running", "Frozen") or self.init_pid <= 0:
            self._reply(conn, {"error": f"Instance is not running ({self.status})",
                               "status": 409})
            return
        disk = disks.DiskMount.from_dict(msg["disk"])
        idmap = self.plan.idmap
        owner = (idmap.host_uid(0), idmap.host_gid(0)) if idmap else (0, 0)
        action = "attach" if cmd == protocol.DISK_ATTACH else "detach"
        done = disks.in_container(self.init_pid, action, disk, disk.shift and idmap is not None,
                                  owner)
        self.plan.disks = [d for d in self.plan.disks if d.get("device") != disk.device]
        if action == "attach":
            self.plan.disks.append(disk.to_dict())
        self._reply(conn, {"ok": True, "done": done})

    def _device(self, conn: socket.socket, cmd: str, msg: dict[str, Any]) -> None:
        """Plug or unplug one unix-char, unix-block or gpu device (supervisor.devices)."""
        if self.status not in ("Running", "Frozen") or self.init_pid <= 0:
            self._reply(conn, {"error": f"Instance is not running ({self.status})",
                               "status": 409})
            return
        name = str(msg["device"])
        if cmd == protocol.DEVICE_ATTACH:
            idmap = self.plan.idmap
            owner = (idmap.host_uid(0), idmap.host_gid(0)) if idmap else (0, 0)
            mounts = [disks.DiskMount.from_dict(d) for d in msg.get("disks") or []]
            devices.attach(self.plan, self.cgroups, self.init_pid, owner, name, mounts,
                           [str(r) for r in msg.get("rules") or []])
        else:
            devices.detach(self.plan, self.cgroups, self.init_pid, name)
        self._reply(conn, {"ok": True})

    def _open_ptys(self, uid: int, tty_gid: int) -> child.Consoles:
        """Host ptys for /dev/console and /dev/ttyN, owned by the container root."""
        slaves = []
        for _ in range(1 + self.cfg.tty_count):
            master, slave = os.openpty()
            path = os.ttyname(slave)
            os.chown(path, uid, tty_gid)
            os.chmod(path, 0o620)
            # Hold the slave open for the container's life: when its last fd closes the
            # master reads EIO and systemd's reopen of /dev/console spins on EIO.
            self.slaves.append(slave)
            os.set_blocking(master, False)
            self.masters.append(master)
            slaves.append(path)
            self.sel.register(master, selectors.EVENT_READ, self._on_console)
        return child.Consoles(slaves[0], slaves[1:])

    def _close_ptys(self) -> None:
        self.console_clients.close_all()
        for fd in self.masters:
            self.sel.unregister(fd)
            os.close(fd)
        for fd in self.slaves:
            os.close(fd)
        self.masters = []
        self.slaves = []

    # -- main loop ---------------------------------------------------------------------------

    def serve(self, listener: socket.socket) -> None:
        """Run until the container is gone for good (stopped, not rebooted)."""
        self.listener = listener
        listener.setblocking(False)
        self.sel.register(listener, selectors.EVENT_READ, self._on_accept)
        # As subreaper we inherit every orphan of our exec helpers (a command whose helper
        # died): reap them, or PID 1 hangs in zap_pid_ns_processes waiting for them.
        self.wakeup_r, wakeup_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wakeup_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.sel.register(self.wakeup_r, selectors.EVENT_READ, self._on_sigchld)
        while self.status != "Stopped":
            timeout = None
            if self.stop_deadline is not None:
                timeout = max(0.0, self.stop_deadline - time.monotonic())
                if self.stop_unheard:
                    timeout = min(timeout, UNHEARD_POLL)
            for key, _mask in self.sel.select(timeout):
                key.data(key.fileobj)
            if self.stop_unheard and self.stop_deadline is not None and self._init_hears():
                self.stop_unheard = False  # its handler is there now: say it again
                self._signal_init(self.plan.stop_signal)
            if self.stop_deadline is not None and time.monotonic() >= self.stop_deadline:
                log.info("Stop timed out: killing the container")
                self.stop_deadline = None
                self.cgroups.kill(self.plan.name)

    def _on_sigchld(self, fd: int) -> None:
        try:
            while os.read(fd, 512):
                pass
        except BlockingIOError:
            pass
        tracked = {self.init_pid} | {pid for pid, _ in self.execs.values()}
        if self.zygote is not None:  # it and its helpers (ours once it died) are waited for
            tracked |= {self.zygote.pid} | self.zygote.pids()
        try:
            with open(f"/proc/self/task/{os.getpid()}/children") as f:
                children = [int(p) for p in f.read().split()]
        except OSError:
            return
        for pid in children:
            if pid not in tracked:
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass

    def _on_accept(self, listener: socket.socket) -> None:
        conn, _ = listener.accept()
        conn.setblocking(True)
        conn.settimeout(5)
        try:
            msg, fds = protocol.recv(conn)
        except (OSError, ValueError):
            conn.close()
            return
        if msg is None:
            conn.close()
            return
        try:
            keep = self._dispatch(conn, msg, fds)
        except LxmgrError as err:
            self._reply(conn, {"error": str(err), "status": err.status})
            keep = False
        except OSError as err:
            self._reply(conn, {"error": f"{msg.get('cmd')}: {err}", "status": 500})
            keep = False
        finally:
            for fd in fds:
                os.close(fd)
        if not keep:
            conn.close()

    def _reply(self, conn: socket.socket, msg: dict[str, Any]) -> None:
        try:
            protocol.send(conn, msg)
        except OSError:
            pass

    def _dispatch(self, conn: socket.socket, msg: dict[str, Any], fds: list[int]) -> bool:
        """Handle one request; True if the connection stays open for a later reply."""
        cmd = msg.get("cmd")
        if cmd == protocol.GET_STATE:
            self._reply(conn, {"ok": True, **self.state()})
        elif cmd == protocol.STOP:
            return self._stop(conn, float(msg.get("timeout", 30)), bool(msg.get("force")))
        elif cmd == protocol.FREEZE:
            self.cgroups.freeze(self.plan.name)
            self.status = "Frozen"
            self._write_state()
            self._reply(conn, {"ok": True})
        elif cmd == protocol.UNFREEZE:
            self.cgroups.thaw(self.plan.name)
            self.status = "Running"
            self._write_state()
            self._reply(conn, {"ok": True})
        elif cmd == protocol.EXEC:
            return self._exec(conn, msg, fds)
        elif cmd == protocol.CONSOLE_LOG:
            self._reply(conn, {"ok": True, "log": self.console.read().decode(errors="replace")})
        elif cmd == protocol.CONSOLE_CLEAR:
            self.console.clear()
            self._reply(conn, {"ok": True})
        elif cmd in (protocol.CONSOLE_ATTACH, protocol.CONSOLE_RESIZE):
            self._console_request(conn, cmd, msg, fds)
        elif cmd == protocol.RELOAD_PROXIES:
            self._reload_relay(conn)
        elif cmd in (protocol.DISK_ATTACH, protocol.DISK_DETACH):
            self._disk(conn, cmd, msg)
        elif cmd in (protocol.DEVICE_ATTACH, protocol.DEVICE_DETACH):
            self._device(conn, cmd, msg)
        else:
            self._reply(conn, {"error": f"Unknown command '{cmd}'", "status": 400,
                               "unknown_command": True,
                               "protocol": protocol.PROTOCOL_VERSION})
        return False

    def _console_request(self, conn: socket.socket, cmd: str, msg: dict[str, Any],
                         fds: list[int]) -> None:
        if not self.masters:
            self._reply(conn, {"error": "The container has no console", "status": 409})
        elif cmd == protocol.CONSOLE_RESIZE:
            libc.set_winsize(self.masters[0], int(msg.get("rows", 24)), int(msg.get("cols", 80)))
            self._reply(conn, {"ok": True})
        elif len(fds) != 1:
            self._reply(conn, {"error": "console_attach takes one socket", "status": 400})
        else:
            self.console_clients.attach(os.dup(fds[0]), self.masters[0])
            self._reply(conn, {"ok": True})

    def state(self) -> dict[str, Any]:
        """GET_STATE's reply and state.json: also how many times init booted under this
        supervisor and why the last one ended (exit_reason), which the daemon's watch
        turns into lifecycle events."""
        return {"status": self.status, "pid": self.init_pid, "started_at": self.started_at,
                "supervisor_pid": os.getpid(), "protocol": protocol.PROTOCOL_VERSION,
                "boots": self.boots, "exit": self.exit_reason}

    # -- stop, reboot ------------------------------------------------------------------------

    def _stop(self, conn: socket.socket, timeout: float, force: bool) -> bool:
        self.stop_waiters.append(conn)
        self.status = "Stopping"
        self.exit_reason = "stop"
        self._write_state()  # listings read state.json: they show Stopping too
        if self.cgroups.is_frozen(self.plan.name):
            self.cgroups.thaw(self.plan.name)
        if force:
            self.cgroups.kill(self.plan.name)
            return True
        self._signal_init(self.plan.stop_signal)
        # The kernel drops a signal that a PID 1 neither handles nor blocks (an init that
        # just started has no handler yet: systemd takes ~1 s): sent again once it has.
        self.stop_unheard = not self._init_hears()
        self.stop_deadline = time.monotonic() + max(0.0, timeout)
        return True

    def _signal_init(self, sig: int) -> None:
        try:
            libc.pidfd_send_signal(self.init_pidfd, sig)
        except ProcessLookupError:
            pass

    def _init_hears(self) -> bool:
        """Whether init catches or blocks the stop signal (a blocked one stays pending),
        from SigCgt and SigBlk in /proc/PID/status; True when that cannot be read."""
        bit = 1 << (int(self.plan.stop_signal) - 1)
        try:
            with open(f"/proc/{self.init_pid}/status", "rb") as f:
                fields = dict(line.split(b":", 1) for line in f.read().splitlines()
                              if line.startswith((b"SigCgt", b"SigBlk")))
            mask = int(fields[b"SigCgt"], 16) | int(fields[b"SigBlk"], 16)
        except (OSError, KeyError, ValueError):
            return True
        return bool(mask & bit)

    def _on_init_exit(self, _fd: int) -> None:
        _, wstatus = os.waitpid(self.init_pid, 0)
        self.sel.unregister(self.init_pidfd)
        os.close(self.init_pidfd)
        self.init_pidfd = -1
        if self.exit_reason != "stop":
            self.exit_reason = exit_reason(wstatus)
        rebooting = self.exit_reason == "reboot"
        log.info("Container init exited (status %#x)%s", wstatus,
                 ", rebooting" if rebooting else "")
        # PID 1 is gone, so the kernel killed the rest of its pid namespace; make sure.
        self._cleanup(self.cgroups.kill)
        self._stop_zygote()  # killed with the cgroup: its orphans' statuses are ours
        self._stop_relay()
        self._detach_nics()
        self._drain_console()
        self._close_ptys()
        if rebooting:
            try:
                self.boot(reboot=True)
                return
            except (LxmgrError, OSError) as err:
                log.error("Reboot failed: %s", err)
        self._cleanup(self.cgroups.delete)
        self.status = "Stopped"
        self.stop_deadline = None
        self._write_state()
        self.save_console_log()
        self.close_listener()  # before replying: after a stop, nobody can connect any more
        for conn in self.stop_waiters:
            self._reply(conn, {"ok": True})
            conn.close()
        self.stop_waiters = []

    def close_listener(self) -> None:
        if self.listener is None:
            return
        self.sel.unregister(self.listener)
        self.listener.close()
        self.listener = None
        try:
            os.unlink(self.cfg.socket)
        except FileNotFoundError:
            pass

    def _cleanup(self, action) -> None:  # type: ignore[no-untyped-def]
        """Run a cleanup step; a failure is logged, the supervisor goes on."""
        try:
            action(self.plan.name)
        except (LxmgrError, OSError) as err:
            log.error("Cleanup of '%s' failed: %s", self.plan.name, err)

    # -- exec --------------------------------------------------------------------------------

    def _exec(self, conn: socket.socket, msg: dict[str, Any], fds: list[int]) -> bool:
        if self.status not in ("Running",):
            self._reply(conn, {"error": f"Instance is not running ({self.status})",
                               "status": 409})
            return False
        spec = attach.ExecSpec(
            argv=[str(a) for a in msg["argv"]], env=dict(msg.get("env") or {}),
            cwd=str(msg.get("cwd") or ""), uid=int(msg.get("uid", 0)),
            gid=int(msg.get("gid", 0)), pty=bool(msg.get("pty")),
            rows=int(msg.get("rows", 24)), cols=int(msg.get("cols", 80)))
        if not spec.argv:
            self._reply(conn, {"error": "Missing command", "status": 400})
            return False
        if not spec.pty and len(fds) != 3:
            self._reply(conn, {"error": "exec needs stdin, stdout and stderr", "status": 400})
            return False
        if self.zygote is None and self.zygote_wanted:
            self._start_zygote()  # the last one died (the container's OOM killer, say)
        if self.zygote is not None:
            try:
                self.zygote.submit(conn, spec, list(fds))
                return True
            except OSError as err:
                log.warning("The exec zygote is gone (%s): joining the cgroups per exec",
                            attach.describe(err))
                self._stop_zygote()
        procs = self._exec_cgroup_paths()
        pid = os.fork()
        if pid == 0:
            try:
                self._after_fork()
            finally:
                attach.enter(self.plan, self.init_pid, procs, spec, list(fds), conn,
                             self.filter)
        pidfd = libc.pidfd_open(pid)
        self.execs[pidfd] = (pid, conn)
        self.sel.register(pidfd, selectors.EVENT_READ, self._on_exec_exit)
        return True

    def _after_fork(self) -> None:
        """In a child forked to run Python: drop the supervisor's loop and signal set-up."""
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        self.sel.close()

    def _start_zygote(self) -> None:
        """The exec zygote of this boot (supervisor.zygote: why); without one (a cgroup2
        tree with controllers, or it failed), each exec's helper joins the cgroups."""
        self._stop_zygote()
        procs = self._exec_cgroup_paths()
        self.zygote_wanted = zygote.can_host(procs)
        if not self.zygote_wanted:
            return
        try:
            self.zygote = zygote.Zygote.spawn(self.plan, self.init_pid, procs, self.filter,
                                              self._after_fork)
        except (LxmgrError, OSError) as err:
            log.warning("%s: joining the cgroups per exec", err)
            self.zygote_wanted = False
            return
        self.sel.register(self.zygote.sock, selectors.EVENT_READ, self._on_zygote)

    def _on_zygote(self, _sock: socket.socket) -> None:
        assert self.zygote is not None
        for conn, reply in self.zygote.read():
            self._reply(conn, reply)
            conn.close()
        if self.zygote.dead:
            self._stop_zygote()

    def _stop_zygote(self) -> None:
        """Kill and reap the zygote; answer the execs it never started and wait for the
        helpers it left (reparented to us, their subreaper) as for ours."""
        z, self.zygote = self.zygote, None
        if z is None:
            return
        self.sel.unregister(z.sock)
        replies, orphans = z.close()
        for conn, reply in replies:
            self._reply(conn, reply)
            conn.close()
        for pid, pidfd, conn in orphans:
            self.execs[pidfd] = (pid, conn)
            self.sel.register(pidfd, selectors.EVENT_READ, self._on_exec_exit)

    def _exec_cgroup_paths(self) -> list[str]:
        """cgroup.procs to join: the container's root, or a leaf where the root may not
        hold processes (cgroup2 with controllers enabled below it)."""
        paths = []
        for path in self.cgroups.procs_paths(self.plan.name):
            top = os.path.dirname(path)
            if read_file(os.path.join(top, "cgroup.subtree_control")):
                leaf = os.path.join(top, ".lxmgr-exec")
                try:
                    os.mkdir(leaf)
                except FileExistsError:
                    pass
                path = os.path.join(leaf, "cgroup.procs")
            paths.append(path)
        return paths

    def _on_exec_exit(self, pidfd: int) -> None:
        pid, conn = self.execs.pop(pidfd)
        self.sel.unregister(pidfd)
        os.close(pidfd)
        try:
            _, wstatus = os.waitpid(pid, 0)
        except ChildProcessError:  # a zygote's helper it reaped before dying: status lost
            self._reply(conn, {"error": "The exec helper's exit status was lost",
                               "status": 500})
            conn.close()
            return
        code = os.waitstatus_to_exitcode(wstatus)
        self._reply(conn, {"ok": True, "exit": code if code >= 0 else 128 - code})
        conn.close()

    # -- console, state ----------------------------------------------------------------------

    def _on_console(self, fd: int) -> None:
        try:
            data = os.read(fd, 65536)
        except OSError as err:
            if err.errno in (errno.EAGAIN, errno.EINTR, errno.EIO):
                return
            data = b""
        if data:
            if fd == self.masters[0]:
                self.console.append(data)
                self.console_clients.broadcast(fd, data)
        else:
            self.sel.unregister(fd)
            os.close(fd)
            self.masters.remove(fd)

    def _drain_console(self) -> None:
        for fd in list(self.masters[:1]):
            try:
                while data := os.read(fd, 65536):
                    self.console.append(data)
            except OSError:
                pass

    def _write_state(self) -> None:
        """state.json, a cache of what GET_STATE answers. When it cannot be written (a full
        disk) the change it records has happened all the same: the stale file goes (readers
        then ask us) instead of failing the command that made the change."""
        if not self.cfg.state_file:
            return
        tmp = f"{self.cfg.state_file}.tmp"
        try:
            with open(tmp, "w") as f:
                json.dump(self.state(), f)
            os.replace(tmp, self.cfg.state_file)
        except OSError as err:
            log.warning("Could not write %s: %s", self.cfg.state_file, err.strerror)
            for path in (tmp, self.cfg.state_file):
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass

    def save_console_log(self) -> None:
        if self.cfg.console_log:
            with open(self.cfg.console_log, "wb") as f:
                f.write(self.console.read())


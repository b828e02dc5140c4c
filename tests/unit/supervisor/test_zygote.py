"""The supervisor's side of the exec zygote: where one may live, and how its messages become
exec replies (a stand-in process plays the zygote; no cgroup is touched)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Iterator

import pytest

from lxmgr.runtime.attach import ExecSpec
from lxmgr.supervisor import protocol
from lxmgr.supervisor.zygote import Zygote, can_host


def test_can_host_only_where_no_controller_can_be_enabled(tmp_path) -> None:  # type: ignore[no-untyped-def]
    v1 = tmp_path / "memory" / "c1"
    unified = tmp_path / "unified" / "c1"
    v2 = tmp_path / "v2" / "c1"
    for d in (v1, unified, v2):
        d.mkdir(parents=True)
    (unified / "cgroup.controllers").write_text("\n")  # a hybrid host's controller-less tree
    (v2 / "cgroup.controllers").write_text("cpu memory pids\n")
    assert can_host([str(v1 / "cgroup.procs"), str(unified / "cgroup.procs")])
    assert not can_host([str(v1 / "cgroup.procs"), str(v2 / "cgroup.procs")])


@pytest.fixture
def zygote() -> Iterator[tuple[Zygote, socket.socket, subprocess.Popen[bytes]]]:
    """A Zygote handle on a stand-in process, with the zygote's end of the socketpair."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    stand_in = subprocess.Popen(["sleep", "60"])
    z = Zygote(stand_in.pid, ours)
    try:
        yield z, theirs, stand_in
    finally:
        if not z.dead:
            z.close()
        theirs.close()
        stand_in.wait()


def client() -> tuple[socket.socket, socket.socket]:
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


def test_submit_then_status_becomes_the_exit_reply(zygote) -> None:  # type: ignore[no-untyped-def]
    z, theirs, _ = zygote
    conn, peer = client()
    z.submit(conn, ExecSpec(argv=["true"]), [0, 1, 2])
    msg, fds = protocol.recv(theirs, 4)
    assert msg == {"seq": 1, "spec": {"argv": ["true"], "env": {}, "cwd": "", "uid": 0,
                                      "gid": 0, "pty": False, "rows": 24, "cols": 80}}
    assert len(fds) == 4  # conn, stdin, stdout, stderr
    for fd in fds:
        os.close(fd)
    helper = subprocess.Popen(["sleep", "60"])
    pidfd = os.pidfd_open(helper.pid)
    protocol.send(theirs, {"seq": 1, "pid": helper.pid}, [pidfd])
    os.close(pidfd)
    assert z.read() == [] and z.pids() == {helper.pid}
    protocol.send(theirs, {"seq": 1, "status": 0x0900})  # exit(9)
    assert z.read() == [(conn, {"ok": True, "exit": 9})]
    protocol.send(theirs, {"seq": 1, "status": signal.SIGKILL})  # unknown seq: ignored
    assert z.read() == [] and z.pids() == set()
    helper.kill()
    helper.wait()
    conn.close()
    peer.close()


def test_killed_helper_and_refused_fork(zygote) -> None:  # type: ignore[no-untyped-def]
    z, theirs, _ = zygote
    first, second = client(), client()
    z.submit(first[0], ExecSpec(argv=["a"]), [0, 1, 2])
    z.submit(second[0], ExecSpec(argv=["b"]), [])
    protocol.send(theirs, {"seq": 1, "pid": 4242})
    protocol.send(theirs, {"seq": 1, "status": signal.SIGKILL})
    protocol.send(theirs, {"seq": 2, "error": "Failed to enter the instance: Resource "
                           "temporarily unavailable", "status": 500})
    assert z.read() == []
    assert z.read() == [(first[0], {"ok": True, "exit": 128 + signal.SIGKILL})]
    assert z.read() == [(second[0], {"error": "Failed to enter the instance: Resource "
                                     "temporarily unavailable", "status": 500})]
    for pair in (first, second):
        for s in pair:
            s.close()


def test_close_answers_unstarted_and_hands_over_orphans(zygote) -> None:  # type: ignore[no-untyped-def]
    z, theirs, stand_in = zygote
    started, pending = client(), client()
    z.submit(started[0], ExecSpec(argv=["a"]), [0, 1, 2])
    z.submit(pending[0], ExecSpec(argv=["b"]), [0, 1, 2])
    helper = subprocess.Popen(["sleep", "60"])
    pidfd = os.pidfd_open(helper.pid)
    protocol.send(theirs, {"seq": 1, "pid": helper.pid}, [pidfd])
    os.close(pidfd)
    z.read()
    theirs.close()  # the zygote died
    assert z.read() == [] and z.dead
    replies, orphans = z.close()
    with pytest.raises(ProcessLookupError):  # killed and reaped
        os.kill(stand_in.pid, 0)
    assert replies == [(pending[0], {"error": "Failed to enter the instance: the exec "
                                     "zygote died", "status": 500})]
    assert [(pid, conn) for pid, _, conn in orphans] == [(helper.pid, started[0])]
    os.close(orphans[0][1])
    helper.kill()
    helper.wait()
    for pair in (started, pending):
        for s in pair:
            s.close()

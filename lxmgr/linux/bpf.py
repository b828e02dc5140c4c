"""Thin ctypes wrappers for the bpf(2) commands a cgroup device program needs: load,
attach, detach, query, get-fd-by-id. C semantics: each failure raises OSError(errno).

`union bpf_attr` is built as a zeroed byte buffer with each command's fields at their
offsets in include/uapi/linux/bpf.h (the kernel reads only `size` bytes and requires
whatever it knows beyond the command's last field to be zero). Constants keep the
header's spelling. Imports only the stdlib; no policy (lxmgr.cgroups.devices builds the
program and decides what to attach).
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long

# <asm/unistd_64.h>
SYS_bpf = 321

# <linux/bpf.h> enum bpf_cmd
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_PROG_QUERY = 16
# enum bpf_prog_type, enum bpf_attach_type
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
# attach flags
BPF_F_ALLOW_OVERRIDE = 1 << 0
BPF_F_ALLOW_MULTI = 1 << 1
BPF_F_REPLACE = 1 << 2

ATTR_SIZE = 128  # covers every field used here (the kernel's union is larger)
LOG_SIZE = 1 << 16
MAX_QUERY = 64  # programs attached to one cgroup we ever expect to list
PROG_INFO_SIZE = 80  # struct bpf_prog_info up to and including name[16]


def _bpf(cmd: int, attr: ctypes.Array[ctypes.c_char], what: str) -> int:
    ret = _syscall(ctypes.c_long(SYS_bpf), ctypes.c_int(cmd), attr,
                   ctypes.c_uint(ATTR_SIZE))
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return int(ret)


def _attr(fmt: str, *values: object) -> ctypes.Array[ctypes.c_char]:
    buf = ctypes.create_string_buffer(ATTR_SIZE)
    struct.pack_into(fmt, buf, 0, *values)
    return buf


def prog_load(prog_type: int, insns: bytes, license: str = "GPL",
              name: str = "") -> int:
    """BPF_PROG_LOAD: a program fd (close-on-exec). A verifier refusal raises OSError
    whose message carries the verifier's log."""
    code = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(license.encode())
    log = ctypes.create_string_buffer(LOG_SIZE)
    # prog_type, insn_cnt, insns, license, log_level, log_size, log_buf, kern_version,
    # prog_flags, prog_name[16]
    attr = _attr("=IIQQIIQII16s", prog_type, len(insns) // 8, ctypes.addressof(code),
                 ctypes.addressof(lic), 0, 0, 0, 0, 0, name.encode()[:15])
    try:
        return _bpf(BPF_PROG_LOAD, attr, "bpf(BPF_PROG_LOAD)")
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.EACCES):  # the verifier said no: ask why
            raise
    attr = _attr("=IIQQIIQII16s", prog_type, len(insns) // 8, ctypes.addressof(code),
                 ctypes.addressof(lic), 1, LOG_SIZE, ctypes.addressof(log), 0, 0,
                 name.encode()[:15])
    try:
        return _bpf(BPF_PROG_LOAD, attr, "bpf(BPF_PROG_LOAD)")
    except OSError as err:
        text = log.value.decode(errors="replace").strip().replace("\n", "; ")
        raise OSError(err.errno, f"{err.strerror}: {text[-500:]}" if text else
                      err.strerror) from None


def prog_attach(target_fd: int, prog_fd: int, attach_type: int, flags: int = 0,
                replace_fd: int = 0) -> None:
    """BPF_PROG_ATTACH of prog_fd to the object target_fd (a cgroup directory fd)."""
    _bpf(BPF_PROG_ATTACH, _attr("=IIIII", target_fd, prog_fd, attach_type, flags,
                                replace_fd), "bpf(BPF_PROG_ATTACH)")


def prog_detach(target_fd: int, prog_fd: int, attach_type: int) -> None:
    """BPF_PROG_DETACH of prog_fd (needed with BPF_F_ALLOW_MULTI) from target_fd."""
    _bpf(BPF_PROG_DETACH, _attr("=III", target_fd, prog_fd, attach_type),
         "bpf(BPF_PROG_DETACH)")


def prog_query(target_fd: int, attach_type: int) -> list[int]:
    """BPF_PROG_QUERY: ids of the programs attached to target_fd itself (not inherited)."""
    ids = (ctypes.c_uint32 * MAX_QUERY)()
    attr = _attr("=IIIIQI", target_fd, attach_type, 0, 0, ctypes.addressof(ids), MAX_QUERY)
    _bpf(BPF_PROG_QUERY, attr, "bpf(BPF_PROG_QUERY)")
    count = struct.unpack_from("=I", attr, 24)[0]
    return list(ids[: min(count, MAX_QUERY)])


def prog_get_fd_by_id(prog_id: int) -> int:
    """BPF_PROG_GET_FD_BY_ID: an fd of a loaded program."""
    return _bpf(BPF_PROG_GET_FD_BY_ID, _attr("=III", prog_id, 0, 0),
                "bpf(BPF_PROG_GET_FD_BY_ID)")


def prog_info(prog_fd: int) -> tuple[int, str]:
    """BPF_OBJ_GET_INFO_BY_FD of a program: (id, name)."""
    info = ctypes.create_string_buffer(PROG_INFO_SIZE)
    _bpf(BPF_OBJ_GET_INFO_BY_FD, _attr("=IIQ", prog_fd, PROG_INFO_SIZE,
                                       ctypes.addressof(info)), "bpf(BPF_OBJ_GET_INFO_BY_FD)")
    prog_id = struct.unpack_from("=I", info, 4)[0]
    name = info.raw[64:80].split(b"\0", 1)[0].decode(errors="replace")
    return prog_id, name

"""The device access list of a container's cgroup: which device nodes its processes may
open (read, write) or create (mknod), in cgroup v1's `devices` controller and in cgroup2
with a BPF_PROG_TYPE_CGROUP_DEVICE program (as LXC, src/lxc/cgroups/cgroup2_devices.c).

Rules use cgroup v1's syntax ("c 1:3 rwm", "c 136:* rwm", "b *:* m"; Documentation/
admin-guide/cgroup-v1/devices.rst): everything not listed is denied. Pure builders
(parse_rule, build_program, build_v1_writes) decide; apply_v1 and attach_program only walk
their result. Imports lxmgr.linux.bpf, cgroups.base's file helpers and lxmgr.errors.
"""

from __future__ import annotations

import logging
import os
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from lxmgr.cgroups.base import read_file, write_file
from lxmgr.errors import InvalidConfig, KernelError
from lxmgr.linux import bpf

log = logging.getLogger(__name__)

PROGRAM_NAME = "lxmgr_devices"  # how our programs are told from anyone else's
# <linux/kdev_t.h>: a dev_t has a 12-bit major and a 20-bit minor (so every number fits the
# program's signed 32-bit immediates).
MAX_MAJOR, MAX_MINOR = (1 << 12) - 1, (1 << 20) - 1
_RULE_RE = re.compile(r"^([abc]) (\*|[0-9]+):(\*|[0-9]+) ([rwm]{1,3})$")

# <linux/bpf.h>: struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; },
# access_type = (BPF_DEVCG_ACC_* << 16) | BPF_DEVCG_DEV_*.
BPF_DEVCG_ACC_MKNOD, BPF_DEVCG_ACC_READ, BPF_DEVCG_ACC_WRITE = 1, 2, 4
BPF_DEVCG_DEV_BLOCK, BPF_DEVCG_DEV_CHAR = 1, 2
_ACCESS = {"m": BPF_DEVCG_ACC_MKNOD, "r": BPF_DEVCG_ACC_READ, "w": BPF_DEVCG_ACC_WRITE}
_TYPES = {"b": BPF_DEVCG_DEV_BLOCK, "c": BPF_DEVCG_DEV_CHAR}
# <linux/bpf_common.h>, <linux/bpf.h> opcodes
BPF_LDX, BPF_ALU, BPF_JMP, BPF_ALU64 = 0x01, 0x04, 0x05, 0x07
BPF_W, BPF_MEM, BPF_K, BPF_X = 0x00, 0x60, 0x00, 0x08
BPF_AND, BPF_RSH, BPF_MOV = 0x50, 0x70, 0xB0
BPF_JNE, BPF_EXIT = 0x50, 0x90


@dataclass(frozen=True, order=True)
class DeviceRule:
    """One allow entry: type 'a' (any), 'b' or 'c'; major/minor None for '*'."""

    type: str
    major: int | None
    minor: int | None
    access: str  # some of "rwm", in that order

    def __str__(self) -> str:
        if self.type == "a":
            return "a *:* rwm"
        major = "*" if self.major is None else str(self.major)
        minor = "*" if self.minor is None else str(self.minor)
        return f"{self.type} {major}:{minor} {self.access}"


def parse_rule(text: str) -> DeviceRule:
    """A rule in v1 syntax ('a' alone means every device); InvalidConfig if malformed."""
    text = " ".join(text.split())
    if text in ("a", "a *:* rwm"):
        return DeviceRule("a", None, None, "rwm")
    match = _RULE_RE.match(text)
    if not match or len(set(match[4])) != len(match[4]):
        raise InvalidConfig(f"Invalid device cgroup rule '{text}'")
    access = "".join(a for a in "rwm" if a in match[4])
    numbers = [None if n == "*" else int(n) for n in (match[2], match[3])]
    if (numbers[0] or 0) > MAX_MAJOR or (numbers[1] or 0) > MAX_MINOR:
        raise InvalidConfig(f"Invalid device cgroup rule '{text}': number out of range")
    return DeviceRule(match[1], numbers[0], numbers[1], access)


def parse_rules(texts: Iterable[str]) -> list[DeviceRule]:
    """Parsed and de-duplicated, in first-seen order."""
    return list(dict.fromkeys(parse_rule(t) for t in texts))


# -- cgroup2: the eBPF program ---------------------------------------------------------------

def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """struct bpf_insn: u8 code, u8 dst_reg:4 src_reg:4 (little-endian), s16 off, s32 imm."""
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def _rule_block(rule: DeviceRule) -> list[bytes]:
    """Instructions that return 1 (allow) when the access matches rule, else fall through
    to the next block. Registers (set by the prologue): r2 type, r3 access, r4 major,
    r5 minor."""
    checks: list[tuple[int, int, int]] = []  # (kind, register, immediate) of each test
    mask = sum(_ACCESS[a] for a in rule.access)
    if rule.type != "a":
        checks.append((0, 2, _TYPES[rule.type]))
    if rule.major is not None:
        checks.append((0, 4, rule.major))
    if rule.minor is not None:
        checks.append((0, 5, rule.minor))
    body: list[tuple[str, int, int]] = []
    if mask != 7:  # the requested access must be a subset of the mask: (r3 & mask) == r3
        body += [("mov", 1, 3), ("and", 1, mask), ("jne_reg", 1, 3)]
    body += [("jne", reg, imm) for _, reg, imm in checks]
    length = len(body) + 2
    out = []
    for i, (op, a, b) in enumerate(body):
        skip = length - i - 1  # to the first instruction after this block
        if op == "mov":
            out.append(_insn(BPF_ALU | BPF_MOV | BPF_X, dst=a, src=b))
        elif op == "and":
            out.append(_insn(BPF_ALU | BPF_AND | BPF_K, dst=a, imm=b))
        elif op == "jne_reg":
            out.append(_insn(BPF_JMP | BPF_JNE | BPF_X, dst=a, src=b, off=skip))
        else:
            out.append(_insn(BPF_JMP | BPF_JNE | BPF_K, dst=a, off=skip, imm=b))
    out += [_insn(BPF_ALU64 | BPF_MOV | BPF_K, dst=0, imm=1), _insn(BPF_JMP | BPF_EXIT)]
    return out


def build_program(rules: Sequence[DeviceRule]) -> bytes:
    """The eBPF program of an allow list: 1 for an access a rule allows, else 0 (the
    kernel then fails the open or mknod with EPERM)."""
    prologue = [
        _insn(BPF_LDX | BPF_MEM | BPF_W, dst=2, src=1, off=0),  # r2 = ctx->access_type
        _insn(BPF_ALU | BPF_AND | BPF_K, dst=2, imm=0xFFFF),  # r2 &= 0xffff: device type
        _insn(BPF_LDX | BPF_MEM | BPF_W, dst=3, src=1, off=0),  # r3 = ctx->access_type
        _insn(BPF_ALU | BPF_RSH | BPF_K, dst=3, imm=16),  # r3 >>= 16: access
        _insn(BPF_LDX | BPF_MEM | BPF_W, dst=4, src=1, off=4),  # r4 = ctx->major
        _insn(BPF_LDX | BPF_MEM | BPF_W, dst=5, src=1, off=8),  # r5 = ctx->minor
    ]
    blocks = [insn for rule in rules for insn in _rule_block(rule)]
    deny = [_insn(BPF_ALU64 | BPF_MOV | BPF_K, dst=0, imm=0), _insn(BPF_JMP | BPF_EXIT)]
    return b"".join(prologue + blocks + deny)


def attach_program(cgroup_dir: str, rules: Sequence[DeviceRule]) -> None:
    """Load the program for rules and attach it to cgroup_dir (BPF_F_ALLOW_MULTI: programs
    of the ancestors keep applying, the kernel allows only what all allow), then detach the
    programs we attached there before. New before old: while both are attached an access
    needs both, so an update never allows more than either list. The attachment holds the
    program; no fd or pin has to be kept (the cgroup's removal releases it)."""
    dir_fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        old = bpf.prog_query(dir_fd, bpf.BPF_CGROUP_DEVICE)
        prog_fd = bpf.prog_load(bpf.BPF_PROG_TYPE_CGROUP_DEVICE, build_program(rules),
                                name=PROGRAM_NAME)
        try:
            bpf.prog_attach(dir_fd, prog_fd, bpf.BPF_CGROUP_DEVICE, bpf.BPF_F_ALLOW_MULTI)
        finally:
            os.close(prog_fd)
        for prog_id in old:
            _detach_ours(dir_fd, prog_id)
    except OSError as err:
        raise KernelError(f"Failed to set the device program of cgroup '{cgroup_dir}': "
                          f"{err.strerror or err}") from None
    finally:
        os.close(dir_fd)


def _detach_ours(dir_fd: int, prog_id: int) -> None:
    try:
        fd = bpf.prog_get_fd_by_id(prog_id)
    except FileNotFoundError:
        return  # detached meanwhile
    try:
        if bpf.prog_info(fd)[1] == PROGRAM_NAME:
            bpf.prog_detach(dir_fd, fd, bpf.BPF_CGROUP_DEVICE)
    finally:
        os.close(fd)


def attached_programs(cgroup_dir: str) -> list[int]:
    """Ids of the device programs attached to cgroup_dir itself (for tests and doctor)."""
    dir_fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return bpf.prog_query(dir_fd, bpf.BPF_CGROUP_DEVICE)
    finally:
        os.close(dir_fd)


# -- cgroup v1: devices.allow / devices.deny -------------------------------------------------

def build_v1_writes(current: Sequence[DeviceRule],
                    wanted: Sequence[DeviceRule]) -> list[tuple[str, str]]:
    """(file, value) writes turning a v1 devices.list into `wanted`: from the default
    allow-all ("a *:* rwm") first deny all ('a': a cgroup with children refuses it), then
    remove the exceptions no longer wanted, then add the new ones."""
    writes: list[tuple[str, str]] = []
    allow_all = DeviceRule("a", None, None, "rwm")
    if allow_all in current:
        writes.append(("devices.deny", "a"))
        current = []
    writes += [("devices.deny", str(r)) for r in current if r not in wanted]
    writes += [("devices.allow", str(r)) for r in wanted if r not in current]
    return writes


def read_v1_list(cgroup_dir: str) -> list[DeviceRule] | None:
    """The cgroup's devices.list; None when the cgroup is gone."""
    text = read_file(os.path.join(cgroup_dir, "devices.list"))
    if text is None:
        return None
    return [parse_rule(line) for line in text.splitlines() if line.strip()]


def apply_v1(cgroup_dir: str, rules: Sequence[DeviceRule]) -> None:
    """Make the container's v1 devices cgroup allow exactly `rules`. A v1 child cgroup
    starts as a copy of its parent's list and the kernel passes a parent's later removals
    down, never its additions (security/device_cgroup.c: propagate_exception): descendants
    still holding an unchanged copy of their parent's list (made by the container's init
    after boot) get the same additions; ones with a list of their own are left alone."""
    top = read_v1_list(cgroup_dir)
    if top is None:
        raise KernelError(f"No devices.list in '{cgroup_dir}'")
    targets = [cgroup_dir]
    before = {cgroup_dir: top}
    for dirpath, dirnames, _files in os.walk(cgroup_dir):
        for sub in sorted(dirnames):
            path = os.path.join(dirpath, sub)
            listed = read_v1_list(path)
            if listed is not None and dirpath in targets and listed == before[dirpath]:
                before[path] = listed
                targets.append(path)
    for path in targets:
        for file, value in build_v1_writes(before[path], rules):
            log.debug("cgroup %s: %s <- %s", path, file, value)
            # a child cgroup the container's init removed meanwhile is fine
            write_file(os.path.join(path, file), value, missing_ok=path != cgroup_dir)

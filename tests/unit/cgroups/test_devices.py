"""lxmgr.cgroups.devices, pure parts: rule syntax, the v1 write plan and the eBPF program,
run here by a small interpreter of the instructions it uses (the kernel's own run is in
tests/kernel/test_cgroup_devices.py)."""

from __future__ import annotations

import struct

import pytest

from lxmgr.cgroups.devices import (
    BPF_DEVCG_ACC_MKNOD,
    BPF_DEVCG_ACC_READ,
    BPF_DEVCG_ACC_WRITE,
    BPF_DEVCG_DEV_BLOCK,
    BPF_DEVCG_DEV_CHAR,
    DeviceRule,
    build_program,
    build_v1_writes,
    parse_rule,
    parse_rules,
)
from lxmgr.errors import InvalidConfig
from lxmgr.runtime.plan import DEVICE_RULES

M64 = (1 << 64) - 1


def run(program: bytes, dev_type: int, access: int, major: int, minor: int) -> int:
    """Interpret the subset of eBPF build_program emits, on a bpf_cgroup_dev_ctx."""
    ctx = struct.pack("<III", (access << 16) | dev_type, major, minor)
    regs = [0] * 11
    pc = 0
    insns = [struct.unpack_from("<BBhi", program, i) for i in range(0, len(program), 8)]
    for _ in range(10_000):
        code, regs_byte, off, imm = insns[pc]
        dst, src = regs_byte & 0xF, regs_byte >> 4
        pc += 1
        if code == 0x61:  # ldx w
            assert src == 1
            regs[dst] = struct.unpack_from("<I", ctx, off)[0]
        elif code == 0x54:  # and32 imm
            regs[dst] = (regs[dst] & imm) & 0xFFFFFFFF
        elif code == 0x74:  # rsh32 imm
            regs[dst] = (regs[dst] & 0xFFFFFFFF) >> imm
        elif code == 0xBC:  # mov32 reg
            regs[dst] = regs[src] & 0xFFFFFFFF
        elif code == 0xB7:  # mov64 imm
            regs[dst] = imm
        elif code == 0x55:  # jne imm: 64-bit compare with the sign-extended immediate
            if regs[dst] & M64 != imm & M64:
                pc += off
        elif code == 0x5D:  # jne reg
            if regs[dst] != regs[src]:
                pc += off
        elif code == 0x95:  # exit
            return regs[0]
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")
    raise AssertionError("no exit")


RW = BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE
C, B = BPF_DEVCG_DEV_CHAR, BPF_DEVCG_DEV_BLOCK


def test_parse_and_format() -> None:
    assert parse_rule("c 1:3 rwm") == DeviceRule("c", 1, 3, "rwm")
    assert parse_rule("c  136:*  mwr") == DeviceRule("c", 136, None, "rwm")
    assert str(parse_rule("b *:* m")) == "b *:* m"
    assert parse_rule("a") == DeviceRule("a", None, None, "rwm")
    assert parse_rules(["c 1:3 rwm", "c 1:3 rwm", "c 1:5 r"]) == [
        DeviceRule("c", 1, 3, "rwm"), DeviceRule("c", 1, 5, "r")]


@pytest.mark.parametrize("bad", ["x 1:3 rwm", "c 1:3", "c 1:3 rwx", "c 1:3 rr", "c -1:3 r",
                                 "c 4096:0 r", "c 1:1048576 r", "c 1 rwm"])
def test_bad_rules(bad: str) -> None:
    with pytest.raises(InvalidConfig, match="Invalid device cgroup rule"):
        parse_rule(bad)


def test_program_allows_exactly_the_list() -> None:
    prog = build_program(parse_rules(DEVICE_RULES + ["c 226:128 rwm", "b 7:0 r"]))
    assert run(prog, C, RW, 1, 3) == 1  # /dev/null
    assert run(prog, C, BPF_DEVCG_ACC_READ, 1, 9) == 1  # /dev/urandom
    assert run(prog, C, RW, 136, 4242) == 1  # any pty
    assert run(prog, C, RW, 226, 128) == 1  # the added render node
    assert run(prog, C, RW, 10, 237) == 0  # /dev/loop-control
    assert run(prog, C, RW, 1, 4) == 0  # /dev/port
    assert run(prog, C, RW, 226, 0) == 0  # a card not passed
    assert run(prog, B, BPF_DEVCG_ACC_READ, 7, 0) == 1
    assert run(prog, B, RW, 7, 0) == 0  # read-only rule: no write
    assert run(prog, C, RW, 7, 0) == 0  # a char device with a block rule's numbers
    # mknod of anything (not its use), as LXC and LXD allow.
    assert run(prog, B, BPF_DEVCG_ACC_MKNOD, 8, 0) == 1
    assert run(prog, C, BPF_DEVCG_ACC_MKNOD | BPF_DEVCG_ACC_READ, 10, 237) == 0


def test_program_largest_numbers() -> None:
    prog = build_program([DeviceRule("c", 4095, 0xFFFFF, "rw")])
    assert run(prog, C, RW, 4095, 0xFFFFF) == 1
    assert run(prog, C, RW | BPF_DEVCG_ACC_MKNOD, 4095, 0xFFFFF) == 0
    assert run(prog, C, RW, 4095, 0xFFFFE) == 0


def test_empty_program_denies_everything() -> None:
    assert run(build_program([]), C, BPF_DEVCG_ACC_READ, 1, 3) == 0


def test_v1_writes_from_allow_all() -> None:
    wanted = parse_rules(["c 1:3 rwm", "c *:* m"])
    assert build_v1_writes([DeviceRule("a", None, None, "rwm")], wanted) == [
        ("devices.deny", "a"), ("devices.allow", "c 1:3 rwm"), ("devices.allow", "c *:* m")]


def test_v1_writes_update() -> None:
    current = parse_rules(["c 1:3 rwm", "c 10:229 rwm"])
    wanted = parse_rules(["c 1:3 rwm", "c 226:0 rwm"])
    assert build_v1_writes(current, wanted) == [
        ("devices.deny", "c 10:229 rwm"), ("devices.allow", "c 226:0 rwm")]
    assert build_v1_writes(wanted, wanted) == []

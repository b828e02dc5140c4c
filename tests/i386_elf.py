"""A 32-bit x86 (i386) test program built byte by byte: one syscall through int 0x80, then
exit_group() with its errno as the exit status (0 when it succeeded).

The compat ABI is what a seccomp filter must also cover (x86_64 kernels run i386 code with
i386 syscall numbers); no 32-bit compiler or multiarch libc is needed to exercise it. When
the exit_group() fails too (a filter denying every i386 syscall), the program executes ud2
and dies of SIGILL.
"""

from __future__ import annotations

import os
import struct
import subprocess

# i386 syscall numbers (arch/x86/entry/syscalls/syscall_32.tbl).
NR_I386 = {"init_module": 128, "exit_group": 252, "getcpu": 318, "open_by_handle_at": 342}

_BASE = 0x08048000  # the traditional i386 load address
_EHDR = struct.Struct("<16sHHIIIIIHHHHHH")  # Elf32_Ehdr, 52 bytes
_PHDR = struct.Struct("<IIIIIIII")  # Elf32_Phdr, 32 bytes


def _code(nr: int, args: tuple[int, int, int]) -> bytes:
    """mov eax, nr; mov ebx/ecx/edx, args; int 0x80; neg eax; mov ebx, eax;
    mov eax, exit_group; int 0x80; ud2."""
    return (b"\xb8" + struct.pack("<I", nr)
            + b"\xbb" + struct.pack("<I", args[0])
            + b"\xb9" + struct.pack("<I", args[1])
            + b"\xba" + struct.pack("<I", args[2])
            + b"\xcd\x80" + b"\xf7\xd8" + b"\x89\xc3"
            + b"\xb8" + struct.pack("<I", NR_I386["exit_group"]) + b"\xcd\x80"
            + b"\x0f\x0b")


def i386_program(syscall: str, args: tuple[int, int, int] = (0, 0, 0)) -> bytes:
    """A static ELF32 executable making `syscall` (a name of NR_I386) with args."""
    code = _code(NR_I386[syscall], args)
    offset = _EHDR.size + _PHDR.size
    size = offset + len(code)
    ident = b"\x7fELF" + bytes([1, 1, 1])  # ELFCLASS32, little endian, EV_CURRENT
    ehdr = _EHDR.pack(ident.ljust(16, b"\0"), 2, 3, 1, _BASE + offset, _EHDR.size, 0, 0,
                      _EHDR.size, _PHDR.size, 1, 0, 0, 0)  # ET_EXEC, EM_386
    phdr = _PHDR.pack(1, 0, _BASE, _BASE, size, size, 5, 0x1000)  # PT_LOAD, R+X
    return ehdr + phdr + code


def write_program(path: str, syscall: str, args: tuple[int, int, int] = (0, 0, 0)) -> str:
    """Write the program to path, executable; returns path."""
    with open(path, "wb") as f:
        f.write(i386_program(syscall, args))
    os.chmod(path, 0o755)
    return path


def host_runs_i386(path: str) -> bool:
    """Whether this kernel executes i386 programs (IA32_EMULATION, not ia32_emulation=0):
    path, written by write_program for getcpu, exits 0 when run unfiltered."""
    try:
        return subprocess.run([path], timeout=10).returncode == 0
    except OSError:
        return False

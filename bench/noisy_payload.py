"""The noisy container's workload for bench/noisy.py: one perl program (the debian image has
perl-base, no python) that runs the hogs of a phase until a deadline, and the argv that starts
it detached through exec.

Imports only the stdlib. Each hog stops itself at the deadline (every loop checks `time`), and
the program runs under `timeout -s KILL`, which puts itself and its child in their own process
group and kills that whole group when the deadline plus a grace has passed (coreutils
src/timeout.c: setpgid(0, 0), then kill(0, sig) unless --foreground), so a fork bomb that
ignored its deadline still dies. The container's cgroup limits bound what each hog can take.

Hogs (`roles`):
- cpu: `--cpu-hogs` busy loops.
- memory: a child appends 16 MiB strings until the memory cgroup's OOM killer ends it; its
  parent (small, so never the OOM victim) makes a new one, until the deadline.
- disk: writes 1 MiB blocks (fsync every 64 MiB) into /var/tmp/lxmgr-noisy-fill until the
  write fails (the root disk's quota or the pool is full) or `--disk-mib` are written, then
  deletes the file and starts again.
- fork: a fork bomb: every process forks in a loop, parents and children alike, until the
  deadline; the pids cgroup makes fork fail with EAGAIN at limits.processes, and every
  process keeps retrying (spinning, as a real bomb does).

Each hog except the bomb writes `role key=value ...` to /run/lxmgr-noisy.<role> when it ends,
and the program writes /run/lxmgr-noisy.done once every hog it started has ended.
"""

from __future__ import annotations

GRACE = 10  # seconds after the deadline before `timeout` SIGKILLs the process group
STATS_GLOB = "/run/lxmgr-noisy.*"
FILL_PATH = "/var/tmp/lxmgr-noisy-fill"
ROLES = ("cpu", "memory", "disk", "fork")

PERL = r"""
use strict; use warnings; use POSIX (); use IO::Handle;
my ($secs, $roles, $cpus, $chunk_mib, $disk_mib, $fill) = @ARGV;
my $end = time + $secs;
my %role = map { $_ => 1 } split /,/, $roles;
unlink glob("/run/lxmgr-noisy.*");
sub nap { select(undef, undef, undef, $_[0]) }
sub stats {
    my ($name, %kv) = @_;
    open(my $fh, '>', "/run/lxmgr-noisy.$name") or return;
    print $fh join(' ', $name, map { "$_=$kv{$_}" } sort keys %kv), "\n";
    close $fh;
}
sub child {
    my ($code) = @_;
    my $pid = fork;
    return $pid if !defined $pid || $pid;
    $code->();
    POSIX::_exit(0);
}
my @kids;
if ($role{cpu}) {
    for (1 .. $cpus) {
        push @kids, child(sub { my $i = 0; while (time < $end) { $i++ for 1 .. 100000 } });
    }
}
if ($role{memory}) {
    push @kids, child(sub {
        my ($rounds, $killed, $nofork) = (0, 0, 0);
        while (time < $end) {
            my $pid = fork;
            if (!defined $pid) { $nofork++; nap(0.05); next }
            if (!$pid) {
                my @hold;
                while (time < $end) { push @hold, 'x' x ($chunk_mib << 20) }
                POSIX::_exit(0);
            }
            waitpid($pid, 0);
            $rounds++;
            $killed++ if ($? & 127) == 9;
        }
        stats('memory', rounds => $rounds, sigkilled => $killed, fork_failed => $nofork);
    });
}
if ($role{disk}) {
    push @kids, child(sub {
        my ($mib, $full, $rounds) = (0, 0, 0);
        my $buf = "\0" x (1 << 20);
        while (time < $end) {
            open(my $fh, '>', $fill) or do { $full++; nap(0.1); next };
            my $n = 0;
            while (time < $end && $n < $disk_mib) {
                if (!defined syswrite($fh, $buf)) { $full++; last }
                $n++;
                $fh->sync if $n % 64 == 0;
            }
            $mib += $n;
            close $fh;
            unlink $fill;
            $rounds++;
            nap(0.1) if $n < $disk_mib && time < $end;
        }
        stats('disk', written_mib => $mib, write_failed => $full, rounds => $rounds);
    });
}
if ($role{fork}) {
    push @kids, child(sub { while (time < $end) { fork } });
}
waitpid($_, 0) for grep { defined } @kids;
stats('done');
"""


def payload_argv(seconds: int, roles: list[str], *, cpu_hogs: int = 4, chunk_mib: int = 16,
                 disk_mib: int = 2048) -> list[str]:
    """exec argv that starts the hogs of `roles` for `seconds` and returns at once: the
    program runs detached (setsid -f, stdio on /dev/null), so the exec session ends while
    the hogs run."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"Unknown hog '{sorted(unknown)[0]}'")
    inner = ["timeout", "-s", "KILL", str(seconds + GRACE), "perl", "-e", PERL, "--",
             str(seconds), ",".join(roles), str(cpu_hogs), str(chunk_mib), str(disk_mib),
             FILL_PATH]
    return ["sh", "-c", 'exec setsid -f "$@" </dev/null >/dev/null 2>&1', "sh", *inner]


def done_argv() -> list[str]:
    """exec argv that exits 0 once the program has ended (its done file is there)."""
    return ["test", "-e", "/run/lxmgr-noisy.done"]


def stats_argv() -> list[str]:
    """exec argv that prints the hogs' stats lines and removes them and the fill file."""
    return ["sh", "-c", f"cat {STATS_GLOB} 2>/dev/null; rm -f {STATS_GLOB} {FILL_PATH}; true"]


def parse_stats(text: str) -> dict[str, dict[str, int]]:
    """'disk written_mib=3 write_failed=1' lines -> {'disk': {'written_mib': 3, ...}}."""
    out: dict[str, dict[str, int]] = {}
    for line in text.splitlines():
        role, *pairs = line.split()
        if role not in ROLES:
            continue
        out[role] = {}
        for pair in pairs:
            key, _, value = pair.partition("=")
            if value.isdigit():
                out[role][key] = int(value)
    return out

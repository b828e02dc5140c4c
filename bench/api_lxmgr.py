"""lxmgr side of the API benchmark: a private lxmgrd and the real `lxmgr` CLI.

The daemon runs as `python -m lxmgr.daemon` (its own session, so a Ctrl-C on the terminal
reaches only the benchmark) with LXMGR_DIR in a private dir under /var/tmp whose `images` is a
symlink to the test image cache, the cgroup base `lxmgr-bench-api` (network.py: its own) and
LXMGR_DEFAULT_NETWORK=none (no lxmgrbr0: a private daemon must not make a NATed bridge).
cleanup() deletes every instance, then profile, then network this object created, stops the
daemon by the pid it started, removes the cgroup base and the dir, and returns warnings for
anything left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from common import make_private_dir, remove_private_dir, run_checked

CGROUP_BASE = "lxmgr-bench-api"
REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


def lxmgr_argv() -> list[str]:
    """The installed console script beside the real interpreter (not the pyenv shim), else
    `python -m lxmgr.cli.main`."""
    script = Path(sys.executable).parent / "lxmgr"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "lxmgr.cli.main"]


class LxmgrSide:
    """A private lxmgrd plus argv builders for the CLI; see the module docstring."""

    label = "lxmgr"
    image = "debian"

    def __init__(self, image_dir: Path, prefix: str = "lxmgr-bench-api-",
                 cgroup_base: str = CGROUP_BASE) -> None:
        self.dir = make_private_dir(prefix)
        (self.dir / "images").symlink_to(image_dir)
        self.socket_path = str(self.dir / "unix.socket")
        self.cgroup_base = cgroup_base
        self.env = {**os.environ, "LXMGR_DIR": str(self.dir), "LXMGR_CGROUP_BASE": cgroup_base,
                    "LXMGR_DEFAULT_NETWORK": "none", "PYTHONPATH": str(REPO), "COLUMNS": "200"}
        self.env.pop("LXMGR_SOCKET", None)
        self.cli_argv = lxmgr_argv()
        self.proc: subprocess.Popen[bytes] | None = None
        self.created: list[str] = []  # launched and not deleted yet
        self.profiles: list[str] = []  # created and not deleted yet
        self.networks: list[str] = []

    # -- argv --------------------------------------------------------------------------------

    def version_argv(self) -> list[str]:
        return [*self.cli_argv, "--version"]

    def list_argv(self) -> list[str]:
        return [*self.cli_argv, "list"]

    def exec_argv(self, name: str, command: list[str]) -> list[str]:
        return [*self.cli_argv, "exec", name, "-T", "--", *command]

    def launch_argv(self, name: str) -> list[str]:
        return [*self.cli_argv, "launch", self.image, name]

    def version(self) -> str:
        proc = subprocess.run(self.version_argv(), env=self.env, capture_output=True, text=True)
        return proc.stdout.strip()

    def cli(self, *args: str, timeout: float = 180,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        """`lxmgr ARGS...` with captured output; raises when it fails (check)."""
        return run_checked([*self.cli_argv, *args], self.env, timeout=timeout, check=check)

    def track(self, name: str) -> None:
        """Remember an instance name before launching it (cleanup deletes it)."""
        self.created.append(name)

    # -- daemon ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start lxmgrd and wait until GET /1.0 answers."""
        from lxmgr.client import Client

        log = open(self.dir / "lxmgrd.log", "ab")  # noqa: SIM115 - the child keeps it
        try:
            self.proc = subprocess.Popen([sys.executable, "-m", "lxmgr.daemon"], env=self.env,
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         cwd=REPO, start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"lxmgrd exited with {self.proc.returncode}; see "
                                   f"{self.dir}/lxmgrd.log")
            try:
                with Client(self.socket_path, timeout=5) as client:
                    client.query("GET", "/1.0")
                return
            except Exception:  # noqa: BLE001 - not listening yet
                time.sleep(0.05)
        raise RuntimeError(f"lxmgrd did not answer within {START_TIMEOUT:.0f} s")

    def _stop_daemon(self) -> list[str]:
        if self.proc is None or self.proc.poll() is not None:
            return []
        warnings = []
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            warnings.append(f"lxmgrd (pid {self.proc.pid}) ignored SIGTERM; sent SIGKILL")
            self.proc.kill()
            self.proc.wait()
        return warnings

    # -- cleanup -----------------------------------------------------------------------------

    def delete_instances(self) -> list[str]:
        """DELETE ?force=1 each instance we launched, then our profiles and networks, through
        the API."""
        from lxmgr import errors
        from lxmgr.client import Client

        warnings = []
        if (self.created or self.profiles or self.networks) and \
                (self.proc is None or self.proc.poll() is not None):
            self.start()  # the daemon died: a fresh one can still delete
        with Client(self.socket_path, timeout=120) as client:
            for name in list(self.created):
                try:
                    client.operate("DELETE", f"/1.0/instances/{name}", params={"force": 1})
                    self.created.remove(name)
                except errors.NotFound:
                    self.created.remove(name)
                except Exception as err:  # noqa: BLE001 - report and go on cleaning
                    warnings.append(f"Failed to delete lxmgr instance '{name}': {err}")
            for kind, names in (("profiles", self.profiles), ("networks", self.networks)):
                for name in list(names):
                    try:
                        client.operate("DELETE", f"/1.0/{kind}/{name}")
                        names.remove(name)
                    except errors.NotFound:
                        names.remove(name)
                    except Exception as err:  # noqa: BLE001
                        warnings.append(f"Failed to delete lxmgr {kind[:-1]} '{name}': {err}")
        return warnings

    def cleanup(self) -> list[str]:
        warnings: list[str] = []
        try:
            warnings += self.delete_instances()
        except Exception as err:  # noqa: BLE001
            warnings.append(f"lxmgr instance cleanup failed: {err}")
        warnings += self._stop_daemon()
        warnings += self._remove_cgroup_base()
        left = _processes_with_env("LXMGR_DIR", str(self.dir))
        if left:
            warnings.append(f"processes still running with our LXMGR_DIR: {left}")
        if self.created or self.networks:
            warnings.append(f"Left {self.dir} for inspection: instances {self.created}, "
                            f"networks {self.networks} remain")
        else:
            try:
                warning = remove_private_dir(self.dir)
            except OSError as err:
                warning = f"Failed to remove {self.dir}: {err}"
            if warning:
                warnings.append(warning)
        return warnings

    def _remove_cgroup_base(self) -> list[str]:
        warnings = []
        try:
            from lxmgr.cgroups import base as cgroup_base
            from lxmgr.cgroups.detect import detect

            cgroup_base.load(detect(), base=self.cgroup_base).delete_base()
        except Exception as err:  # noqa: BLE001
            warnings.append(f"Failed to remove cgroup base '{self.cgroup_base}': {err}")
        left = [str(p) for p in Path("/sys/fs/cgroup").glob(f"*/{self.cgroup_base}")]
        left += [str(p) for p in Path("/sys/fs/cgroup").glob(self.cgroup_base)]
        if left:
            warnings.append(f"cgroup dirs left: {', '.join(left)}")
        return warnings


def _processes_with_env(key: str, value: str) -> list[int]:
    """Pids whose environment has key=value (to spot supervisors left behind)."""
    wanted = f"{key}={value}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if wanted in f.read().split(b"\0"):
                    found.append(int(entry))
        except OSError:
            continue
    return found

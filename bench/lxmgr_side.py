"""lxmgr side of the lifecycle benchmark: Manager.create/start/exec/stop/delete in-process.

Imports lxmgr.instances.manager (and the image cache helper of tests/). Everything lives in a
private LXMGR_DIR whose `images` is a symlink to the shared cache (read-only for us) and in the
cgroup base `lxmgr-bench`; cleanup() removes every instance this object created, the base
cgroups and the dir.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from common import (
    RunResult,
    exec_median,
    make_private_dir,
    remove_private_dir,
    rss_kib,
    timed,
    wait_booted,
)

CGROUP_BASE = "lxmgr-bench"
STOPPED_TIMEOUT = 60.0


class LxmgrBench:
    """Runs lifecycle cycles through one Manager; not thread-safe."""

    def __init__(self, image_dir: Path) -> None:
        self.dir = make_private_dir("lxmgr-bench-")
        (self.dir / "images").symlink_to(image_dir)
        os.environ["LXMGR_DIR"] = str(self.dir)
        from lxmgr.instances.manager import Manager  # after LXMGR_DIR is set

        self.manager = Manager(cgroup_base_name=CGROUP_BASE)
        self.created: list[str] = []
        self._null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)

    # -- one cycle ---------------------------------------------------------------------------

    def create(self, image: str) -> tuple[str, float]:
        name = f"lxmbench-{os.urandom(4).hex()}"
        self.created.append(name)
        return name, timed(lambda: self.manager.create(name, image))

    def run_cycle(self, image: str) -> RunResult:
        """create, start until booted, exec true x20, RSS, stop, delete."""
        res = RunResult()
        name, res.metrics["create"] = self.create(image)
        t0 = time.perf_counter()
        self.manager.start(name)
        res.metrics["start_return"] = time.perf_counter() - t0
        res.metrics["start_running"], res.boot_state, res.boot_polls = wait_booted(
            lambda: self.system_state(name), t0)
        res.metrics["exec_true"] = exec_median(
            lambda: self.manager.exec(name, ["true"], stdin=self._null, stdout=self._null,
                                      stderr=self._null))
        res.metrics["monitor_rss"] = rss_kib(int(self.manager.state(name)["supervisor_pid"]))
        res.metrics["stop"] = timed(lambda: self.stop(name))
        res.metrics["delete"] = timed(lambda: self.manager.delete(name))
        self.created.remove(name)
        return res

    def system_state(self, name: str) -> str:
        """The word `systemctl is-system-running` prints inside the instance."""
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        try:
            self.manager.exec(name, ["systemctl", "is-system-running"], stdin=self._null,
                              stdout=write_end, stderr=self._null)
            os.close(write_end)
            write_end = -1
            return os.read(read_end, 256).decode(errors="replace").strip()
        finally:
            os.close(read_end)
            if write_end >= 0:
                os.close(write_end)

    def stop(self, name: str) -> None:
        """Graceful stop, then wait until the instance reports Stopped."""
        self.manager.stop(name)
        deadline = time.monotonic() + STOPPED_TIMEOUT
        while self.manager.state(name)["status"] != "Stopped":
            if time.monotonic() > deadline:
                raise TimeoutError(f"Instance '{name}' did not stop")
            time.sleep(0.005)

    def create_only(self, image: str) -> float:
        """Time create, then delete (untimed): for the image-size comparison."""
        name, seconds = self.create(image)
        self.manager.delete(name)
        self.created.remove(name)
        return seconds

    # -- cleanup -----------------------------------------------------------------------------

    def cleanup(self) -> list[str]:
        """Delete our instances (force), the lxmgr-bench cgroup base and the private dir;
        returns warnings."""
        warnings = []
        for name in list(self.created):
            try:
                if self.manager.store.exists(name):
                    self.manager.delete(name, force=True)
                self.created.remove(name)
            except Exception as err:  # noqa: BLE001 - report and go on cleaning
                warnings.append(f"Failed to delete lxmgr instance '{name}': {err}")
        try:
            self.manager.cgroups.delete_base()
        except Exception as err:  # noqa: BLE001
            warnings.append(f"Failed to remove cgroup base '{CGROUP_BASE}': {err}")
        left = [str(p) for p in Path("/sys/fs/cgroup").glob(f"*/{CGROUP_BASE}")]
        if left:
            warnings.append(f"cgroup dirs left: {', '.join(left)}")
        os.close(self._null)
        if not self.created:
            warning = remove_private_dir(self.dir)
            if warning:
                warnings.append(warning)
        else:
            warnings.append(f"Left {self.dir}: instances {self.created} could not be deleted")
        os.environ.pop("LXMGR_DIR", None)
        return warnings

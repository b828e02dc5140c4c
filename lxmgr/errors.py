"""Exception hierarchy for lxmgr; each class carries the HTTP status the API answers with.

Imports nothing from lxmgr.
"""

from __future__ import annotations


class LxmgrError(Exception):
    """Base of every error lxmgr raises on purpose."""

    status = 500


class InvalidConfig(LxmgrError):
    """Bad input: an unknown key, an invalid value, a malformed name or recipe."""

    status = 400


class NotFound(LxmgrError):
    """The named object does not exist."""

    status = 404


class Conflict(LxmgrError):
    """The name is taken already (an instance, snapshot, volume, profile, alias...)."""

    status = 409


class InvalidState(Conflict):
    """The object is in the wrong state for the request: running or not running, frozen,
    in use. LXD 5.0 answers 400 here (lxd/instance_delete.go "Instance is running",
    lxd/instance_exec.go "Instance is not running", lxd/networks.go, lxd/storage_pools.go
    and lxd/storage_volumes.go "... is currently/still in use", all response.BadRequest)
    and clients branch on that code. A Conflict for the code that catches one."""

    status = 400


class NotSupported(LxmgrError):
    """The host or driver cannot do what was asked."""

    status = 501


class UnknownDriver(NotSupported):
    """No driver is registered under that name."""


class HostNotReady(LxmgrError):
    """The host lacks something the runtime needs; the message says how to fix it."""

    status = 503


class UnsafeRootfs(LxmgrError):
    """The runtime refused a rootfs that is not a private directory made for the instance."""

    status = 400


class CommandError(LxmgrError):
    """An external command failed; carries its argv and stderr."""

    def __init__(self, argv: list[str], returncode: int, stderr: str = "") -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr
        tail = stderr.strip().splitlines()[-1] if stderr.strip() else "no output"
        super().__init__(f"Command '{argv[0]}' failed with status {returncode}: {tail}")


class CommandFailed(LxmgrError):
    """An exec'd command could not be executed: exit_status is a shell's (127 not found,
    126 not executable) and the message says why in one line. Raised by the supervisor's
    control client in the daemon and by the exec client in the CLI."""

    status = 400

    def __init__(self, message: str, exit_status: int) -> None:
        super().__init__(message)
        self.exit_status = exit_status


class Cancelled(LxmgrError):
    """Work stopped because its operation was cancelled; what it made was removed."""

    status = 409


class KernelError(LxmgrError):
    """A system call failed where it should not have."""


class RuntimeSetupError(LxmgrError):
    """The container could not be set up; the message names the failing step."""


class Forbidden(LxmgrError):
    """The client is not allowed to do this (an untrusted TLS client, a bad trust token)."""

    status = 403

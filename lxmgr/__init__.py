"""lxmgr: a system-container manager (full distro containers with systemd as PID 1)."""

__version__ = "0.1.0"

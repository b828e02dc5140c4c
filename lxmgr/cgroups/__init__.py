"""Cgroup drivers: layout detection, the v1 and v2 drivers and the PURE limits translation.

Importing the package registers both drivers in `DRIVERS`; use `load(detect())`.
"""

from __future__ import annotations

from lxmgr.cgroups import v1, v2
from lxmgr.cgroups.base import DRIVERS, CgroupDriver, Usage, load
from lxmgr.cgroups.detect import Hierarchy, Layout, detect
from lxmgr.cgroups.translate import Write, translate_v1, translate_v2

__all__ = [
    "DRIVERS", "CgroupDriver", "Hierarchy", "Layout", "Usage", "Write",
    "detect", "load", "translate_v1", "translate_v2", "v1", "v2",
]

"""Typed application keys (aiohttp AppKey) shared by the routes."""

from __future__ import annotations

from aiohttp import web

from lxmgr.instances.events import EventBus
from lxmgr.instances.image_builds import ImageBuilds
from lxmgr.instances.manager import Manager
from lxmgr.instances.operations import Operations

MANAGER = web.AppKey("manager", Manager)
EVENTS = web.AppKey("events", EventBus)
OPERATIONS = web.AppKey("operations", Operations)
WEBSOCKETS = web.AppKey("websockets", set)
IMAGE_BUILDS = web.AppKey("image_builds", ImageBuilds)

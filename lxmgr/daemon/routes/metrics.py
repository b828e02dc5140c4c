"""Placeholder: filled in by the issue-6 work (see the route module docstrings elsewhere)."""

from __future__ import annotations

from aiohttp import web

routes = web.RouteTableDef()

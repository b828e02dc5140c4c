"""PURE LXD wire format shared by the daemon, the client and the web panel.

envelope.py (sync/async/error responses, status codes), operation.py (Operation), event.py
(Event, lifecycle events). Must not import anything but lxmgr.errors and the stdlib; no I/O.
"""

"""The `lxmgr` command line: click + rich, reaching lxmgrd only through lxmgr.client.

main.py (root group, lazy verb loading), app.py (App: client, console, abort, operations),
terminal.py (tables, formats, raw tty), commands/ (one module per verb). Imports lxmgr.client,
lxmgr.api, lxmgr.model and lxmgr.errors only; never instances, runtime, linux or daemon.
Start-up matters: rich, yaml and the websocket code are imported inside the functions that
need them.
"""

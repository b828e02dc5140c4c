"""Managed networks: bridge links, dnsmasq and nftables per network (see base.py for the API).

Imports lxmgr.model, lxmgr.linux, lxmgr.errors and lxmgr.paths only.
"""

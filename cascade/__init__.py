"""Cascade: one control plane above many OpenStack sites."""

__version__ = "0.1.0"

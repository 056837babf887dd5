"""Tenant resources kept at every site of their project, with per-site progress and drift
repair. First resource: SSH keypairs (``keypairs.py`` the API side, ``keypair_steps.py`` the
per-site steps run in parallel by the engine's fan-out). May import ``cascade.engine``,
``cascade.sites``, ``cascade.db`` and ``cascade.errors``.
"""

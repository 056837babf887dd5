"""Servers across sites, through the engine: the API side (``servers.py``: validate, check
the state machine, write the desired state, accept the operation) and the worker side
(``server_steps.py``: idempotent steps through the site driver). May import
``cascade.engine``, ``cascade.sites``, ``cascade.db`` and ``cascade.errors``.
"""

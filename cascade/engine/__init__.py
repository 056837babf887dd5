"""The engine: every mutating request becomes an operation carried out by a durable workflow.

It owns the operation record and its steps (``operations.py``), the declared state machine
each resource kind obeys (``states.py``), the durable queue on DBOS's tables in Cascade's own
database (``queue.py``), the workflow every operation runs and its per-site fan-out
(``workflows.py``, with what steps reach in ``context.py``), the worker process
(``worker.py``) with its heartbeats and the recovery of dead workers (``membership.py``), the
supervisor behind ``cascade up --workers N`` (``supervisor.py``), the periodic convergence
pass (``convergence.py``), the cluster view and its metrics (``cluster.py``, ``metrics.py``)
and the probe operation (``probe.py``). Resource packages (``cascade.compute``,
``cascade.replication``) register their handlers, actions and checkers here. May import
``cascade.db``, ``cascade.errors``, ``cascade.config``, ``cascade.sites`` and
``cascade.services``.
"""

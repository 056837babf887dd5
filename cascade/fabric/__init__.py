"""Southbound distribution: network state from the control plane to compute-host agents.

The package owns the subject layout and partition hash shared by producer and consumer
(``addressing``), the goal state and its revisions (``goal``) and what agents fetch of it
(``snapshots``), the wire format (``messages``), the control-plane end (``controller``),
the host agent (``agent``), the dataplanes it programs (``dataplane``), the message
transports behind one interface (``transports``) and the simulated fleet (``fleet``). It
may import ``cascade.db`` and ``cascade.errors``.
"""

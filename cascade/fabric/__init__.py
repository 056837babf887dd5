"""Southbound distribution: network state from the control plane to compute-host agents.

The package owns the subject layout and partition hash shared by producer and consumer
(``addressing``) and the message transports behind one interface (``transports``); goal
state and the agents come later. It may import ``cascade.errors`` and nothing else from
the package.
"""

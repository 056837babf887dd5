"""Dataplanes: where an agent writes the network state it receives.

``base`` defines the interface and the value types; ``memory`` keeps the tables in memory
(simulated fleets, tests); ``linux`` programs VXLAN devices, bridges, FDB and neighbour
entries and veth ports in a host's network namespace through pyroute2.
"""

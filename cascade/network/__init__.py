"""Networks that span sites: a tenant network stretched as one VXLAN segment over chosen
sites, its addresses allocated centrally, and every server port's remote copies at the
network's other sites so each site's L2 population reaches it.

``addresses`` allocates VNIs, IPs and MACs; ``networks`` accepts network operations (the API
side); ``segment_steps`` makes and removes a network at each site; ``port_steps`` makes a
server's port at its site and its remote ports elsewhere (used by ``cascade.compute``). May
import ``cascade.engine``, ``cascade.sites``, ``cascade.db`` and ``cascade.errors``.
"""

"""The emulated OpenStack region served by ``cascade site-sim``.

One process serves one region on one port: Keystone (its own copy of the identity data and
Fernet keys, reusing ``cascade.identity`` and the identity routers of ``cascade.api``), Nova,
Cinder, Neutron, Glance and a Swift-like object store, in their real request and response
formats, with state persisted under the site's data dir and faults injected on demand.
May import ``cascade.api``, ``cascade.identity``, ``cascade.db``, ``cascade.services`` and
``cascade.errors``; nothing in Cascade imports it but the CLI and the tests.
"""

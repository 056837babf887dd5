"""The emulated OpenStack region served by ``cascade site-sim``.

One process serves one region on one port: Keystone (its own copy of the identity data and
Fernet keys, reusing ``cascade.identity`` and the identity routers of ``cascade.api``), Nova,
Cinder, Neutron, Glance and a Swift-like object store, in their real request and response
formats, with state persisted under the site's data dir and faults injected on demand.
Its Neutron programs its compute hosts through Cascade's southbound fabric (goal store,
controller, one agent and dataplane per host: ``network.fabric``).
May import the public names of ``cascade.identity`` and ``cascade.api.keystone``,
``cascade.config``, ``cascade.db`` (its ``Database`` and ``migrate``, not the models),
``cascade.fabric`` and ``cascade.errors``; nothing in Cascade imports it but the CLI and the tests.
"""

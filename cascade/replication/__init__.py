"""Tenant resources kept at the sites of their project, with per-site progress, a continuous
audit and drift repair: SSH keypairs (``keypairs.py`` the API side, ``keypair_steps.py`` the
per-site steps run in parallel by the engine's fan-out), and replication policies for images,
flavors, security groups and keypairs (``policies.py`` the API side, ``kinds.py`` and a
``*_kind.py`` per kind, ``policy_steps.py`` and ``image_steps.py`` the jobs, ``audit.py`` the
convergence checker; ``image_copy.py`` copies one image: target image, import and
verification, ``image_staging.py`` owns what is staged at the target, ``image_transfer.py``
moves the chunks). May import ``cascade.engine``,
``cascade.sites``, ``cascade.db`` and ``cascade.errors``.

The package imports its ``*_kind`` modules, which register themselves in ``kinds.KINDS``:
whatever imports a part of replication finds every kind registered.
"""

from cascade.replication import flavor_kind, group_kind, image_kind, keypair_kind

__all__ = ["flavor_kind", "group_kind", "image_kind", "keypair_kind"]

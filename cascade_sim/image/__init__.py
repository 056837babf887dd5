"""Glance v2 at ``/image``: image records (core attributes, visibility, tags, extra properties
as top-level keys), listing with Glance's filters, sorting and ``limit``/``marker``, JSON-patch
updates, and real bytes: an upload streams to ``<data_dir>/images/<id>`` computing its md5
``checksum`` and sha512 ``os_hash_value`` on the way, a download streams it back (whole or a
``Range``, 206); the interoperable import lands the bytes the same way, from the stage
(``glance-direct``) or from an object in the site's own object store (``web-download``).
``image_file`` and ``get_image`` are what the compute and volume services read;
``copied_image`` is the image Nova's createImage makes. A per-project storage quota
(``quota``) refuses bytes beyond it, 413, as Glance does.

Each module imports only those before it here: ``attributes``, ``records``, ``listing``,
``quota``, ``data``, ``web_download``, ``api``. Outside the package they may import
``cascade.api.deps``, ``cascade.api.keystone``, ``cascade.identity`` and the site-sim's
``common``, ``errors``, ``site`` and ``state``; ``web_download`` also the object store
(``cascade_sim.objects.object_files``). Other modules use only what is exported here.
"""

from __future__ import annotations

from cascade_sim.image.api import routers
from cascade_sim.image.data import copied_image, image_file
from cascade_sim.image.records import get_image

__all__ = ["copied_image", "get_image", "image_file", "routers"]

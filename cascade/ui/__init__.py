"""The web dashboard at ``/ui``: HTTP only, like ``cascade.api``. Server-rendered Jinja2
pages, htmx (vendored under ``static/``, served by Cascade, no CDN, no build step) for the
live parts, SVG pictures drawn on the server.

It logs in through Cascade's own identity (the token service ``POST /identity/v3/auth/tokens``
uses) and reads and acts through the same services the API uses, under the same role rule
(``cascade.identity.policy``); where a page needs a read no service offers (a keyset page of
operations, a plan's checkpoints and restores, a network's ports and fabric hosts), its module
runs that one read-only query itself, filtered by the viewer's projects. May import the
capability packages, ``cascade.services``, ``cascade.identity``, ``cascade.db`` and
``cascade.errors``; never ``cascade.api``. Only ``cascade.api.app`` imports it, to include
``router``.
"""

"""Sites: the OpenStack regions Cascade drives, and the credentials it holds for them.

Owns the site registry. May import ``cascade.db``, ``cascade.errors`` and ``cascade.identity``
(a registered site becomes a region of the identity catalog).
"""

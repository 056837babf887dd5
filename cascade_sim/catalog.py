"""The site's catalog: its identity copy lists the site's own services in its region."""

from __future__ import annotations

from cascade.identity import IdentityServices

# (catalog type, name, path under the site's base URL)
SERVICES = (
    ("compute", "nova", "/compute/v2.1"),
    ("block-storage", "cinderv3", "/volume/v3"),
    ("network", "neutron", "/network"),
    ("image", "glance", "/image"),
    ("object-store", "swift", "/object-store/v1/AUTH_$(project_id)s"),
    ("block-data", "block-data", "/block-data/v1"),
)


def register_services(identity: IdentityServices, region: str, base_url: str) -> None:
    identity.list_endpoints(
        region, [(service_type, name, base_url + path) for service_type, name, path in SERVICES]
    )

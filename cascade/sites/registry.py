"""Register, list, show and delete sites. A site is also a region of the identity catalog,
with the site's identity URL as that region's identity endpoint.

Registering a site with ``identity: replica`` talks to it through the site driver
(openstacksdk over keystoneauth1): its catalog comes with the token, its identity endpoint from
that catalog, and the follow request goes to the replica API served beside that endpoint."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cascade.db import Database
from cascade.db.models import (
    Endpoint,
    IdentityReplica,
    KeypairCopy,
    Region,
    Server,
    Site,
)
from cascade.errors import BadRequest, Conflict, NotFound
from cascade.identity.bootstrap import ensure_endpoints, ensure_identity_endpoints
from cascade.identity.store import bump_revision
from cascade.sites.credentials import CredentialCipher
from cascade.sites.driver import SiteAccess, SiteCallFailed, SiteDriver
from cascade.sites.schemas import SiteIn, SiteOut

# Registration answers a person: retry a flaky site briefly, not for the driver's 30 s.
REGISTRATION_DEADLINE = 5.0
REPLICA_API = "/identity-replica/v1"  # beside a Cascade identity's /identity/v3


def replica_api(identity_endpoint: str) -> str:
    """Where a site whose identity is Cascade's code takes follow requests: beside its
    identity API (no catalog lists this Cascade-only API as a service)."""
    return identity_endpoint.rstrip("/").rsplit("/identity", 1)[0] + REPLICA_API


def _access(site: Site, password: str) -> SiteAccess:
    return SiteAccess(
        name=site.name,
        region=site.region_name,
        auth_url=site.identity_url,
        username=site.username,
        password=password,
        project_name=site.site_project_name,
        user_domain_name=site.user_domain_name,
        project_domain_name=site.user_domain_name,
    )


def _ask_to_follow(driver: SiteDriver, region: str, follow: dict[str, str]) -> None:
    """Send the follow request to the replica API beside the identity endpoint the site's
    catalog lists for its region."""
    identity = driver.call(
        "find the site's identity endpoint",
        lambda c: c.session.get_endpoint(service_type="identity", region_name=region),
    )
    if identity is None:
        raise BadRequest(f"The site's catalog lists no identity endpoint in region {region!r}.")
    driver.call(
        "make the site follow Cascade's identity",
        lambda c: c.session.put(replica_api(identity) + "/master", json=follow, raise_exc=True),
    )


def to_out(site: Site) -> SiteOut:
    return SiteOut(
        id=site.id,
        name=site.name,
        region_name=site.region_name,
        identity_url=site.identity_url,
        username=site.username,
        user_domain_name=site.user_domain_name,
        project_name=site.site_project_name,
        project_id=site.project_id,
        identity=site.identity_mode,
        created_at=site.created_at,
    )


class SiteRegistry:
    def __init__(self, db: Database, cipher: CredentialCipher, master_url: str) -> None:
        self._db = db
        self._cipher = cipher
        self._master_url = master_url  # where replica sites follow Cascade's identity

    def register(self, spec: SiteIn, project_id: str) -> SiteOut:
        site = Site(
            name=spec.name,
            region_name=spec.region_name,
            identity_url=spec.identity_url.rstrip("/"),
            username=spec.credentials.username,
            user_domain_name=spec.credentials.user_domain_name,
            site_project_name=spec.credentials.project_name,
            credential=self._cipher.encrypt(spec.credentials.password),
            project_id=project_id,
            identity_mode=spec.identity,
        )
        try:
            with self._db.session() as session:
                if session.get(Region, spec.region_name) is not None:
                    raise Conflict(f"region {spec.region_name!r} is already in the catalog")
                session.add(site)
                session.flush()
                bump_revision(session)
                ensure_identity_endpoints(session, site.region_name, site.identity_url)
        except IntegrityError as error:
            raise Conflict(
                f"a site named {spec.name!r} or in region {spec.region_name!r} is already "
                "registered"
            ) from error
        if spec.identity == "replica":
            self._make_replica(site, spec.credentials.password)
        return to_out(site)

    def _make_replica(self, site: Site, password: str) -> None:
        """Make the site's identity a replica of Cascade's: its own services join Cascade's
        catalog in its region, then it bootstraps from Cascade and follows it (with the
        registration's credentials, which must be Cascade's too). On failure, unregister."""
        driver = SiteDriver(_access(site, password), REGISTRATION_DEADLINE)
        follow = {
            "url": self._master_url,
            "username": site.username,
            "password": password,
            "project": site.site_project_name,
            "name": site.name,
        }
        try:
            catalog = driver.call("read the site's catalog", lambda c: c.service_catalog)
            self._adopt_endpoints(site.region_name, catalog)
            _ask_to_follow(driver, site.region_name, follow)
        except (SiteCallFailed, BadRequest):
            self.delete(site.id, None)
            raise

    def _adopt_endpoints(self, region: str, catalog: list[dict[str, Any]]) -> None:
        """List the site's own services (all but identity) in Cascade's catalog."""
        found = [
            (entry["type"], entry["name"], endpoint["url"])
            for entry in catalog
            for endpoint in entry["endpoints"]
            if entry["type"] != "identity" and endpoint.get("region_id") == region
        ]
        if not found:
            regions = sorted({e.get("region_id") for c in catalog for e in c["endpoints"]})
            raise BadRequest(
                f"The site's catalog lists no service in region {region!r} (it lists "
                f"{', '.join(map(str, regions)) or 'none'}): register it under its own region."
            )
        with self._db.session() as session:
            bump_revision(session)
            for service_type, name, url in found:
                ensure_endpoints(session, region, service_type, name, url)

    def list(self, projects: set[str] | None) -> list[SiteOut]:
        query = select(Site).order_by(Site.name)
        if projects is not None:
            query = query.where(Site.project_id.in_(projects))
        with self._db.session() as session:
            return [to_out(site) for site in session.scalars(query)]

    def get(self, name_or_id: str, projects: set[str] | None) -> SiteOut:
        with self._db.session() as session:
            return to_out(self._find(session, name_or_id, projects))

    def delete(self, name_or_id: str, projects: set[str] | None) -> None:
        """Unregister a site; refused while Cascade keeps servers there. Keypair copies
        there are forgotten (the keys stay at the site)."""
        with self._db.session() as session:
            site = self._find(session, name_or_id, projects)
            servers = session.scalar(select(func.count()).where(Server.site_id == site.id))
            if servers:
                raise Conflict(
                    f"Site {site.name} still holds {servers} servers of Cascade's: "
                    "delete them first."
                )
            session.execute(delete(KeypairCopy).where(KeypairCopy.site_id == site.id))
            # A replica site taken out of service: key rotations stop waiting for it.
            session.execute(delete(IdentityReplica).where(IdentityReplica.name == site.name))
            bump_revision(session)
            session.execute(delete(Endpoint).where(Endpoint.region_id == site.region_name))
            session.execute(delete(Region).where(Region.id == site.region_name))
            session.delete(site)

    def access(self, name_or_id: str) -> SiteAccess:
        """How the driver reaches the site, credential decrypted (never for a response)."""
        with self._db.session() as session:
            site = self._find(session, name_or_id, None)
            return _access(site, self._cipher.decrypt(site.credential))

    @staticmethod
    def _find(session: Session, name_or_id: str, projects: set[str] | None) -> Site:
        site = session.scalar(
            select(Site).where((Site.id == name_or_id) | (Site.name == name_or_id))
        )
        if site is None or (projects is not None and site.project_id not in projects):
            raise NotFound(f"Could not find site: {name_or_id}.")
        return site

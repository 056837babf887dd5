"""Register, update, list, show and delete sites. A site is also a region of the identity
catalog, with the site's identity URL as that region's identity endpoint.

Every registration and every credential change contacts the site first through the site
driver (openstacksdk over keystoneauth1): it must accept the credentials and list compute,
volume, network and image in its region, or nothing is stored (400 naming what failed; 502
when the site cannot be reached). Registering with ``identity: replica`` also adopts the
site's own endpoints into Cascade's catalog and sends the follow request to the replica API
served beside the site's identity endpoint. A site that cannot be reached can be forced out:
its row stays as the record its servers point to, renamed and out of the catalog, and those
servers are marked ERROR with the reason."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select, update
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
from cascade.identity.policy import seen_by, sees
from cascade.identity.store import bump_revision
from cascade.sites.credentials import CredentialCipher
from cascade.sites.driver import SiteAccess, SiteCallFailed, SiteDriver
from cascade.sites.schemas import SiteCredentials, SiteIn, SiteOut, SitePatch

log = logging.getLogger(__name__)

# Registration answers a person: retry a flaky site briefly, not for the driver's 30 s.
REGISTRATION_DEADLINE = 5.0
REPLICA_API = "/identity-replica/v1"  # beside a Cascade identity's /identity/v3
REMOVED = "removed"  # identity_mode of a site forced out (kept for its servers' records)
# The sites Cascade may place on, check and copy to: every one not forced out.
IN_SERVICE = Site.identity_mode != REMOVED
# What Cascade drives at a site, and the catalog types that provide each.
REQUIRED_SERVICES = {
    "compute": ("compute",),
    "volume": ("block-storage", "volumev3", "volumev2", "volume"),
    "network": ("network",),
    "image": ("image",),
}


class SiteRemoved(SiteCallFailed):
    """A call to a site that was forced out: a failed site call (convergence and steps
    report it like any other, naming the site), answered 409 if it reaches the API."""

    status = 409

    def __init__(self, site: str) -> None:
        super().__init__(site, "reach the site", "it was removed from Cascade by force")


def replica_api(identity_endpoint: str) -> str:
    """Where a site whose identity is Cascade's code takes follow requests: beside its
    identity API (no catalog lists this Cascade-only API as a service)."""
    return identity_endpoint.rstrip("/").rsplit("/identity", 1)[0] + REPLICA_API


def _access(site: Site, password: str) -> SiteAccess:
    """How to reach a registered site (its stored credential, decrypted)."""
    stored = SiteCredentials.model_construct(  # validated when it was registered
        username=site.username,
        password=password,
        project_name=site.site_project_name,
        user_domain_name=site.user_domain_name,
    )
    return _spec_access(site.name, site.region_name, site.identity_url, stored)


def _spec_access(name: str, region: str, url: str, credentials: SiteCredentials) -> SiteAccess:
    return SiteAccess(
        name=name,
        region=region,
        auth_url=url.rstrip("/"),
        username=credentials.username,
        password=credentials.password,
        project_name=credentials.project_name,
        user_domain_name=credentials.user_domain_name,
        project_domain_name=credentials.user_domain_name,
    )


def missing_services(catalog: list[dict[str, Any]], region: str) -> list[str]:
    """What Cascade drives (compute, volume, network, image) that the catalog does not list
    in ``region``."""
    present = {
        entry.get("type")
        for entry in catalog
        for endpoint in entry.get("endpoints", [])
        if region in (endpoint.get("region_id"), endpoint.get("region"))
    }
    return [need for need, types in REQUIRED_SERVICES.items() if present.isdisjoint(types)]


def contact(access: SiteAccess) -> tuple[SiteDriver, list[dict[str, Any]]]:
    """Log in at the site and read its catalog: the check every registration and credential
    change passes before anything is stored. The site refusing (bad credentials, a wrong
    identity URL) or a catalog without what Cascade drives in the region is a 400 naming it;
    a site that cannot be reached is the driver's 502."""
    driver = SiteDriver(access, REGISTRATION_DEADLINE)
    try:
        catalog: list[dict[str, Any]] = driver.call(
            "log in and read the catalog", lambda c: c.service_catalog
        )
    except SiteCallFailed as error:
        if error.http_status is not None and 400 <= error.http_status < 500:
            raise BadRequest(
                f"site {access.name}: {access.auth_url} refused user {access.username!r} of "
                f"project {access.project_name!r} ({error.reason}): check the credentials and "
                "the identity URL; nothing was stored."
            ) from error
        raise
    missing = missing_services(catalog, access.region)
    if missing:
        regions = sorted({str(e.get("region_id")) for c in catalog for e in c["endpoints"]})
        raise BadRequest(
            f"site {access.name}: its catalog lists no {', '.join(missing)} endpoint in region "
            f"{access.region!r} (its regions: {', '.join(regions) or 'none'}); nothing was stored."
        )
    return driver, catalog


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


def _adopted(region: str, catalog: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """The site's own services (all but identity) in its region, as catalog rows."""
    return [
        (entry["type"], entry["name"], endpoint["url"])
        for entry in catalog
        for endpoint in entry["endpoints"]
        if entry["type"] != "identity" and endpoint.get("region_id") == region
    ]


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


@dataclass(frozen=True)
class Forgotten:
    """What a forced delete made Cascade forget about a site."""

    site: str
    reason: str
    servers: list[str]  # ids, now ERROR with the reason
    keypair_copies: int

    @property
    def message(self) -> str:
        return (
            f"Site {self.site} removed by force: {self.reason}. {len(self.servers)} servers "
            f"there are marked ERROR (they may still run at the site; Cascade no longer "
            f"manages them) and {self.keypair_copies} keypair copies there are forgotten."
        )


class SiteRegistry:
    def __init__(self, db: Database, cipher: CredentialCipher, master_url: str) -> None:
        self._db = db
        self._cipher = cipher
        self._master_url = master_url  # where replica sites follow Cascade's identity

    def register(self, spec: SiteIn, project_id: str) -> SiteOut:
        """Contact the site, then store it and make its region part of the catalog."""
        self._refuse_duplicates(spec.name, spec.region_name)
        access = _spec_access(spec.name, spec.region_name, spec.identity_url, spec.credentials)
        driver, catalog = contact(access)
        site = Site(
            name=spec.name,
            region_name=spec.region_name,
            identity_url=access.auth_url,
            username=spec.credentials.username,
            user_domain_name=spec.credentials.user_domain_name,
            site_project_name=spec.credentials.project_name,
            credential=self._cipher.encrypt(spec.credentials.password),
            project_id=project_id,
            identity_mode=spec.identity,
        )
        try:
            with self._db.session() as session:
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
            self._make_replica(site, access, driver, catalog)
        return to_out(site)

    def _refuse_duplicates(self, name: str, region: str) -> None:
        with self._db.session() as session:
            if session.scalar(select(Site.id).where(Site.name == name)) is not None:
                raise Conflict(f"a site named {name!r} is already registered")
            if session.get(Region, region) is not None:
                raise Conflict(f"region {region!r} is already in the catalog")

    def _follow(self, access: SiteAccess, driver: SiteDriver) -> None:
        """Ask the site to follow Cascade's identity with these credentials (which must be
        Cascade's too: once it follows, the site's identity is Cascade's copy)."""
        follow = {
            "url": self._master_url,
            "username": access.username,
            "password": access.password,
            "project": access.project_name,
            "name": access.name,
        }
        _ask_to_follow(driver, access.region, follow)

    def _make_replica(
        self, site: Site, access: SiteAccess, driver: SiteDriver, catalog: list[dict[str, Any]]
    ) -> None:
        """Make the site's identity a replica of Cascade's: its own services join Cascade's
        catalog in its region, then it bootstraps from Cascade and follows it. On failure,
        unregister."""
        try:
            self._adopt_endpoints(site.region_name, catalog)
            self._follow(access, driver)
        except (SiteCallFailed, BadRequest):
            self.delete(site.id, None)
            raise

    def _adopt_endpoints(self, region: str, catalog: list[dict[str, Any]]) -> None:
        """List the site's own services (all but identity) in Cascade's catalog."""
        with self._db.session() as session:
            bump_revision(session)
            for service_type, name, url in _adopted(region, catalog):
                ensure_endpoints(session, region, service_type, name, url)

    def update(self, name_or_id: str, change: SitePatch, projects: set[str] | None) -> SiteOut:
        """New credentials or identity URL, checked at the site as at registration before
        anything is stored; the region's identity endpoint follows the URL. A replica site
        is not asked to follow again: this changes how Cascade reaches it, not how it
        reaches Cascade."""
        with self._db.session() as session:
            site = self._find(session, name_or_id, projects)
            known = SiteCredentials(
                username=site.username,
                password=self._cipher.decrypt(site.credential),
                project_name=site.site_project_name,
                user_domain_name=site.user_domain_name,
            )
            session.expunge(site)
        credentials = change.credentials or known
        url = change.identity_url or site.identity_url
        access = _spec_access(site.name, site.region_name, url, credentials)
        _driver, catalog = contact(access)
        updated = self._store_access(site.id, access)
        if site.identity_mode == "replica":  # it already follows Cascade: its endpoints may move
            self._adopt_endpoints(site.region_name, catalog)
        return updated

    def _store_access(self, site_id: str, access: SiteAccess) -> SiteOut:
        """Store checked credentials and URL; the region's identity endpoint follows."""
        with self._db.session() as session:
            stored = self._find(session, site_id, None)
            stored.identity_url = access.auth_url
            stored.username = access.username
            stored.user_domain_name = access.user_domain_name
            stored.site_project_name = access.project_name
            stored.credential = self._cipher.encrypt(access.password)
            bump_revision(session)
            ensure_identity_endpoints(session, stored.region_name, stored.identity_url)
            session.flush()
            return to_out(stored)

    def list(self, projects: set[str] | None) -> list[SiteOut]:
        query = select(Site).where(IN_SERVICE).order_by(Site.name)
        query = seen_by(query, Site.project_id, projects)
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
                    f"Site {site.name} still holds {servers} servers of Cascade's: delete them "
                    f"first, or, if the site cannot be reached, remove it with "
                    f"DELETE /v1/sites/{site.name}?force=true."
                )
            _leave_catalog(session, site)
            session.delete(site)

    def force_delete(self, name_or_id: str, projects: set[str] | None) -> Forgotten:
        """Remove a site that cannot be reached (refused if it answers and accepts its
        credentials). Its servers stay in Cascade, ERROR with the reason, attached to the
        site's row, which is renamed and leaves the catalog so the name and region can be
        registered again."""
        reason = self._why_unreachable(self.access(name_or_id, projects))
        with self._db.session() as session:
            site = self._find(session, name_or_id, projects)
            name, when = site.name, datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
            error = (
                f"site {name} removed by force on {when} ({reason}): the server may still "
                "exist there; Cascade no longer manages it"
            )
            servers = list(session.scalars(select(Server.id).where(Server.site_id == site.id)))
            session.execute(
                update(Server)
                .where(Server.site_id == site.id)
                .values(status="ERROR", error=error, task_operation_id=None)
            )
            copies = _leave_catalog(session, site)
            suffix = f"-removed-{site.id[:8]}"
            site.name, site.region_name = name + suffix, site.region_name + suffix
            site.identity_mode = REMOVED
            site.credential = self._cipher.encrypt("")
        forgotten = Forgotten(name, reason, servers, copies)
        log.warning("%s", forgotten.message)
        return forgotten

    @staticmethod
    def _why_unreachable(access: SiteAccess) -> str:
        """Why the site cannot be used, or Conflict if it can (force is for a lost site)."""
        try:
            contact(access)
        except (SiteCallFailed, BadRequest) as error:
            return error.message
        raise Conflict(
            f"Site {access.name} answers and accepts its credentials: delete its servers "
            "first; force is for a site that cannot be reached."
        )

    def access(self, name_or_id: str, projects: set[str] | None = None) -> SiteAccess:
        """How the driver reaches the site, credential decrypted (never for a response)."""
        with self._db.session() as session:
            site = self._find(session, name_or_id, projects, removed=True)
            if site.identity_mode == REMOVED:
                raise SiteRemoved(site.name)
            return _access(site, self._cipher.decrypt(site.credential))

    @staticmethod
    def _find(
        session: Session, name_or_id: str, projects: set[str] | None, removed: bool = False
    ) -> Site:
        site = session.scalar(
            select(Site).where((Site.id == name_or_id) | (Site.name == name_or_id))
        )
        if (
            site is None
            or not sees(projects, site.project_id)
            or (site.identity_mode == REMOVED and not removed)
        ):
            raise NotFound(f"Could not find site: {name_or_id}.")
        return site


def _leave_catalog(session: Session, site: Site) -> int:
    """Take the site's region out of the catalog and forget its keypair copies (the keys stay
    at the site) and its identity replica (key rotations stop waiting for it). Returns the
    number of keypair copies forgotten."""
    copies = session.scalar(select(func.count()).where(KeypairCopy.site_id == site.id)) or 0
    session.execute(delete(KeypairCopy).where(KeypairCopy.site_id == site.id))
    session.execute(delete(IdentityReplica).where(IdentityReplica.name == site.name))
    bump_revision(session)
    session.execute(delete(Endpoint).where(Endpoint.region_id == site.region_name))
    session.execute(delete(Region).where(Region.id == site.region_name))
    return int(copies)

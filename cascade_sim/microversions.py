"""Nova-style microversions: parse the request's ``OpenStack-API-Version`` header, refuse one
the service does not support (406), echo the version used in the response."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Response

from cascade_sim.errors import SimError

_VERSION = re.compile(r"^(\d+)\.(\d+)$")


@dataclass(frozen=True, order=True)
class Microversion:
    major: int
    minor: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"

    @classmethod
    def parse(cls, text: str) -> Microversion:
        match = _VERSION.match(text.strip())
        if match is None:
            raise SimError(400, f"Invalid microversion {text!r}: use MAJOR.MINOR or latest.")
        return cls(int(match[1]), int(match[2]))


@dataclass(frozen=True)
class VersionRange:
    service: str  # "compute", "volume"
    legacy_header: str | None  # e.g. X-OpenStack-Nova-API-Version
    minimum: Microversion
    maximum: Microversion

    def requested(self, request: Request) -> Microversion:
        wanted = self._header_value(request)
        if wanted is None:
            return self.minimum
        version = self.maximum if wanted.strip() == "latest" else Microversion.parse(wanted)
        if not self.minimum <= version <= self.maximum:
            raise SimError(
                406,
                f"Version {version} is not supported by the API. "
                f"Minimum is {self.minimum} and maximum is {self.maximum}.",
            )
        return version

    def _header_value(self, request: Request) -> str | None:
        for part in request.headers.get("openstack-api-version", "").split(","):
            name, _, value = part.strip().partition(" ")
            if name.lower() == self.service:
                return value
        if self.legacy_header:
            return request.headers.get(self.legacy_header)
        return None

    def dependency(self) -> object:
        def negotiate(request: Request, response: Response) -> Microversion:
            version = self.requested(request)
            response.headers["OpenStack-API-Version"] = f"{self.service} {version}"
            response.headers["Vary"] = "OpenStack-API-Version"
            if self.legacy_header:
                response.headers[self.legacy_header] = str(version)
            return version

        return Depends(negotiate)


NOVA = VersionRange(
    "compute", "X-OpenStack-Nova-API-Version", Microversion(2, 1), Microversion(2, 96)
)
NovaVersion = Annotated[Microversion, NOVA.dependency()]

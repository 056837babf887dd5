"""What the engine needs from its process: the settings, the database, the queue client, the
operations service, the site credential cipher and (for scheduled rotation) the key repository.

A structural interface, so the engine names what it uses without importing the composition
root (``cascade.services.Services`` satisfies it; so would a worker's smaller assembly).
"""

from __future__ import annotations

from typing import Protocol

from cascade.config import Settings
from cascade.db import Database
from cascade.engine.operations import Operations
from cascade.engine.queue import OperationQueue
from cascade.identity.keys import KeyRepository
from cascade.identity.rotation import KeyRotation
from cascade.sites.credentials import CredentialCipher


class EngineServices(Protocol):
    @property
    def settings(self) -> Settings: ...

    @property
    def db(self) -> Database: ...

    @property
    def queue(self) -> OperationQueue: ...

    @property
    def operations(self) -> Operations: ...

    @property
    def credentials(self) -> CredentialCipher: ...

    @property
    def keys(self) -> KeyRepository: ...

    def key_rotation(self) -> KeyRotation: ...

    def close(self) -> None: ...

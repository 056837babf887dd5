"""The running services of one Cascade process, built once from the settings: its identity
(``IdentityServices``) plus the engine's queue and operations, the fabric's goal state and the
site credential cipher. The composition root: the API, the CLI, the workers and the tests
reach every service through one instance per process; no capability package imports it.
"""

from __future__ import annotations

from functools import cached_property

from cascade.engine import queue
from cascade.engine.operations import Operations
from cascade.fabric.goal import GoalStore
from cascade.identity.bootstrap import BootstrapResult
from cascade.identity.services import IdentityServices, initialize_identity
from cascade.sites.credentials import CredentialCipher


class Services(IdentityServices):
    @cached_property
    def credentials(self) -> CredentialCipher:
        return CredentialCipher(self.settings.data_dir / "credential.key")

    @cached_property
    def queue(self) -> queue.OperationQueue:
        return queue.OperationQueue(self.db)

    @cached_property
    def operations(self) -> Operations:
        return Operations(self.db, self.queue)

    @cached_property
    def fabric(self) -> GoalStore:
        """The network fabric's goal state: hosts, networks, ports and their revisions."""
        return GoalStore(self.db)

    def close(self) -> None:
        if "queue" in self.__dict__:
            self.queue.close()
        super().close()


def initialize(services: Services, admin_password: str | None) -> BootstrapResult:
    """What ``cascade init`` does: the identity's data dir, migrations, keys and admin, then
    DBOS's tables and queues and the site credential key. Safe to run again."""
    result = initialize_identity(services, admin_password)
    queue.prepare(services.db, services.settings)
    services.credentials.ensure_key()
    return result

"""The engine's fixtures (real site-sims, real workers), for replication's tests."""

from tests.engine.conftest import start_worker, two_sites

__all__ = ["start_worker", "two_sites"]

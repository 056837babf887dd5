"""The engine's fixtures (real site-sims, real workers), for protection's tests."""

from tests.engine.conftest import module_sites, shared_sites, start_worker, two_sites

__all__ = ["module_sites", "shared_sites", "start_worker", "two_sites"]

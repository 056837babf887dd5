"""Chunk claims against retention's sweep, on SQLite and PostgreSQL, with a directory chunk
store and the rows a plan's checkpoints would have (no site is contacted): a batch of chunks
is claimed in one transaction, new, uploading or stored; the sweep deletes only what no
manifest names and no running backup may count on; a claim re-made while the sweep reads
keeps its chunk; a claim of a chunk being deleted waits until it is gone, then claims it
anew."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cascade.db import Database
from cascade.db.models import Project, Site
from cascade.db.protection_models import Checkpoint, CheckpointVolume, ProtectionPlan, StoredChunk
from cascade.protection import chunk_claims
from cascade.protection.chunk_claims import claim, stored, sweep
from cascade.protection.chunk_store import DirectoryChunkStore
from cascade.protection.chunks import Chunk, chunk_name

LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)


@pytest.fixture
def db(backend_db: Database) -> Database:
    return backend_db


def _chunks(*contents: bytes) -> dict[str, bytes]:
    """Chunks of these contents: name -> bytes."""
    return {chunk_name(data): data for data in contents}


def _claim(db: Database, store: DirectoryChunkStore, chunks: dict[str, bytes]) -> dict[str, str]:
    return claim(db, store.url, {n: (n, len(d)) for n, d in chunks.items()})


def _plan(session: Session, store_url: str) -> str:
    project = session.scalars(select(Project.id).where(Project.name == "admin")).one()
    sites = [
        Site(name=n, region_name=n, identity_url="http://127.0.0.1:9/v3", username="admin",
             site_project_name="admin", credential=b"x", project_id=project)
        for n in ("site-a", "site-b")
    ]  # fmt: skip
    session.add_all(sites)
    session.flush()
    plan = ProtectionPlan(
        project_id=project, name="p", source_site_id=sites[0].id, target_site_id=sites[1].id,
        strategy="group_snapshot", freeze_bound_s=30.0, retention=1, chunk_store=store_url,
        status="ACTIVE",
    )  # fmt: skip
    session.add(plan)
    session.flush()
    return plan.id


def _checkpoint(
    session: Session, plan_id: str, store_url: str, status: str, manifest: list[str]
) -> Checkpoint:
    checkpoint = Checkpoint(
        plan_id=plan_id, project_id="p", status=status, operation_id="op", store_url=store_url
    )
    session.add(checkpoint)
    session.flush()
    blocks = {str(n): [name, "sha"] for n, name in enumerate(manifest)}
    session.add(
        CheckpointVolume(
            checkpoint_id=checkpoint.id, volume_id="v", server_id="s", position=0,
            device="/dev/vdb", snapshot_id="snap", status=status, blocks=blocks,
        )
    )  # fmt: skip
    return checkpoint


def _age(db: Database, names: list[str]) -> None:
    """Every claim of these chunks made long ago (before any checkpoint began)."""
    with db.session() as session:
        session.execute(
            update(StoredChunk).where(StoredChunk.name.in_(names)).values(claimed_at=LONG_AGO)
        )


def _states(db: Database) -> dict[str, str]:
    with db.session() as session:
        rows = session.execute(select(StoredChunk.name, StoredChunk.state))
        return {name: state for name, state in rows}


def test_a_batch_is_claimed_new_then_uploading_then_stored(db: Database, tmp_path: Path) -> None:
    store = DirectoryChunkStore(tmp_path / "chunks")
    first = _chunks(b"a" * 100, b"b" * 100)
    assert _claim(db, store, first) == dict.fromkeys(first, "new")
    both = first | _chunks(b"c" * 100)
    claimed = _claim(db, store, both)
    assert claimed == {**dict.fromkeys(first, "uploading"), chunk_name(b"c" * 100): "new"}
    for data in both.values():
        store.put(Chunk.of(data))
    stored(db, store, sorted(both))
    assert _claim(db, store, both) == dict.fromkeys(both, "stored")
    assert _claim(db, store, {}) == {}


def test_the_sweep_spares_referenced_chunks_and_those_a_running_backup_claimed(
    db: Database, tmp_path: Path
) -> None:
    store = DirectoryChunkStore(tmp_path / "chunks")
    kept, unreferenced, claimed_late = (_chunks(data) for data in (b"k", b"u", b"r"))
    everything = kept | unreferenced | claimed_late
    _claim(db, store, everything)
    for data in everything.values():
        store.put(Chunk.of(data))
    stored(db, store, sorted(everything))
    _age(db, sorted(kept | unreferenced))
    with db.session() as session:
        plan_id = _plan(session, store.url)
        _checkpoint(session, plan_id, store.url, "available", list(kept))
        running = _checkpoint(session, plan_id, store.url, "backing-up", [])
        running.created_at = datetime.now(UTC) - timedelta(seconds=60)
    # claimed_late: claimed after the running checkpoint began, named by no manifest yet
    assert sweep(db, store) == 1
    assert sorted(store.names()) == sorted(kept | claimed_late)
    assert set(_states(db)) == set(kept | claimed_late)


def test_a_claim_made_while_the_sweep_marks_keeps_its_chunk(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DirectoryChunkStore(tmp_path / "chunks")
    chunks = _chunks(b"old chunk")
    _claim(db, store, chunks)
    for data in chunks.values():
        store.put(Chunk.of(data))
    stored(db, store, sorted(chunks))
    _age(db, sorted(chunks))
    with db.session() as session:  # the backup about to claim it began a minute ago
        running = _checkpoint(session, _plan(session, store.url), store.url, "backing-up", [])
        running.created_at = datetime.now(UTC) - timedelta(seconds=60)
    batches = chunk_claims._batches

    def claimed_meanwhile(names: list[str]) -> Iterator[list[str]]:
        """Between the sweep's read of the candidates and its marking of them."""
        assert names == list(chunks)
        assert _claim(db, store, chunks) == dict.fromkeys(chunks, "stored")
        return batches(names)

    monkeypatch.setattr(chunk_claims, "_batches", claimed_meanwhile)
    assert sweep(db, store) == 0
    assert list(store.names()) == list(chunks)
    assert _states(db) == dict.fromkeys(chunks, "stored")


def test_a_claim_waits_for_a_chunk_being_deleted_then_claims_it_anew(
    db: Database, tmp_path: Path
) -> None:
    store = DirectoryChunkStore(tmp_path / "chunks")
    chunks = _chunks(b"doomed", b"fine")
    doomed = chunk_name(b"doomed")
    _claim(db, store, chunks)
    stored(db, store, sorted(chunks))
    with db.session() as session:
        session.execute(
            update(StoredChunk).where(StoredChunk.name == doomed).values(state="deleting")
        )
    claimed: dict[str, str] = {}
    claimer = threading.Thread(target=lambda: claimed.update(_claim(db, store, chunks)))
    claimer.start()
    time.sleep(0.5)
    assert claimer.is_alive(), "the claim did not wait for the sweep"
    assert _states(db)[chunk_name(b"fine")] == "stored"  # the waiting batch holds nothing
    chunk_claims.forget(db, store.url, doomed)
    claimer.join(timeout=60)
    assert claimed == {doomed: "new", chunk_name(b"fine"): "stored"}

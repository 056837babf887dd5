"""The worker side of image policies: after each target site's step has decided (and
deleted what is gone from the source), every (image, target site) to copy is a step of its
own wrapping ``image_copy.copy_image``, all enqueued at once on the engine's transfers
queue: they run in parallel, at most ``transfer_concurrency`` at a time in the whole cluster
(with every other job's copies), each limited to the policy's bandwidth per target site (in
chunks of a second's worth at that limit). A copy
writes its bytes done and total into its job item as it goes, and adds each chunk to the
item's bytes sent as its upload starts; a copy interrupted (worker killed, target down) is
resumed by the step run again, or by the next job, from the last chunk the target
confirmed. A target's image of that name holding other bytes (an older version of the
source's, or the site's own under cascade_wins) is deleted first. Then the copy is recorded
as Cascade's at the site; a copy that fails is noted like any refused write
(``records.note_failures``), so the audit backs off from it."""

from __future__ import annotations

from typing import Any

from openstack.connection import Connection

from cascade.db.models import Site
from cascade.db.replication_models import ReplicationJob, ReplicationPolicy
from cascade.engine.context import context
from cascade.engine.queue import TRANSFERS_QUEUE
from cascade.engine.workflows import Job, SiteCall, StepRun, fan_out, step_function
from cascade.errors import CascadeError, present
from cascade.replication.bandwidth import SharedByteRateLimit
from cascade.replication.image_copy import copy_image
from cascade.replication.image_kind import IMAGES, named
from cascade.replication.image_transfer import chunk_bytes_for
from cascade.replication.records import item_progress, item_sent, note_failures, save_record

COPY = "replication.copy"


def copy_everywhere(
    job: Job, job_id: str, sites: list[tuple[str, str]], deferred: dict[str, list[str]]
) -> dict[str, dict[str, Any]]:
    """Copy each site's deferred images (site name -> image names); one outcome per
    "site/image"."""
    calls = [
        SiteCall(f"copy image {name} to {site}", f"{site}/{name}", COPY, (job_id, site_id, name))
        for site_id, site in sites
        for name in deferred.get(site, [])
    ]
    return fan_out(job, calls, TRANSFERS_QUEUE)


def _remove_stale(c: Connection, name: str, origin: str) -> None:
    """Delete the target's images named ``name`` not copied from ``origin``: the site's own,
    or Cascade's copies (finished or not) of another source image."""
    for found in named(c, name):
        if found.state["origin"] != origin:
            IMAGES.delete(c, found)


@step_function(COPY)
def copy(_run: StepRun, job_id: str, site_id: str, name: str) -> str:
    engine = context()
    with engine.db.session() as session:
        job = present(session.get(ReplicationJob, job_id), f"job {job_id}")
        policy = present(session.get(ReplicationPolicy, job.policy_id), "policy")
        site = present(session.get(Site, site_id), f"site {site_id}")
        state, limit = (job.desired or {})[name], policy.bandwidth_limit
        policy_id, source_id, site_name = policy.id, policy.source_site_id or "", site.name
    source, target = engine.driver(source_id), engine.driver(site_id)
    origin = f"{source.access.name}/{state['id']}"
    item_progress(job_id, site_id, name, status="running", bytes_total=state["size"], bytes_done=0)

    def progress(done: int, total: int) -> None:
        item_progress(job_id, site_id, name, bytes_done=done, bytes_total=total)

    try:
        target.call(f"replace images named {name}", lambda c: _remove_stale(c, name, origin))
        result = copy_image(
            source,
            target,
            state["id"],
            chunk_bytes=chunk_bytes_for(limit),
            on_progress=progress,
            on_send=lambda count: item_sent(job_id, site_id, name, count),
            limit=None if limit is None else SharedByteRateLimit(engine.db, site_name, limit),
        )
    except CascadeError as failure:
        error = f"site {site_name}: image {name}: {failure.message}"
        item_progress(job_id, site_id, name, status="error", error=error)
        note_failures(policy_id, site_id, {name: error}, set())  # the audit backs off
        raise CascadeError(error) from None
    save_record(policy_id, site_id, name, result.target_image_id, IMAGES.digest(state))
    note_failures(policy_id, site_id, {}, {name})
    item_progress(
        job_id,
        site_id,
        name,
        status="done",
        target_id=result.target_image_id,
        bytes_done=result.bytes_total,
    )
    return result.target_image_id

"""Strategy 3, image snapshot, worker side: an image_snapshot plan's checkpoint. Its one
server is frozen (the barrier's freeze step), imaged through the source site's compute
(Nova's createImage, the consistency point), thawed (the barrier's thaw, always), then the
image is copied to the target site's image service: downloaded from the source and uploaded
to the target as one stream of 1 MiB chunks, never whole in memory, its digest computed on
the way. The digest is Glance's own (``os_hash_algo``, sha512 by default, rather than the
md5 ``checksum``): the streamed bytes must have the source's ``os_hash_value``, and the
target's image, once uploaded, the same. The checkpoint records both images
(``checkpoints.images``); a restore boots the server from the copy (``restore_steps``), and
retention deletes an expired checkpoint's images at both sites, as a failed checkpoint's.

May import cascade.protection (barrier), cascade.engine, cascade.db, cascade.sites.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from functools import partial
from typing import Any

from openstack import exceptions as sdk_exceptions
from openstack.connection import Connection

from cascade.db.protection_models import Checkpoint, ProtectionPlan
from cascade.engine.context import context
from cascade.engine.workflows import Job, StepFailed, StepRun, step, step_function
from cascade.errors import Conflict
from cascade.protection.barrier import (
    freeze_member,
    hold_barrier,
    now,
    plan_of,
    still_held,
    thaw_all,
)
from cascade.sites.driver import SiteCallFailed
from cascade.sites.waits import until_status

CHUNK = 1 << 20
IMAGE_WAIT_S = 300


def image_name(checkpoint_id: str) -> str:
    return f"cascade-checkpoint-{checkpoint_id}"


def _find(c: Connection, name: str) -> Any:
    return next(iter(c.image.images(name=name)), None)


def _image_server(c: Connection, at_site: str, name: str) -> str:
    """The server's image named ``name`` (made once: found again by name), active."""
    image = _find(c, name) or c.compute.create_server_image(at_site, name)
    until_status(lambda: c.image.get_image(image.id), "active", ("killed",), IMAGE_WAIT_S)
    return str(image.id)


@step_function("checkpoint.image")
def take_image(_run: StepRun, checkpoint_id: str, server_id: str, at_site: str) -> str:
    """The server's image at the source, taken while it is frozen: the consistency point."""
    checkpoint, plan = plan_of(checkpoint_id)
    hold_barrier(checkpoint, plan)
    taken_at = now()
    image_id = (
        context()
        .driver(plan.source_site_id)
        .call(
            f"image server {server_id}",
            lambda c: _image_server(c, at_site, image_name(checkpoint_id)),
        )
    )
    with context().db.session() as session:  # discarded with its images if not held
        session.get_one(Checkpoint, checkpoint_id).images = {server_id: {"source": image_id}}
    still_held(checkpoint_id)
    with context().db.session() as session:
        session.get_one(Checkpoint, checkpoint_id).consistency_point = taken_at.replace(
            microsecond=0
        )
    return image_id


def _stream(source: Connection, image: Any, digest: Any) -> Iterator[bytes]:
    """The image's bytes from the source, in chunks, each added to ``digest``."""
    response = source.image.get(f"/images/{image.id}/file", stream=True)
    sdk_exceptions.raise_from_response(response)
    for chunk in response.iter_content(CHUNK):
        digest.update(chunk)
        yield chunk


def _upload(source: Connection, target: Connection, image: Any, name: str) -> dict[str, Any]:
    """Copy ``image`` to the target as ``name`` (an earlier partial copy is replaced, a
    complete one kept); its id there, size and digest, checked against the source's."""
    algo, expected = image.hash_algo, image.hash_value
    if not algo or not expected:
        raise Conflict(f"image {image.id} at the source has no digest to check a copy against")
    done = {"target": None, "size": image.size, "hash_algo": algo, "hash": expected}
    found = _find(target, name)
    if found is not None and found.status == "active" and found.hash_value == expected:
        return {**done, "target": str(found.id)}
    if found is not None:
        target.image.delete_image(found)
    made = target.image.post(
        "/images",
        json={
            "name": name,
            "disk_format": image.disk_format,
            "container_format": image.container_format,
            "visibility": "private",
        },
    )
    sdk_exceptions.raise_from_response(made)
    copy_id = str(made.json()["id"])
    digest = hashlib.new(algo)
    sent = target.image.put(
        f"/images/{copy_id}/file",
        data=_stream(source, image, digest),
        headers={"Content-Type": "application/octet-stream"},
    )
    sdk_exceptions.raise_from_response(sent)
    stored = target.image.get_image(copy_id)
    if digest.hexdigest() != expected or stored.hash_value != expected:
        target.image.delete_image(copy_id, ignore_missing=True)
        raise Conflict(
            f"the copy of image {image.id} does not match it ({algo}: the source says "
            f"{expected}, the bytes read were {digest.hexdigest()}, the target stored "
            f"{stored.hash_value}); the copy was deleted"
        )
    return {**done, "target": copy_id}


@step_function("checkpoint.copy_image")
def copy_image(_run: StepRun, checkpoint_id: str, server_id: str) -> dict[str, Any]:
    """Copy the checkpoint's image of the server to the target site; recorded and returned:
    {source, target, size, hash_algo, hash}."""
    engine = context()
    checkpoint, plan = plan_of(checkpoint_id)
    source_id = checkpoint.images[server_id]["source"]
    target = engine.driver(plan.target_site_id)

    def copy(source: Connection) -> dict[str, Any]:
        image = source.image.get_image(source_id)
        return target.call(
            f"upload image {source_id} to the target",
            lambda c: _upload(source, c, image, image_name(checkpoint_id)),
        )

    copied = engine.driver(plan.source_site_id).call(
        f"copy image {source_id} to the target site", copy
    )
    record = {"source": source_id, **copied}
    with engine.db.session() as session:
        session.get_one(Checkpoint, checkpoint_id).images = {server_id: record}
    return record


def _delete_images(c: Connection, image_ids: list[str]) -> None:
    for image_id in image_ids:
        c.image.delete_image(image_id, ignore_missing=True)


def drop_images(plan: ProtectionPlan, checkpoints: list[Checkpoint]) -> None:
    """Delete the checkpoints' images at the source and target sites."""
    engine = context()
    for site_id, key in ((plan.source_site_id, "source"), (plan.target_site_id, "target")):
        images = [i[key] for c in checkpoints for i in c.images.values() if i.get(key)]
        if images:
            engine.driver(site_id).call(
                f"delete {len(images)} images of plan {plan.id}",
                partial(_delete_images, image_ids=images),
            )


@step_function("checkpoint.drop_images")
def discard_images(_run: StepRun, checkpoint_id: str) -> str | None:
    """A failed checkpoint's images leave both sites; if a site does not answer, they stay
    there and the result says so."""
    checkpoint, plan = plan_of(checkpoint_id)
    try:
        drop_images(plan, [checkpoint])
    except SiteCallFailed as failure:
        return f"its images stay: {failure.message}"
    with context().db.session() as session:
        session.get_one(Checkpoint, checkpoint_id).images = {}
    return None


def image_checkpoint(job: Job, begun: dict[str, Any]) -> dict[str, Any]:
    """``plan.checkpoint`` of an image_snapshot plan, once begun (``checkpoint.begin``)."""
    checkpoint_id, site = begun["checkpoint"], begun["site"]
    ((position, server_id, at_site, _volumes),) = begun["members"]
    error: str | None = None
    try:
        freeze_member(job, checkpoint_id, site, position, server_id, at_site)
        step(
            job,
            f"image server {server_id}",
            site,
            "checkpoint.image",
            checkpoint_id,
            server_id,
            at_site,
        )
    except StepFailed as failure:
        error = str(failure)
    thaw_error = thaw_all(job, checkpoint_id, site, [[position, at_site]])
    error = "; ".join(e for e in (error, thaw_error) if e) or None
    copied = None
    if error is None:
        try:
            copied = step(
                job,
                "copy the image to the target",
                site,
                "checkpoint.copy_image",
                checkpoint_id,
                server_id,
            )
        except StepFailed as failure:
            error = f"copying the image to the target failed: {failure}"
    step(job, "mark the checkpoint", site, "checkpoint.backed_up", checkpoint_id, error)
    if error:
        step(job, "delete its images", site, "checkpoint.drop_images", checkpoint_id)
        raise StepFailed(f"checkpoint {checkpoint_id} failed: {error}")
    expired = step(job, "apply the plan's retention", site, "checkpoint.retain", job.resource_id)
    return {"checkpoint": checkpoint_id, "image": copied, "expired": expired}

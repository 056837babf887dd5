"""Swift's capabilities document and its bulk delete, beside the object store (``objects``).

``GET /object-store/info`` (no token, as Swift's ``/info``) says what this store does beyond
the core API: ``bulk_delete`` with its limits. ``POST`` or ``DELETE`` on an account with
``?bulk-delete`` deletes the objects (and empty containers) the body lists, one URL-encoded
``/container[/object]`` per line, at most ``MAX_DELETES`` of them, in order, each as its own
``DELETE`` would; the answer is Swift's report (``Number Deleted``, ``Number Not Found``,
``Errors`` as [path, status], ``Response Status``), 200 even when some failed, as Swift's
middleware answers. May import ``cascade_sim.objects`` besides what the package may.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from fastapi import APIRouter, Request

from cascade_sim import objects
from cascade_sim.common import RegionDep
from cascade_sim.errors import SimError

Json = dict[str, Any]
MAX_DELETES = 10000
MAX_FAILED = 1000
SWIFT_VERSION = "2.34.0"  # the Swift release whose API this store follows

info_router = APIRouter(prefix="/object-store", tags=["object-store"])
router = APIRouter(prefix="/object-store/v1/AUTH_{project_id}", tags=["object-store"])


@info_router.get("/info", summary="The store's capabilities (Swift's /info)")
def info() -> Json:
    return {
        "swift": {"version": SWIFT_VERSION},
        "bulk_delete": {"max_deletes_per_request": MAX_DELETES, "max_failed_deletes": MAX_FAILED},
    }


@router.api_route("", methods=["POST", "DELETE"], summary="Bulk delete (?bulk-delete)")
async def bulk_delete(request: Request, account: objects.Account, site: RegionDep) -> Json:
    if "bulk-delete" not in request.query_params:
        raise SimError(405, "An account takes POST or DELETE only with ?bulk-delete.")
    lines = (await request.body()).decode("utf-8", errors="replace").splitlines()
    paths = [unquote(line.strip()) for line in lines if line.strip()]
    if len(paths) > MAX_DELETES:
        raise SimError(413, f"A bulk delete takes at most {MAX_DELETES} paths, not {len(paths)}.")
    deleted, not_found, errors = 0, 0, []
    for path in paths:
        container, _, name = path.lstrip("/").partition("/")
        try:
            if name:
                objects.delete_object(container, name, account, site)
            else:
                objects.delete_container(container, account, site)
            deleted += 1
        except SimError as error:
            if error.status == 404:
                not_found += 1
            else:
                errors.append([path, f"{error.status} {error.message}"])
                if len(errors) >= MAX_FAILED:
                    break
    return {
        "Number Deleted": deleted,
        "Number Not Found": not_found,
        "Errors": errors,
        "Response Status": "400 Bad Request" if errors else "200 OK",
        "Response Body": "",
    }


def routers() -> list[APIRouter]:
    return [info_router, router]

"""A restore's answer against the OpenAPI document: every field of ``RestoreOut`` is typed
there (no free-form object), and a restore recorded as the restore steps record one (a
failed one with volumes, a moved port, a service IP's move and a clean-up; a storage
replication volume) validates against it, its fields not yet recorded left out (never
null), as the CLI reads them."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
from sqlalchemy import select

from cascade.api.app import create_app
from cascade.db.models import Project, Site
from cascade.db.protection_models import Restore
from cascade.protection.restores import restore_out
from cascade.services import Services

RECORDED: dict[str, Any] = {
    "mapping": {"flavors": {"m1.tiny": "m1.small"}, "networks": {}, "images": {}},
    "volumes": {
        "vol-1": {"volume": "new-1", "blocks": 3, "written": 1, "verified": False},
        "vol-2": {"volume": "new-2", "replica": "replica-2"},
        "vol-3": {},
    },
    "servers": {"src-1": "dst-1"},
    "ports": {
        "src-1": {
            "network_id": "n1",
            "network": "vnf",
            "ip": "10.0.0.4",
            "mac": "fa:16:3e:00:00:04",
            "port": "p1",
            "server": "dst-1",
            "moved_from": {"site_id": "a", "site_port_id": "sp", "host": "h", "vtep": None},
        },
        "src-2": {"network_id": "n1", "network": "vnf", "ip": None, "port": None, "mac": None},
    },
    "service_ip": {
        "id": "sip",
        "address": "10.0.0.9",
        "to": "src-1",
        "status": "failed",
        "operation": "op-2",
        "holder": "dst-1",
        "holder_site": None,
        "switchover_s": None,
        "pending_sites": {"site-a": "site-a did not answer"},
        "error": "the holder's site did not take it",
    },
    "cleanup": {"servers": ["dst-1"], "volumes": ["new-1"], "error": "site b is down"},
}


def _untyped(schema: Any, components: dict[str, Any], seen: set[str]) -> list[str]:
    """Places under ``schema`` where any object would do."""
    if isinstance(schema, list):
        return [p for item in schema for p in _untyped(item, components, seen)]
    if not isinstance(schema, dict):
        return []
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name in seen:
            return []
        seen.add(name)
        return _untyped(components[name], components, seen)
    free = schema.get("type") == "object" and not schema.get("properties")
    if schema == {} or (free and schema.get("additionalProperties", True) in (True, {})):
        return [json.dumps(schema)]
    return [p for value in schema.values() for p in _untyped(value, components, seen)]


def _restore(services: Services) -> Restore:
    with services.db.session() as session:
        project = session.scalars(select(Project.id).where(Project.name == "admin")).one()
        site = Site(
            name="site-b", region_name="RegionB", identity_url="http://127.0.0.1:9/v3",
            username="admin", site_project_name="admin", credential=b"x", project_id=project,
        )  # fmt: skip
        session.add(site)
        session.flush()
        restore = Restore(
            project_id=project, plan_id="plan", checkpoint_id="checkpoint",
            target_site_id=site.id, status="failed", operation_id="op-1",
            error="block 7 of volume vol-1 cannot be restored", **RECORDED,
        )  # fmt: skip
        session.add(restore)
    return restore


def test_a_recorded_restore_validates_against_the_openapi_document(services: Services) -> None:
    document = create_app(services).openapi()
    components = document["components"]["schemas"]
    assert _untyped({"$ref": "#/components/schemas/RestoreOut"}, components, set()) == []

    with services.db.session() as session:
        answer = json.loads(restore_out(session, _restore(services)).model_dump_json())
    defs = json.loads(json.dumps(components).replace("#/components/schemas/", "#/$defs/"))
    jsonschema.validate(answer, {"$ref": "#/$defs/RestoreOut", "$defs": defs})

    replicated = {"volume": "new-2", "verified": False, "replica": "replica-2"}
    assert answer["volumes"]["vol-2"] == replicated
    assert answer["volumes"]["vol-3"] == {"verified": False}
    assert "server" not in answer["ports"]["src-2"]  # not made yet: no key, as the CLI reads
    assert "moved_from" not in answer["ports"]["src-2"]
    assert answer["ports"]["src-1"]["moved_from"]["site_id"] == "a"
    assert "holder_site" not in answer["service_ip"]
    assert answer["service_ip"]["pending_sites"] == {"site-a": "site-a did not answer"}
    assert "kept_replicas" not in answer["cleanup"]
    assert answer["mapping"]["availability_zone"] is None

"""Routers behind a check of their prefix (``cascade.api.routes.behind_prefix``): a request
reaches the route it names whichever router holds it (path parameters in its prefix too),
one outside every prefix is 404, a wrong method 405, and a request under a root path (a
proxy's ``--root-path``) still finds its route; the app's OpenAPI document is the one its
routers make."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from cascade.api.routes import behind_prefix


def app_of(*routers: APIRouter, root_path: str = "") -> FastAPI:
    app = FastAPI(root_path=root_path)
    for router in routers:
        app.include_router(behind_prefix(router))
    return app


def routers() -> list[APIRouter]:
    first, last, bare = APIRouter(prefix="/v1/a"), APIRouter(prefix="/v1/ab"), APIRouter()
    nested = APIRouter(prefix="/v1/p/{owner}/items")

    @nested.put("/{item}")
    def in_nested(owner: str, item: str) -> dict[str, str]:
        return {"router": "nested", "owner": owner, "item": item}

    @first.get("/{item}")
    def in_first(item: str) -> dict[str, str]:
        return {"router": "first", "item": item}

    @last.post("")
    def in_last() -> dict[str, str]:
        return {"router": "last"}

    @bare.get("/health")
    def health() -> dict[str, str]:
        return {"router": "bare"}

    return [first, last, nested, bare]


def test_each_request_reaches_its_route_whatever_router_holds_it() -> None:
    with TestClient(app_of(*routers())) as client:
        assert client.get("/v1/a/x").json() == {"router": "first", "item": "x"}
        assert client.post("/v1/ab").json() == {"router": "last"}  # "/v1/a" is its prefix too
        assert client.get("/health").json() == {"router": "bare"}
        nested = {"router": "nested", "owner": "o", "item": "i"}
        assert client.put("/v1/p/o/items/i").json() == nested  # a parameter in its prefix
        assert client.get("/v1/ab").status_code == 405
        assert client.get("/v2/a/x").status_code == 404


def test_a_request_under_a_root_path_finds_its_route() -> None:
    with TestClient(app_of(*routers(), root_path="/cascade")) as client:
        assert client.get("/cascade/v1/a/y").json() == {"router": "first", "item": "y"}
        assert client.post("/cascade/v1/ab").json() == {"router": "last"}


def test_the_openapi_document_is_the_routers_own() -> None:
    plain = FastAPI()
    for router in routers():
        plain.include_router(router)
    assert app_of(*routers()).openapi()["paths"] == plain.openapi()["paths"]

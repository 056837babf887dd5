"""Every error leaves the API in Keystone's shape, ``{"error": {"code", "title", "message"}}``.

Request validation errors are 400 (as Keystone answers them), never FastAPI's 422; anything
unexpected is logged and answered 500 without a traceback in the body.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from cascade.errors import CascadeError

log = logging.getLogger("cascade.api")


class ErrorDetail(BaseModel):
    code: int
    title: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route can answer."""
    return {code: {"model": ErrorBody, "description": HTTPStatus(code).phrase} for code in codes}


Renderer = Callable[[str, int, str, "CascadeError | None"], Any]


def keystone_body(_path: str, status: int, message: str, _error: CascadeError | None) -> Any:
    """Keystone's error body; the default for every route."""
    return {"error": {"code": status, "title": HTTPStatus(status).phrase, "message": message}}


def _describe(error: RequestValidationError) -> str:
    parts = []
    for item in error.errors()[:5]:
        where = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
        parts.append(f"{where or 'body'}: {item.get('msg', 'invalid')}")
    return "Invalid input: " + "; ".join(parts)


def install(app: FastAPI, render: Renderer = keystone_body) -> None:
    """Route every error through ``render(path, status, message, error)``."""

    def respond(
        request: Request,
        status: int,
        message: str,
        error: CascadeError | None = None,
        headers: dict[str, str] | None = None,
    ) -> JSONResponse:
        body = render(request.url.path, status, message, error)
        return JSONResponse(body, status_code=status, headers=headers)

    @app.exception_handler(CascadeError)
    async def _cascade(request: Request, error: CascadeError) -> JSONResponse:
        return respond(request, error.status, error.message, error)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        return respond(request, 400, _describe(error))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, error: HTTPException) -> JSONResponse:
        headers = dict(error.headers or {})
        routes = getattr(app.state, "routes", None)
        if error.status_code == 405 and routes is not None:
            headers["Allow"] = ", ".join(routes.allowed_methods(request.url.path))
        return respond(request, error.status_code, str(error.detail), headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return respond(request, 500, f"Unexpected error: {type(error).__name__}.")

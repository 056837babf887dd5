"""Every error leaves the API in Keystone's shape, ``{"error": {"code", "title", "message"}}``.

Request validation errors are 400 (as Keystone answers them), never FastAPI's 422; anything
unexpected is logged and answered 500 without a traceback in the body.
"""

from __future__ import annotations

import logging
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


def _render(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    title = HTTPStatus(status).phrase
    body = {"error": {"code": status, "title": title, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


def _describe(error: RequestValidationError) -> str:
    parts = []
    for item in error.errors()[:5]:
        where = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
        parts.append(f"{where or 'body'}: {item.get('msg', 'invalid')}")
    return "Invalid input: " + "; ".join(parts)


def install(app: FastAPI) -> None:
    @app.exception_handler(CascadeError)
    async def _cascade(_request: Request, error: CascadeError) -> JSONResponse:
        return _render(error.status, error.message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, error: RequestValidationError) -> JSONResponse:
        return _render(400, _describe(error))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, error: HTTPException) -> JSONResponse:
        headers = dict(error.headers or {})
        if error.status_code == 405:
            headers["Allow"] = ", ".join(app.state.routes.allowed_methods(request.url.path))
        return _render(error.status_code, str(error.detail), headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _render(500, f"Unexpected error: {type(error).__name__}.")

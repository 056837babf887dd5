"""A ``requests`` transport to an app served in-process: a follower's keystoneauth1 session
reaches the test's master through its ``TestClient`` (the real app, no socket), as its
``MasterLink`` reaches a real master over TCP."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi.testclient import TestClient
from requests import PreparedRequest, Response
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict


class InProcess(BaseAdapter):
    """Sends each request to ``client``'s app and keeps it in ``sent``."""

    def __init__(self, client: TestClient) -> None:
        super().__init__()
        self.client = client
        self.sent: list[PreparedRequest] = []

    def send(
        self,
        request: PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | None = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> Response:
        self.sent.append(request)
        answer = self.client.request(
            str(request.method),
            str(request.url),
            headers=dict(request.headers),
            content=request.body,
        )
        response = Response()
        response.status_code = answer.status_code
        response.reason = answer.reason_phrase
        response.headers = CaseInsensitiveDict(answer.headers)
        response._content = answer.content
        response.encoding = answer.encoding
        response.url = str(request.url)
        response.request = request
        return response

    def close(self) -> None:
        """The client belongs to the test."""

"""Backup chunks in a bucket of an S3-compatible object store (Ceph RGW, MinIO, AWS S3),
through boto3 (issue 16): ``s3://HOST[:PORT]/BUCKET`` over HTTPS, ``s3+http://`` without TLS.

Credentials come from boto3's own chain on every worker (``AWS_ACCESS_KEY_ID`` and
``AWS_SECRET_ACCESS_KEY``, a shared credentials file, ``AWS_PROFILE``), never from the URL,
which plans store and show. Requests are path-style (the bucket in the path, as RGW and MinIO
serve it without wildcard DNS) and carry checksums only where S3 requires them (several
S3-compatible stores refuse the newer flexible-checksum headers). boto3 itself does not
retry: a transient failure (connection lost or timed out, a 5xx, a throttling answer) is
retried by ``cascade.retry`` up to ``S3_DEADLINE`` seconds; then, like any other failure, it
is raised as ``ChunkStoreFailed`` naming the store and the call. A PUT is atomic, and durable
once S3 answers: ``sync`` has nothing to do. A missing bucket is made at the first put and
reads as empty before.

May import ``chunk_store``, ``chunks``, ``cascade.errors``, ``cascade.retry`` and boto3.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    SSLError,
)
from botocore.exceptions import ConnectionError as S3ConnectionError

from cascade.errors import CascadeError
from cascade.protection.chunk_store import ChunkStore
from cascade.protection.chunks import is_chunk_name
from cascade.retry import Backoff, until_deadline

T = TypeVar("T")
S3_DEADLINE = 30.0  # seconds a call is retried while it fails transiently
BACKOFF = Backoff(first=0.2, cap=5.0)
POOL = 16  # connections per store: the backup's block threads put chunks at once
THROTTLED = {"SlowDown", "Throttling", "RequestTimeout", "ServiceUnavailable", "InternalError"}
MISSING = {"404", "NoSuchKey", "NoSuchBucket", "NotFound"}
_RAISE: Any = object()  # ``_call``'s default: a missing object or bucket is an error


class ChunkStoreFailed(CascadeError):
    """A call to an S3 chunk store failed for good (or kept failing to the deadline)."""

    status = 502

    def __init__(self, url: str, call: str, reason: str) -> None:
        super().__init__(f"chunk store {url}: {call} failed: {reason}")


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _transient(error: BaseException) -> bool:
    if isinstance(error, ClientError):
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        return status >= 500 or _code(error) in THROTTLED
    connection = isinstance(error, S3ConnectionError | HTTPClientError)
    return connection and not isinstance(error, SSLError)


def _reason(error: BaseException) -> str:
    if isinstance(error, ClientError):
        detail = error.response.get("Error", {})
        return f"{detail.get('Code', 'error')}: {detail.get('Message', '') or error}"
    return str(error)


class S3ChunkStore(ChunkStore):
    """Chunks as objects named by their chunk names in one bucket."""

    def __init__(
        self,
        endpoint: str,
        bucket: str,
        url: str,
        page_size: int = 1000,
        deadline: float = S3_DEADLINE,
    ) -> None:
        self.bucket = bucket
        self.url = url
        self.page_size = page_size  # names per listing request
        self.deadline = deadline
        config = Config(
            s3={"addressing_style": "path"},
            retries={"total_max_attempts": 1},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            max_pool_connections=POOL,
            connect_timeout=5,
            read_timeout=60,
        )
        self.client = boto3.session.Session().client("s3", endpoint_url=endpoint, config=config)
        self._bucket_made = False

    def sync(self, names: list[str]) -> None:
        return None  # an S3 PUT is durable when it answers

    def names(self) -> Iterator[str]:
        token: str | None = None
        while True:
            page = self._call("list chunks", partial(self._page, token), missing={})
            yield from (o["Key"] for o in page.get("Contents", []) if is_chunk_name(o["Key"]))
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or token is None:
                return

    def _page(self, token: str | None) -> dict[str, Any]:
        options = {"ContinuationToken": token} if token else {}
        listed: dict[str, Any] = self.client.list_objects_v2(
            Bucket=self.bucket, MaxKeys=self.page_size, **options
        )
        return listed

    def _has(self, name: str) -> bool:
        return self._call(
            f"look for chunk {name}",
            lambda: bool(self.client.head_object(Bucket=self.bucket, Key=name)),
            missing=False,
        )

    def _write(self, name: str, data: bytes) -> None:
        if not self._bucket_made:
            self._call(f"create bucket {self.bucket}", self._make_bucket)
            self._bucket_made = True
        self._call(
            f"store chunk {name}",
            lambda: self.client.put_object(Bucket=self.bucket, Key=name, Body=data),
        )

    def _make_bucket(self) -> None:
        try:
            self.client.create_bucket(Bucket=self.bucket)
        except ClientError as error:
            if _code(error) != "BucketAlreadyOwnedByYou":
                raise

    def _read(self, name: str) -> bytes | None:
        def download() -> bytes:
            body = self.client.get_object(Bucket=self.bucket, Key=name)["Body"]
            return bytes(body.read())

        return self._call(f"read chunk {name}", download, missing=None)

    def _remove(self, name: str) -> None:
        self._call(
            f"delete chunk {name}",
            lambda: self.client.delete_object(Bucket=self.bucket, Key=name),
            missing=None,
        )

    def _call(self, call: str, action: Callable[[], T], missing: Any = _RAISE) -> T:
        """``action()`` retried while it fails transiently; ``missing`` (if given) when S3
        answers that the object or bucket does not exist."""

        def attempt() -> T:
            try:
                return action()
            except ClientError as error:
                if missing is not _RAISE and _code(error) in MISSING:
                    return missing  # type: ignore[no-any-return]
                raise

        try:
            return until_deadline(BACKOFF, self.deadline, _transient, attempt)
        except (ClientError, BotoCoreError) as error:
            raise ChunkStoreFailed(self.url, call, _reason(error)) from None

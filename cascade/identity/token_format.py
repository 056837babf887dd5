"""Keystone-compatible Fernet token payloads; imports only stdlib, msgpack, cryptography and
cascade.identity.keys.

A token is ``Fernet(msgpack([version, *fields]))`` with the base64 ``=`` padding removed.
The field layouts, for the six payload versions supported here, are Keystone's:

* 0 unscoped:  ``[0, user, methods, expires, audit_ids]``
* 1 domain:    ``[1, user, methods, domain, expires, audit_ids]``
* 2 project:   ``[2, user, methods, project, expires, audit_ids]``
* 3 trust:     ``[3, user, methods, project, expires, audit_ids, trust]``
* 8 system:    ``[8, user, methods, system, expires, audit_ids]``
* 9 app cred:  ``[9, user, methods, project, expires, audit_ids, app_cred]``

``user`` and ``project`` are ``[True, 16 uuid bytes]`` for canonical 32-hex ids and
``[False, str]`` otherwise, and so is ``app_cred``; ``trust`` is the bare 16 uuid bytes (a
trust id is always a uuid). ``domain`` is the bare 16 uuid bytes, or the default domain id
as a string. ``methods`` is a bitmask over the ``[auth] methods`` list (bit ``1 << index``).
``expires`` is a float POSIX timestamp of whole seconds. ``audit_ids`` holds the 16 bytes
behind each 22-character urlsafe-base64 audit id. Expiry is taken from the payload, never
from the Fernet timestamp.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import msgpack
from cryptography.fernet import Fernet, MultiFernet
from cryptography.fernet import InvalidToken as FernetInvalidToken

from cascade.identity.keys import KeyRepository

UNSCOPED = 0
DOMAIN_SCOPED = 1
PROJECT_SCOPED = 2
TRUST_SCOPED = 3
SYSTEM_SCOPED = 8
APP_CRED_SCOPED = 9

# Keystone's default ``[auth] methods`` (keystone/conf/constants.py); the order fixes the bits.
DEFAULT_AUTH_METHODS: tuple[str, ...] = (
    "external",
    "password",
    "token",
    "oauth1",
    "mapped",
    "application_credential",
    "ec2credential",
)
DEFAULT_DOMAIN_ID = "default"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_UUID_HEX = re.compile(r"[0-9a-f]{32}")
_AUDIT_ID_LENGTH = 22
_MAX_TOKEN_LENGTH = 8192
_FERNET_VERSION = 0x80
_FERNET_HEADER = 9  # version byte + 8-byte big-endian timestamp


class InvalidToken(Exception):
    """The token cannot be accepted: bad crypto, malformed payload or unsupported version."""


class ExpiredToken(InvalidToken):
    """The token is authentic but its payload expiry has passed."""


class _MalformedError(Exception):
    """Internal: a payload field does not have Keystone's shape."""


@dataclass(frozen=True, slots=True)
class TokenPayload:
    """What a Fernet token carries. At most one of project_id, domain_id, system is set; a
    trust-scoped or application credential token (``trust_id``, ``app_cred_id``: at most one)
    is project-scoped too."""

    user_id: str
    methods: tuple[str, ...]
    expires_at: datetime
    audit_ids: tuple[str, ...]
    project_id: str | None = None
    domain_id: str | None = None
    system: str | None = None
    trust_id: str | None = None
    app_cred_id: str | None = None


_Decoder = Callable[[list[Any]], TokenPayload]


def new_audit_id() -> str:
    """A fresh audit id: 16 random bytes as unpadded urlsafe base64 (22 characters)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes)[:-2].decode("ascii")


def format_time(dt: datetime) -> str:
    """Keystone's token time string: UTC, truncated to seconds, ``2026-11-24T12:00:00.000000Z``."""
    return _to_utc(dt).replace(tzinfo=None).isoformat(timespec="seconds") + ".000000Z"


class TokenFormatter:
    """Mints and validates Keystone Fernet tokens with the keys of one repository."""

    def __init__(
        self,
        keys: KeyRepository | Sequence[bytes],
        *,
        auth_methods: Sequence[str] = DEFAULT_AUTH_METHODS,
        default_domain_id: str = DEFAULT_DOMAIN_ID,
    ) -> None:
        if len(set(auth_methods)) != len(auth_methods):
            raise ValueError("auth_methods must not repeat a method")
        self._source = keys
        self._method_bits = {name: 1 << index for index, name in enumerate(auth_methods)}
        self._all_bits = (1 << len(auth_methods)) - 1
        self._default_domain_id = default_domain_id
        self._decoders: dict[int, _Decoder] = {
            UNSCOPED: self._decode_unscoped,
            DOMAIN_SCOPED: self._decode_domain,
            PROJECT_SCOPED: self._decode_project,
            TRUST_SCOPED: self._decode_trust,
            SYSTEM_SCOPED: self._decode_system,
            APP_CRED_SCOPED: self._decode_app_cred,
        }
        self._crypto = self._build_crypto()

    def reload(self) -> None:
        """Re-read the key repository, e.g. after a rotation or a key distribution."""
        self._crypto = self._build_crypto()

    def create(self, payload: TokenPayload) -> str:
        """Mint a token for ``payload`` with the primary key (expiry truncated to seconds)."""
        packed = msgpack.packb(self._assemble(payload))
        return self._crypto.encrypt(packed).rstrip(b"=").decode("ascii")

    def validate(self, token: str) -> TokenPayload:
        """Decrypt and decode ``token``; raise InvalidToken or ExpiredToken."""
        version, fields = _split_version(self._decrypt(token))
        decoder = self._decoders.get(version)
        if decoder is None:
            raise InvalidToken(f"unsupported payload version {version}")
        try:
            payload = decoder(fields)
        except (_MalformedError, ValueError, TypeError, OverflowError, OSError):
            raise InvalidToken("malformed token payload") from None
        if payload.expires_at <= datetime.now(UTC):
            raise ExpiredToken("token has expired")
        return payload

    @staticmethod
    def issued_at(token: str) -> datetime:
        """When the token was minted: its Fernet timestamp (whole seconds, aware UTC).

        Like Keystone's ``issued_at``, read from the token framing without checking the
        signature, so call it on a token that ``validate`` accepted.
        """
        try:
            raw = base64.urlsafe_b64decode(_restore_padding(token))
            if len(raw) < _FERNET_HEADER or raw[0] != _FERNET_VERSION:
                raise ValueError("not a Fernet token")
            return datetime.fromtimestamp(int.from_bytes(raw[1:_FERNET_HEADER], "big"), UTC)
        except (ValueError, TypeError, OverflowError, OSError):
            raise InvalidToken("token is not a Fernet token") from None

    def _build_crypto(self) -> MultiFernet:
        source = self._source
        keys = source.keys() if isinstance(source, KeyRepository) else list(source)
        if not keys:
            raise ValueError("at least one Fernet key is required")
        return MultiFernet([Fernet(key) for key in keys])

    def _decrypt(self, token: str) -> bytes:
        if not isinstance(token, str) or len(token) > _MAX_TOKEN_LENGTH:
            raise InvalidToken("token is not a Fernet token")
        try:
            return self._crypto.decrypt(_restore_padding(token).encode("ascii"))
        except (UnicodeEncodeError, FernetInvalidToken):
            raise InvalidToken("token could not be decrypted with any known key") from None

    def _assemble(self, p: TokenPayload) -> tuple[Any, ...]:
        if sum(scope is not None for scope in (p.project_id, p.domain_id, p.system)) > 1:
            raise ValueError("a token has at most one of project_id, domain_id, system")
        delegated = p.trust_id is not None or p.app_cred_id is not None
        if delegated and (p.project_id is None or None not in (p.trust_id, p.app_cred_id)):
            raise ValueError("a trust or application credential token has a project, not both")
        user = _pack_id(p.user_id)
        methods = self._methods_to_bits(p.methods)
        expires = (_to_utc(p.expires_at) - _EPOCH).total_seconds()
        audit_ids = [_audit_id_to_bytes(audit_id) for audit_id in p.audit_ids]
        if p.trust_id is not None:
            trust = bytes.fromhex(_uuid_hex(p.trust_id))
            project = _pack_id(str(p.project_id))
            return (TRUST_SCOPED, user, methods, project, expires, audit_ids, trust)
        if p.app_cred_id is not None:
            project = _pack_id(str(p.project_id))
            app_cred = _pack_id(p.app_cred_id)
            return (APP_CRED_SCOPED, user, methods, project, expires, audit_ids, app_cred)
        if p.system is not None:
            return (SYSTEM_SCOPED, user, methods, p.system, expires, audit_ids)
        if p.project_id is not None:
            return (PROJECT_SCOPED, user, methods, _pack_id(p.project_id), expires, audit_ids)
        if p.domain_id is not None:
            domain = self._pack_domain(p.domain_id)
            return (DOMAIN_SCOPED, user, methods, domain, expires, audit_ids)
        return (UNSCOPED, user, methods, expires, audit_ids)

    def _methods_to_bits(self, methods: Sequence[str]) -> int:
        bits = 0
        for method in methods:
            if method not in self._method_bits:
                raise ValueError(f"auth method {method!r} is not in the configured auth methods")
            bits |= self._method_bits[method]
        return bits

    def _bits_to_methods(self, bits: Any) -> tuple[str, ...]:
        if not _is_int(bits) or bits < 0 or bits & ~self._all_bits:
            raise _MalformedError("unknown auth method bits")
        # Keystone lists the methods from the highest bit down.
        return tuple(name for name, bit in reversed(self._method_bits.items()) if bits & bit)

    def _pack_domain(self, domain_id: str) -> bytes | str:
        if _UUID_HEX.fullmatch(domain_id):
            return bytes.fromhex(domain_id)
        if domain_id == self._default_domain_id:
            return domain_id
        raise ValueError("domain_id must be a 32-hex UUID or the default domain id")

    def _unpack_domain(self, value: Any) -> str:
        if isinstance(value, bytes) and len(value) == 16:
            return value.hex()
        if _text(value) == self._default_domain_id:
            return self._default_domain_id
        raise _MalformedError("domain id")

    def _decode_unscoped(self, fields: list[Any]) -> TokenPayload:
        user, methods, expires, audit_ids = fields
        return self._payload(user, methods, expires, audit_ids)

    def _decode_domain(self, fields: list[Any]) -> TokenPayload:
        user, methods, domain, expires, audit_ids = fields
        domain_id = self._unpack_domain(domain)
        return self._payload(user, methods, expires, audit_ids, domain_id=domain_id)

    def _decode_project(self, fields: list[Any]) -> TokenPayload:
        user, methods, project, expires, audit_ids = fields
        project_id = _unpack_id(project)
        return self._payload(user, methods, expires, audit_ids, project_id=project_id)

    def _decode_trust(self, fields: list[Any]) -> TokenPayload:
        user, methods, project, expires, audit_ids, trust = fields
        if not isinstance(trust, bytes) or len(trust) != 16:
            raise _MalformedError("trust id")
        payload = self._payload(user, methods, expires, audit_ids, project_id=_unpack_id(project))
        return replace(payload, trust_id=trust.hex())

    def _decode_app_cred(self, fields: list[Any]) -> TokenPayload:
        user, methods, project, expires, audit_ids, app_cred = fields
        payload = self._payload(user, methods, expires, audit_ids, project_id=_unpack_id(project))
        return replace(payload, app_cred_id=_unpack_id(app_cred))

    def _decode_system(self, fields: list[Any]) -> TokenPayload:
        user, methods, system, expires, audit_ids = fields
        return self._payload(user, methods, expires, audit_ids, system=_text(system))

    def _payload(
        self,
        user: Any,
        methods: Any,
        expires: Any,
        audit_ids: Any,
        *,
        project_id: str | None = None,
        domain_id: str | None = None,
        system: str | None = None,
    ) -> TokenPayload:
        return TokenPayload(
            user_id=_unpack_id(user),
            methods=self._bits_to_methods(methods),
            expires_at=_from_timestamp(expires),
            audit_ids=tuple(_audit_id_from_bytes(audit_id) for audit_id in audit_ids),
            project_id=project_id,
            domain_id=domain_id,
            system=system,
        )


def _restore_padding(token: str) -> str:
    return token + "=" * (-len(token) % 4)


def _split_version(plaintext: bytes) -> tuple[int, list[Any]]:
    try:
        unpacked = msgpack.unpackb(plaintext)
    except (ValueError, TypeError):
        raise InvalidToken("malformed token payload") from None
    if not isinstance(unpacked, list) or not unpacked or not _is_int(unpacked[0]):
        raise InvalidToken("malformed token payload")
    return unpacked[0], unpacked[1:]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _to_utc(dt: datetime) -> datetime:
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError("datetime must be timezone-aware")
    return dt.astimezone(UTC).replace(microsecond=0)


def _from_timestamp(value: Any) -> datetime:
    if not isinstance(value, float | int) or isinstance(value, bool):
        raise _MalformedError("expiry")
    return datetime.fromtimestamp(value, UTC).replace(microsecond=0)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8")
    raise _MalformedError("text field")


def _uuid_hex(value: str) -> str:
    if not _UUID_HEX.fullmatch(value):
        raise ValueError("a trust id is a 32-hex UUID")
    return value


def _pack_id(value: str) -> tuple[bool, bytes | str]:
    if _UUID_HEX.fullmatch(value):
        return (True, bytes.fromhex(value))
    return (False, value)


def _unpack_id(item: Any) -> str:
    is_uuid, value = item
    if is_uuid is True and isinstance(value, bytes) and len(value) == 16:
        return value.hex()
    if is_uuid is False:
        return _text(value)
    raise _MalformedError("id")


def _audit_id_to_bytes(audit_id: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(audit_id + "==")
    except ValueError:
        raw = b""
    if len(audit_id) != _AUDIT_ID_LENGTH or len(raw) != 16 or _audit_id_from_bytes(raw) != audit_id:
        raise ValueError("audit ids are 22-character urlsafe-base64 strings of 16 bytes")
    return raw


def _audit_id_from_bytes(raw: Any) -> str:
    if not isinstance(raw, bytes):
        raise _MalformedError("audit id")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

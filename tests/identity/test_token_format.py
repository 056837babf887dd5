"""Fernet tokens in Keystone's exact payload format.

The golden vectors below are written by hand from Keystone's formatter
(keystone/token/token_formatters.py), not produced by our code, so a drift in our layout
fails here.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgpack
import pytest
from cryptography.fernet import Fernet

from cascade.identity.keys import KeyRepository
from cascade.identity.token_format import (
    ExpiredToken,
    InvalidToken,
    TokenFormatter,
    TokenPayload,
    format_time,
    new_audit_id,
)

USER_ID = "0123456789abcdef0123456789abcdef"
USER_BYTES = b"\x01\x23\x45\x67\x89\xab\xcd\xef\x01\x23\x45\x67\x89\xab\xcd\xef"
PROJECT_ID = "fedcba9876543210fedcba9876543210"
PROJECT_BYTES = b"\xfe\xdc\xba\x98\x76\x54\x32\x10\xfe\xdc\xba\x98\x76\x54\x32\x10"
DOMAIN_ID = "00112233445566778899aabbccddeeff"
DOMAIN_BYTES = b"\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc\xdd\xee\xff"
AUDIT_ID = "AAECAwQFBgcICQoLDA0ODw"
AUDIT_BYTES = bytes(range(16))
PARENT_AUDIT_ID = "_____________________w"
PARENT_AUDIT_BYTES = b"\xff" * 16
GOLDEN_EXPIRY = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)
GOLDEN_TIMESTAMP = 1795521600.0
FAR_EXPIRY = datetime(2099, 1, 1, tzinfo=UTC)
FAR_TIMESTAMP = 4070908800.0


def _repo(tmp_path: Path) -> KeyRepository:
    repo = KeyRepository(tmp_path / "fernet-keys")
    repo.setup()
    return repo


def _payload(**changes: Any) -> TokenPayload:
    fields: dict[str, Any] = {
        "user_id": USER_ID,
        "methods": ("password",),
        "expires_at": FAR_EXPIRY,
        "audit_ids": (AUDIT_ID,),
    }
    fields.update(changes)
    return TokenPayload(**fields)


def _plaintext(key: bytes, token: str) -> bytes:
    return Fernet(key).decrypt(token + "=" * (-len(token) % 4))


def _keystone_token(key: bytes, payload: list[Any]) -> str:
    """A token built the way Keystone's formatter builds one."""
    return Fernet(key).encrypt(msgpack.packb(payload)).rstrip(b"=").decode()


def _primary(repo: KeyRepository) -> bytes:
    return repo.keys()[0]


# -- round trips -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        _payload(),
        _payload(project_id=PROJECT_ID),
        _payload(project_id="not-a-uuid-project"),
        _payload(domain_id=DOMAIN_ID),
        _payload(domain_id="default"),
        _payload(system="all"),
        _payload(user_id="ldap-user@example", audit_ids=(AUDIT_ID, PARENT_AUDIT_ID)),
        _payload(user_id=USER_ID.upper(), methods=()),
        _payload(user_id="01234567-89ab-cdef-0123-456789abcdef", methods=("mapped",)),
    ],
    ids=[
        "unscoped",
        "project",
        "project-non-uuid",
        "domain",
        "default-domain",
        "system",
        "non-uuid-user-and-parent-audit",
        "uppercase-hex-user-kept-as-string",
        "hyphenated-uuid-user-kept-as-string",
    ],
)
def test_round_trip(tmp_path: Path, payload: TokenPayload) -> None:
    formatter = TokenFormatter(_repo(tmp_path))
    token = formatter.create(payload)
    assert "=" not in token
    assert formatter.validate(token) == payload


def test_round_trip_from_key_list() -> None:
    formatter = TokenFormatter([Fernet.generate_key(), Fernet.generate_key()])
    payload = _payload(project_id=PROJECT_ID)
    assert formatter.validate(formatter.create(payload)) == payload


def test_methods_come_back_in_keystone_order(tmp_path: Path) -> None:
    formatter = TokenFormatter(_repo(tmp_path))
    token = formatter.create(_payload(methods=("password", "token", "external")))
    assert formatter.validate(token).methods == ("token", "password", "external")


def test_expiry_is_truncated_to_whole_seconds(tmp_path: Path) -> None:
    formatter = TokenFormatter(_repo(tmp_path))
    expires = datetime(2099, 1, 1, 3, 4, 5, 999_999, tzinfo=timezone(timedelta(hours=2)))
    token = formatter.create(_payload(expires_at=expires))
    assert formatter.validate(token).expires_at == datetime(2099, 1, 1, 1, 4, 5, tzinfo=UTC)


def test_issued_at_is_the_fernet_timestamp(tmp_path: Path) -> None:
    formatter = TokenFormatter(_repo(tmp_path))
    before = datetime.now(UTC).replace(microsecond=0)
    issued = formatter.issued_at(formatter.create(_payload()))
    assert before <= issued <= datetime.now(UTC)
    with pytest.raises(InvalidToken):
        formatter.issued_at("not-a-token")


# -- golden vectors: the exact msgpack layout Keystone produces ----------------------------


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            _payload(
                methods=("password", "token"),
                project_id=PROJECT_ID,
                expires_at=GOLDEN_EXPIRY,
                audit_ids=(AUDIT_ID, PARENT_AUDIT_ID),
            ),
            [
                2,
                [True, USER_BYTES],
                6,
                [True, PROJECT_BYTES],
                GOLDEN_TIMESTAMP,
                [AUDIT_BYTES, PARENT_AUDIT_BYTES],
            ],
        ),
        (
            _payload(project_id="service", expires_at=GOLDEN_EXPIRY),
            [2, [True, USER_BYTES], 2, [False, "service"], GOLDEN_TIMESTAMP, [AUDIT_BYTES]],
        ),
        (
            _payload(user_id="admin", domain_id="default", expires_at=GOLDEN_EXPIRY),
            [1, [False, "admin"], 2, "default", GOLDEN_TIMESTAMP, [AUDIT_BYTES]],
        ),
        (
            _payload(methods=("external",), domain_id=DOMAIN_ID, expires_at=GOLDEN_EXPIRY),
            [1, [True, USER_BYTES], 1, DOMAIN_BYTES, GOLDEN_TIMESTAMP, [AUDIT_BYTES]],
        ),
        (
            _payload(methods=("mapped",), expires_at=GOLDEN_EXPIRY),
            [0, [True, USER_BYTES], 16, GOLDEN_TIMESTAMP, [AUDIT_BYTES]],
        ),
        (
            _payload(methods=("oauth1",), system="all", expires_at=GOLDEN_EXPIRY),
            [8, [True, USER_BYTES], 8, "all", GOLDEN_TIMESTAMP, [AUDIT_BYTES]],
        ),
    ],
    ids=["project", "project-non-uuid", "default-domain", "domain", "unscoped", "system"],
)
def test_golden_payload_layout(tmp_path: Path, payload: TokenPayload, expected: list[Any]) -> None:
    repo = _repo(tmp_path)
    token = TokenFormatter(repo).create(payload)
    plaintext = _plaintext(_primary(repo), token)
    assert msgpack.unpackb(plaintext) == expected
    assert plaintext == msgpack.packb(expected)


@pytest.mark.parametrize(
    ("method", "bit"),
    [
        ("external", 1),
        ("password", 2),
        ("token", 4),
        ("oauth1", 8),
        ("mapped", 16),
        ("application_credential", 32),
        ("ec2credential", 64),
    ],
)
def test_method_bits_follow_keystone_default_auth_methods(
    tmp_path: Path, method: str, bit: int
) -> None:
    repo = _repo(tmp_path)
    token = TokenFormatter(repo).create(_payload(methods=(method,)))
    assert msgpack.unpackb(_plaintext(_primary(repo), token))[2] == bit


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            [2, [True, USER_BYTES], 2, [True, PROJECT_BYTES], FAR_TIMESTAMP, [AUDIT_BYTES]],
            _payload(project_id=PROJECT_ID),
        ),
        (
            [1, [False, "admin"], 3, "default", FAR_TIMESTAMP, [AUDIT_BYTES]],
            _payload(user_id="admin", methods=("password", "external"), domain_id="default"),
        ),
        (
            [1, [True, USER_BYTES], 2, DOMAIN_BYTES, FAR_TIMESTAMP, [AUDIT_BYTES]],
            _payload(domain_id=DOMAIN_ID),
        ),
        (
            [0, [True, USER_BYTES], 2, FAR_TIMESTAMP, [AUDIT_BYTES, PARENT_AUDIT_BYTES]],
            _payload(audit_ids=(AUDIT_ID, PARENT_AUDIT_ID)),
        ),
        (
            [8, [True, USER_BYTES], 2, "all", FAR_TIMESTAMP, [AUDIT_BYTES]],
            _payload(system="all"),
        ),
    ],
    ids=["project", "default-domain", "domain", "unscoped", "system"],
)
def test_validates_tokens_built_like_keystone(
    tmp_path: Path, raw: list[Any], expected: TokenPayload
) -> None:
    repo = _repo(tmp_path)
    secondary = repo.read_all()[0]
    formatter = TokenFormatter(repo)
    assert formatter.validate(_keystone_token(_primary(repo), raw)) == expected
    assert formatter.validate(_keystone_token(secondary, raw)) == expected


# -- rejection -----------------------------------------------------------------------------


def test_token_from_unknown_key_is_invalid(tmp_path: Path) -> None:
    stranger = TokenFormatter([Fernet.generate_key()])
    with pytest.raises(InvalidToken, match="any known key"):
        TokenFormatter(_repo(tmp_path)).validate(stranger.create(_payload()))


def test_expired_token(tmp_path: Path) -> None:
    formatter = TokenFormatter(_repo(tmp_path))
    past = datetime.now(UTC) - timedelta(seconds=2)
    token = formatter.create(_payload(expires_at=past))
    with pytest.raises(ExpiredToken) as caught:
        formatter.validate(token)
    assert isinstance(caught.value, InvalidToken)
    assert token not in str(caught.value)


def test_tampered_token_is_invalid(tmp_path: Path) -> None:
    formatter = TokenFormatter(_repo(tmp_path))
    token = formatter.create(_payload())
    middle = len(token) // 2
    tampered = token[:middle] + ("A" if token[middle] != "A" else "B") + token[middle + 1 :]
    with pytest.raises(InvalidToken) as caught:
        formatter.validate(tampered)
    assert tampered not in str(caught.value)


@pytest.mark.parametrize(
    "garbage",
    ["", "not-a-token", "gAAAAA", "é" * 120, "A" * 10_000],
    ids=["empty", "word", "short", "non-ascii", "huge"],
)
def test_garbage_is_invalid(tmp_path: Path, garbage: str) -> None:
    with pytest.raises(InvalidToken):
        TokenFormatter(_repo(tmp_path)).validate(garbage)


@pytest.mark.parametrize("version", [4, 5, 6, 7, 10, 99])
def test_unsupported_payload_version(tmp_path: Path, version: int) -> None:
    repo = _repo(tmp_path)
    token = _keystone_token(_primary(repo), [version, [True, USER_BYTES], 2, FAR_TIMESTAMP, []])
    with pytest.raises(InvalidToken, match=rf"^unsupported payload version {version}$"):
        TokenFormatter(repo).validate(token)


@pytest.mark.parametrize(
    "raw",
    [
        "just a string",
        [],
        ["2"],
        [True, [True, USER_BYTES], 2, FAR_TIMESTAMP, [AUDIT_BYTES]],
        [0, [True, USER_BYTES], 2, FAR_TIMESTAMP],
        [0, [True, b"short"], 2, FAR_TIMESTAMP, [AUDIT_BYTES]],
        [0, [True, USER_BYTES], 1 << 7, FAR_TIMESTAMP, [AUDIT_BYTES]],
        [0, [True, USER_BYTES], 2, "tomorrow", [AUDIT_BYTES]],
        [0, [True, USER_BYTES], 2, 1e300, [AUDIT_BYTES]],
        [0, [True, USER_BYTES], 2, FAR_TIMESTAMP, [AUDIT_ID]],
        [1, [True, USER_BYTES], 2, "other-domain", FAR_TIMESTAMP, [AUDIT_BYTES]],
        [2, [True, USER_BYTES], 2, PROJECT_BYTES, FAR_TIMESTAMP, [AUDIT_BYTES]],
        [8, [True, USER_BYTES], 2, 7, FAR_TIMESTAMP, [AUDIT_BYTES]],
        [3, [True, USER_BYTES], 2, [True, PROJECT_BYTES], FAR_TIMESTAMP, [AUDIT_BYTES], b"x"],
        [3, [True, USER_BYTES], 2, [True, PROJECT_BYTES], FAR_TIMESTAMP, [AUDIT_BYTES]],
        [9, [True, USER_BYTES], 2, [True, PROJECT_BYTES], FAR_TIMESTAMP, [AUDIT_BYTES], "x"],
    ],
    ids=[
        "not-a-list",
        "empty",
        "string-version",
        "bool-version",
        "too-short",
        "short-uuid",
        "unknown-method-bit",
        "string-expiry",
        "huge-expiry",
        "audit-id-as-text",
        "non-default-domain-string",
        "project-without-flag",
        "system-not-text",
        "trust-id-not-16-bytes",
        "trust-without-trust-id",
        "app-cred-id-without-flag",
    ],
)
def test_malformed_payload_is_invalid(tmp_path: Path, raw: Any) -> None:
    repo = _repo(tmp_path)
    with pytest.raises(InvalidToken, match=r"^malformed token payload$"):
        TokenFormatter(repo).validate(_keystone_token(_primary(repo), raw))


def test_undecodable_msgpack_is_invalid(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    token = Fernet(_primary(repo)).encrypt(b"\xc1\xc1").rstrip(b"=").decode()
    with pytest.raises(InvalidToken, match=r"^malformed token payload$"):
        TokenFormatter(repo).validate(token)


# -- keys and rotation ---------------------------------------------------------------------


def test_rotation_keeps_tokens_valid_until_their_key_is_purged(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    formatter = TokenFormatter(repo)
    old = formatter.create(_payload())
    repo.rotate(max_active_keys=3)
    formatter.reload()
    assert formatter.validate(old) == _payload()
    new = formatter.create(_payload())
    _plaintext(repo.read_all()[2], new)
    repo.rotate(max_active_keys=3)
    formatter.reload()
    with pytest.raises(InvalidToken):
        formatter.validate(old)
    assert formatter.validate(new) == _payload()


def test_token_minted_with_the_staged_key_is_accepted(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    peer_that_rotated_first = TokenFormatter([repo.read_all()[0]])
    token = peer_that_rotated_first.create(_payload())
    assert TokenFormatter(repo).validate(token) == _payload()


def test_formatter_keeps_its_keys_until_reload(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    formatter = TokenFormatter(repo)
    repo.rotate()
    token = formatter.create(_payload())
    _plaintext(repo.read_all()[1], token)


def test_formatter_needs_keys() -> None:
    with pytest.raises(ValueError, match="at least one"):
        TokenFormatter([])


# -- creation errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (_payload(expires_at=datetime(2099, 1, 1)), "timezone-aware"),
        (_payload(project_id=PROJECT_ID, domain_id=DOMAIN_ID), "at most one"),
        (_payload(domain_id="default", system="all"), "at most one"),
        (_payload(methods=("totp",)), "'totp'"),
        (_payload(domain_id="not-the-default"), "default domain"),
        (_payload(audit_ids=("short",)), "audit ids"),
        (_payload(audit_ids=(AUDIT_ID[:-1] + "x",)), "audit ids"),
        (_payload(audit_ids=(AUDIT_ID[:-1] + "!",)), "audit ids"),
        (_payload(audit_ids=("é" * 22,)), "audit ids"),
        (_payload(trust_id=PROJECT_ID), "has a project"),
        (_payload(project_id=PROJECT_ID, trust_id=PROJECT_ID, app_cred_id="a"), "not both"),
        (_payload(project_id=PROJECT_ID, trust_id="not-a-uuid"), "32-hex"),
    ],
    ids=[
        "naive-expiry",
        "project-and-domain",
        "domain-and-system",
        "unknown-method",
        "non-default-domain-name",
        "short-audit-id",
        "non-canonical-audit-id",
        "bad-audit-char",
        "non-ascii-audit-id",
        "trust-without-project",
        "trust-and-app-cred",
        "non-uuid-trust-id",
    ],
)
def test_create_rejects(tmp_path: Path, payload: TokenPayload, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        TokenFormatter(_repo(tmp_path)).create(payload)


def test_custom_auth_methods_and_default_domain(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    formatter = TokenFormatter(
        repo, auth_methods=("password", "token", "totp"), default_domain_id="Default"
    )
    payload = _payload(methods=("totp", "password"), domain_id="Default")
    token = formatter.create(payload)
    assert msgpack.unpackb(_plaintext(_primary(repo), token))[2] == 5
    assert formatter.validate(token).methods == ("totp", "password")
    with pytest.raises(InvalidToken):
        TokenFormatter(repo).validate(token)


def test_auth_methods_must_be_unique() -> None:
    with pytest.raises(ValueError, match="repeat"):
        TokenFormatter([Fernet.generate_key()], auth_methods=("password", "password"))


# -- helpers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC), "2026-11-24T12:00:00.000000Z"),
        (datetime(2016, 9, 14, 14, 1, 13, 970223, tzinfo=UTC), "2016-09-14T14:01:13.000000Z"),
        (
            datetime(2026, 11, 24, 13, 30, 0, tzinfo=timezone(timedelta(hours=1, minutes=30))),
            "2026-11-24T12:00:00.000000Z",
        ),
    ],
)
def test_format_time_matches_keystone(moment: datetime, text: str) -> None:
    assert format_time(moment) == text


def test_format_time_rejects_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        format_time(datetime(2026, 11, 24, 12, 0, 0))


def test_new_audit_id_shape() -> None:
    ids = {new_audit_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{22}", audit_id) for audit_id in ids)
    formatter = TokenFormatter([Fernet.generate_key()])
    payload = _payload(audit_ids=tuple(sorted(ids)[:2]))
    assert formatter.validate(formatter.create(payload)) == payload

"""Cascade's Fernet tokens against real Keystone (the ``keystone`` package, 30.x).

Keystone's own ``keystone.token.token_formatters.TokenFormatter`` and ``FernetUtils`` are run
on the same key repository directory as Cascade's ``TokenFormatter`` and ``KeyRepository``:
each side validates what the other minted, including after the other side rotated the keys
(so the token is under a secondary key). Keystone reads its settings from the global
``keystone.conf.CONF``; the ``keystone`` fixture sets it up and resets it afterwards.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from cryptography.fernet import InvalidToken as FernetInvalidToken

from cascade.identity.keys import KeyRepository
from cascade.identity.token_format import (
    DEFAULT_AUTH_METHODS,
    InvalidToken,
    TokenFormatter,
    TokenPayload,
    format_time,
    new_audit_id,
)

with warnings.catch_warnings():  # importing Keystone pulls in eventlet, which warns on import
    warnings.simplefilter("ignore")
    from keystone import conf as keystone_conf
    from keystone import exception as keystone_exception
    from keystone.common.fernet_utils import FernetUtils
    from keystone.token import token_formatters as ks

CONF = keystone_conf.CONF
MAX_ACTIVE_KEYS = 3
# What Keystone's TokenFormatter.validate_token returns, in order.
VALIDATE_FIELDS = (
    "user_id",
    "methods",
    "audit_ids",
    "system",
    "domain_id",
    "project_id",
    "trust_id",
    "federated_group_ids",
    "identity_provider_id",
    "protocol_id",
    "access_token_id",
    "app_cred_id",
    "thumbprint",
    "issued_at",
    "expires_at",
)

USER_ID = uuid.uuid4().hex
PROJECT_ID = uuid.uuid4().hex
DOMAIN_ID = uuid.uuid4().hex


@dataclass(frozen=True)
class Case:
    """One token: its fields and the Keystone payload class that carries them."""

    payload_class: type[ks.BasePayload]
    user_id: str = USER_ID
    methods: tuple[str, ...] = ("password",)
    audit_ids: tuple[str, ...] = ()
    project_id: str | None = None
    domain_id: str | None = None
    system: str | None = None
    trust_id: str | None = None
    app_cred_id: str | None = None


RESCOPED = ("token", "password")  # a token made from another token: two methods...
CASES = {
    "unscoped": Case(ks.UnscopedPayload),
    "unscoped-rescoped": Case(ks.UnscopedPayload, methods=RESCOPED),
    "project": Case(ks.ProjectScopedPayload, project_id=PROJECT_ID),
    "project-rescoped": Case(ks.ProjectScopedPayload, methods=RESCOPED, project_id=PROJECT_ID),
    "project-non-uuid-ids": Case(
        ks.ProjectScopedPayload, user_id="ldap-user@example", project_id="legacy-project"
    ),
    "domain": Case(ks.DomainScopedPayload, domain_id=DOMAIN_ID),
    "domain-rescoped": Case(ks.DomainScopedPayload, methods=RESCOPED, domain_id=DOMAIN_ID),
    "default-domain": Case(ks.DomainScopedPayload, domain_id="default"),
    "system": Case(ks.SystemScopedPayload, methods=("application_credential",), system="all"),
    "trust": Case(ks.TrustScopedPayload, project_id=PROJECT_ID, trust_id=uuid.uuid4().hex),
    "trust-rescoped": Case(
        ks.TrustScopedPayload, methods=RESCOPED, project_id=PROJECT_ID, trust_id=uuid.uuid4().hex
    ),
    "app-cred": Case(
        ks.ApplicationCredentialScopedPayload,
        methods=("application_credential",),
        project_id=PROJECT_ID,
        app_cred_id=uuid.uuid4().hex,
    ),
    "app-cred-non-uuid-id": Case(
        ks.ApplicationCredentialScopedPayload,
        methods=("application_credential",),
        project_id=PROJECT_ID,
        app_cred_id="legacy-app-cred",
    ),
}


@dataclass
class Keystone:
    """Keystone's token formatter and key utilities, configured on ``repository``."""

    repository: KeyRepository
    formatter: ks.TokenFormatter
    keys: FernetUtils


@pytest.fixture
def keystone(tmp_path: Path) -> Iterator[Keystone]:
    """Keystone's CONF parsed with no config files and pointed at a fresh repository that
    Cascade set up; CONF is reset (overrides dropped, parse undone) afterwards."""
    repository = KeyRepository(tmp_path / "fernet-keys")
    repository.setup()
    keystone_conf.configure()  # registers Keystone's options (idempotent)
    CONF(args=[], project="keystone", default_config_files=[], default_config_dirs=[])
    try:
        CONF.set_override("key_repository", str(repository.path), group="fernet_tokens")
        CONF.set_override("max_active_keys", MAX_ACTIVE_KEYS, group="fernet_tokens")
        keys = FernetUtils(str(repository.path), MAX_ACTIVE_KEYS, "fernet_tokens")
        yield Keystone(repository, ks.TokenFormatter(), keys)
    finally:
        CONF.reset()


def _expiry() -> datetime:
    """An hour ahead, with microseconds that both sides must drop."""
    return (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=654321)


def _audit_ids(case: Case) -> tuple[str, ...]:
    """One fresh audit id, plus the parent's for a token made from a token."""
    return case.audit_ids or tuple(new_audit_id() for _ in range(1 + ("token" in case.methods)))


def _cascade_payload(case: Case, expires_at: datetime, audit_ids: tuple[str, ...]) -> TokenPayload:
    return TokenPayload(
        user_id=case.user_id,
        methods=case.methods,
        expires_at=expires_at,
        audit_ids=audit_ids,
        project_id=case.project_id,
        domain_id=case.domain_id,
        system=case.system,
        trust_id=case.trust_id,
        app_cred_id=case.app_cred_id,
    )


def _keystone_mint(
    side: Keystone, case: Case, expires_at: datetime, audit_ids: tuple[str, ...]
) -> str:
    """A token minted by Keystone's formatter (expiry given as Keystone's time string)."""
    token: str = side.formatter.create_token(
        case.user_id,
        expires_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        list(audit_ids),
        case.payload_class,
        methods=list(case.methods),
        system=case.system,
        domain_id=case.domain_id,
        project_id=case.project_id,
        trust_id=case.trust_id,
        app_cred_id=case.app_cred_id,
    )
    return token


def _keystone_read(side: Keystone, token: str) -> dict[str, Any]:
    """Keystone's validate_token, as a dict of the fields it returns."""
    return dict(zip(VALIDATE_FIELDS, side.formatter.validate_token(token), strict=True))


def _assert_same(seen_by_keystone: dict[str, Any], seen_by_cascade: TokenPayload) -> None:
    assert seen_by_keystone["user_id"] == seen_by_cascade.user_id
    assert tuple(seen_by_keystone["methods"]) == seen_by_cascade.methods
    assert tuple(seen_by_keystone["audit_ids"]) == seen_by_cascade.audit_ids
    assert seen_by_keystone["project_id"] == seen_by_cascade.project_id
    assert seen_by_keystone["domain_id"] == seen_by_cascade.domain_id
    assert seen_by_keystone["system"] == seen_by_cascade.system
    assert seen_by_keystone["expires_at"] == format_time(seen_by_cascade.expires_at)
    assert seen_by_keystone["trust_id"] == seen_by_cascade.trust_id
    assert seen_by_keystone["app_cred_id"] == seen_by_cascade.app_cred_id


def _expect(case: Case, expires_at: datetime, audit_ids: tuple[str, ...]) -> TokenPayload:
    """What both sides must read back: the fields as given, methods in Keystone's order
    (highest bit first) and the expiry truncated to the second."""
    bits = {name: index for index, name in enumerate(DEFAULT_AUTH_METHODS)}
    methods = tuple(sorted(case.methods, key=bits.__getitem__, reverse=True))
    return TokenPayload(
        user_id=case.user_id,
        methods=methods,
        expires_at=expires_at.replace(microsecond=0),
        audit_ids=audit_ids,
        project_id=case.project_id,
        domain_id=case.domain_id,
        system=case.system,
        trust_id=case.trust_id,
        app_cred_id=case.app_cred_id,
    )


def _decrypting_key(repository: KeyRepository, token: str) -> int:
    """The number of the key file that decrypts ``token``."""
    for number, key in repository.read_all().items():
        try:
            Fernet(key).decrypt(token + "=" * (-len(token) % 4))
        except FernetInvalidToken:
            continue
        return number
    raise AssertionError("no key in the repository decrypts the token")


# -- configuration both sides must agree on ----------------------------------------------


def test_keystone_defaults_match_cascade(keystone: Keystone) -> None:
    assert tuple(CONF.auth.methods) == DEFAULT_AUTH_METHODS
    assert CONF.identity.default_domain_id == "default"
    assert CONF.fernet_tokens.key_repository == str(keystone.repository.path)
    # Keystone loads Cascade's repository in the same MultiFernet order Cascade uses.
    loaded = [key.strip().encode() for key in keystone.keys.load_keys()]
    assert loaded == keystone.repository.keys()


# -- both directions ----------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_keystone_validates_a_cascade_token(keystone: Keystone, case: Case) -> None:
    expires_at, audit_ids = _expiry(), _audit_ids(case)
    cascade = TokenFormatter(keystone.repository)
    token = cascade.create(_cascade_payload(case, expires_at, audit_ids))

    seen = _keystone_read(keystone, token)

    _assert_same(seen, _expect(case, expires_at, audit_ids))
    assert seen["issued_at"] == format_time(cascade.issued_at(token))


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_cascade_validates_a_keystone_token(keystone: Keystone, case: Case) -> None:
    expires_at, audit_ids = _expiry(), _audit_ids(case)
    token = _keystone_mint(keystone, case, expires_at, audit_ids)
    cascade = TokenFormatter(keystone.repository)

    payload = cascade.validate(token)

    assert payload == _expect(case, expires_at, audit_ids)
    _assert_same(_keystone_read(keystone, token), payload)  # and Keystone agrees with itself
    assert format_time(cascade.issued_at(token)) == _keystone_read(keystone, token)["issued_at"]


def test_keystone_reads_a_cascade_token_it_could_have_minted_byte_for_byte(
    keystone: Keystone,
) -> None:
    """Same fields, same plaintext: the msgpack layout is Keystone's, not just compatible."""
    case = CASES["project-rescoped"]
    expires_at, audit_ids = _expiry().replace(microsecond=0), _audit_ids(case)
    cascade_token = TokenFormatter(keystone.repository).create(
        _cascade_payload(case, expires_at, audit_ids)
    )
    keystone_token = _keystone_mint(keystone, case, expires_at, audit_ids)
    primary = Fernet(keystone.repository.keys()[0])

    def plaintext(token: str) -> bytes:
        return primary.decrypt(token + "=" * (-len(token) % 4))

    assert plaintext(cascade_token) == plaintext(keystone_token)


# -- rotation: a token under a secondary key ------------------------------------------------


@pytest.mark.parametrize("case", [CASES["project-rescoped"], CASES["domain"]], ids=["p", "d"])
def test_cascade_token_survives_a_keystone_rotation(keystone: Keystone, case: Case) -> None:
    expires_at, audit_ids = _expiry(), _audit_ids(case)
    cascade = TokenFormatter(keystone.repository)
    token = cascade.create(_cascade_payload(case, expires_at, audit_ids))
    minted_with = _decrypting_key(keystone.repository, token)

    keystone.keys.rotate_keys()  # keystone-manage fernet_rotate
    cascade.reload()

    primary = max(keystone.repository.read_all())
    assert minted_with != primary  # the token is now under a secondary key
    assert _decrypting_key(keystone.repository, token) == minted_with
    expected = _expect(case, expires_at, audit_ids)
    _assert_same(_keystone_read(keystone, token), expected)
    assert cascade.validate(token) == expected
    # A token minted now uses the new primary, on both sides.
    fresh = _keystone_mint(keystone, case, expires_at, audit_ids)
    assert _decrypting_key(keystone.repository, fresh) == primary
    assert cascade.validate(fresh) == expected
    ours = cascade.create(_cascade_payload(case, expires_at, audit_ids))
    assert _decrypting_key(keystone.repository, ours) == primary


@pytest.mark.parametrize("case", [CASES["unscoped-rescoped"], CASES["project"]], ids=["u", "p"])
def test_keystone_token_survives_a_cascade_rotation(keystone: Keystone, case: Case) -> None:
    expires_at, audit_ids = _expiry(), _audit_ids(case)
    token = _keystone_mint(keystone, case, expires_at, audit_ids)
    minted_with = _decrypting_key(keystone.repository, token)

    primary = keystone.repository.rotate(max_active_keys=MAX_ACTIVE_KEYS)

    assert minted_with != primary
    expected = _expect(case, expires_at, audit_ids)
    _assert_same(_keystone_read(keystone, token), expected)
    assert TokenFormatter(keystone.repository).validate(token) == expected
    # Keystone now mints with the primary Cascade promoted.
    assert (
        _decrypting_key(keystone.repository, _keystone_mint(keystone, case, expires_at, audit_ids))
        == primary
    )


def test_rotations_purge_the_same_keys(keystone: Keystone) -> None:
    """Keystone's and Cascade's rotations, interleaved, keep the same max_active_keys files;
    once the key that minted a token is purged, both sides refuse it."""
    case = CASES["project"]
    expires_at, audit_ids = _expiry(), _audit_ids(case)
    cascade = TokenFormatter(keystone.repository)
    token = cascade.create(_cascade_payload(case, expires_at, audit_ids))

    keystone.keys.rotate_keys()
    keystone.repository.rotate(max_active_keys=MAX_ACTIVE_KEYS)
    assert sorted(keystone.repository.read_all()) == [0, 2, 3]
    assert [k.strip().encode() for k in keystone.keys.load_keys()] == keystone.repository.keys()

    keystone.keys.rotate_keys()  # key 1, which minted the token, is purged
    cascade.reload()
    assert sorted(keystone.repository.read_all()) == [0, 3, 4]
    with pytest.raises(keystone_exception.ValidationError):
        keystone.formatter.validate_token(token)
    with pytest.raises(InvalidToken):
        cascade.validate(token)


def test_keystone_initialised_repository_serves_cascade(tmp_path: Path, keystone: Keystone) -> None:
    """``keystone-manage fernet_setup``'s layout is one Cascade reads and rotates."""
    directory = tmp_path / "keystone-made"
    made = FernetUtils(str(directory), MAX_ACTIVE_KEYS, "fernet_tokens")
    made.create_key_directory()
    made.initialize_key_repository()
    repository = KeyRepository(directory)
    assert sorted(repository.read_all()) == [0, 1]
    CONF.set_override("key_repository", str(directory), group="fernet_tokens")

    case = CASES["domain-rescoped"]
    expires_at, audit_ids = _expiry(), _audit_ids(case)
    token = _keystone_mint(keystone, case, expires_at, audit_ids)
    repository.rotate(max_active_keys=MAX_ACTIVE_KEYS)
    assert TokenFormatter(repository).validate(token) == _expect(case, expires_at, audit_ids)


# -- what Cascade does not carry ----------------------------------------------------------


def test_cascade_refuses_keystone_payloads_it_does_not_carry(keystone: Keystone) -> None:
    """An OAuth1-scoped Keystone token is authentic but not one of Cascade's versions."""
    token = keystone.formatter.create_token(
        USER_ID,
        _expiry().strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        [new_audit_id()],
        ks.OauthScopedPayload,
        methods=["oauth1"],
        project_id=PROJECT_ID,
        access_token_id=uuid.uuid4().hex,
    )
    with pytest.raises(InvalidToken, match="unsupported payload version 7"):
        TokenFormatter(keystone.repository).validate(token)


def test_keystone_refuses_a_token_from_other_keys(keystone: Keystone, tmp_path: Path) -> None:
    stranger = KeyRepository(tmp_path / "other-keys")
    stranger.setup()
    case = CASES["project"]
    token = TokenFormatter(stranger).create(_cascade_payload(case, _expiry(), (new_audit_id(),)))
    with pytest.raises(keystone_exception.ValidationError):
        keystone.formatter.validate_token(token)

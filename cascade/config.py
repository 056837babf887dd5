"""Settings: every knob Cascade reads, from the environment (``CASCADE_*``) and one TOML file.

Precedence, highest first: explicit arguments (CLI flags), environment variables,
the TOML file named by ``CASCADE_CONFIG`` (default ``<data dir>/cascade.toml``), defaults.
Imports nothing from the rest of the package.
"""

from __future__ import annotations

import os
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_DATA_DIR = Path("cascade-data")
# bcrypt cost factor of stored passwords: Keystone's default, and the bounds accepted (also
# by `cascade site-sim`, which reads the same variable for its region's passwords)
HASH_ROUNDS, MIN_HASH_ROUNDS, MAX_HASH_ROUNDS = 12, 4, 16
_data_dir_override: ContextVar[Path | None] = ContextVar("data_dir_override", default=None)


def _toml_path() -> Path:
    explicit = os.environ.get("CASCADE_CONFIG")
    if explicit:
        return Path(explicit)
    data_dir = _data_dir_override.get() or Path(
        os.environ.get("CASCADE_DATA_DIR", str(DEFAULT_DATA_DIR))
    )
    return data_dir / "cascade.toml"


class Settings(BaseSettings):
    """All settings. The field descriptions are the reference documentation (docs/settings.md)."""

    model_config = SettingsConfigDict(env_prefix="CASCADE_", extra="forbid")

    data_dir: Path = Field(
        DEFAULT_DATA_DIR, description="Directory for SQLite files and the Fernet key repository."
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the state database; PostgreSQL in production "
        "(postgresql+psycopg://...). Default: SQLite file cascade.db in the data dir.",
    )
    host: str = Field("127.0.0.1", description="Address `cascade up` listens on.")
    port: int = Field(5000, ge=1, le=65535, description="Port `cascade up` listens on.")
    public_url: str | None = Field(
        None,
        description="Base URL clients reach the API at (http or https, no query). `cascade up` "
        "keeps Cascade's identity endpoint in the catalog at <public_url>/identity/v3 and says "
        "so when it moves it; `cascade init --public-url` writes it to the data dir's "
        "cascade.toml. Every API process of one deployment must use the same. "
        "Default: http://<host>:<port>.",
    )
    region: str = Field("RegionOne", description="Region name of Cascade's own identity endpoint.")
    token_expiration: int = Field(
        3600, ge=60, le=7 * 86400, description="Token lifetime in seconds."
    )
    password_hash_rounds: int = Field(
        HASH_ROUNDS,
        ge=MIN_HASH_ROUNDS,
        le=MAX_HASH_ROUNDS,
        description="bcrypt cost factor for stored passwords (`cascade site-sim` reads the "
        "same variable for its region's).",
    )
    identity_refresh_interval: float = Field(
        0.1,
        ge=0,
        le=60,
        description="Seconds an API process may serve identity data (users, roles, revocations) "
        "before checking the database for changes made by other processes; its own changes "
        "are seen at once.",
    )
    identity_max_active_keys: int = Field(
        3,
        ge=3,
        le=100,
        description="Fernet keys kept by `cascade identity rotate-keys`: the staged key, the "
        "primary and the secondaries. A rotation that would drop a key which may still have "
        "unexpired tokens (primary less than token_expiration ago) is refused, so rotate at most "
        "every token_expiration / (identity_max_active_keys - 2) seconds.",
    )
    identity_rotate_every: int = Field(
        0,
        ge=0,
        le=365 * 86400,
        description="Seconds between scheduled key rotations at the master, run once per "
        "cluster by its workers (`cascade up --workers N`, `cascade worker` with the master's "
        "data dir); 0: only `cascade identity rotate-keys`. A scheduled rotation that a site "
        "blocks is logged with that site and tried again at a later tick.",
    )
    identity_master_url: str | None = Field(
        None,
        description="Set on a site's identity replica (`cascade identity-replica`): the master "
        "whose identity data this process follows. Identity writes are then refused with an "
        "error naming it.",
    )
    admin_password: str | None = Field(
        None, description="Password for the bootstrap admin (`cascade init`); generated if unset."
    )
    log_level: str = Field("info", description="Log level of the API server.")
    worker_concurrency: int = Field(
        8, ge=1, le=256, description="Operations one `cascade worker` runs at once (threads)."
    )
    transfer_concurrency: int = Field(
        4,
        ge=1,
        le=1024,
        description="Long transfers between sites (image copies) running at once in the "
        "whole cluster, across all jobs, policies and workers (the transfers queue's global "
        "concurrency); the others wait in the queue.",
    )
    queue_poll_interval: float = Field(
        0.05, gt=0, le=10, description="Seconds between a worker's looks at the operation queue."
    )
    heartbeat_interval: float = Field(
        0.5, gt=0, le=60, description="Seconds between a worker's heartbeats in the database."
    )
    worker_dead_after: float = Field(
        3.0,
        gt=0,
        le=600,
        description="Seconds without a heartbeat after which a live worker declares another "
        "dead and resumes its unfinished operations.",
    )
    site_call_deadline: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="Seconds an operation keeps retrying a site that fails transiently (down, "
        "5xx) before the step fails with the site's error.",
    )
    replication_source_wait: float = Field(
        3600.0,
        gt=0,
        le=7 * 24 * 3600,
        description="Seconds a replication job waits for its source site to answer (the job "
        "is `waiting` meanwhile, saying why) before it fails.",
    )
    convergence_interval: int = Field(
        60,
        ge=1,
        le=3600,
        description="Seconds between convergence passes (once per cluster); must divide a "
        "minute or, in whole minutes, an hour.",
    )
    protection_schedule_interval: int = Field(
        15,
        ge=0,
        le=3600,
        description="Seconds between the protection schedule's passes (once per cluster): "
        "each accepts a checkpoint of every plan with `checkpoint_every_s` whose next "
        "checkpoint is due and none queued or running; 0: no pass (scheduled checkpoints "
        "wait). Must divide a minute or, in whole minutes, an hour.",
    )
    freeze_watchdog_interval: int = Field(
        5,
        ge=0,
        le=60,
        description="Seconds between the freeze watchdog's passes (once per cluster): each "
        "thaws the servers of every checkpoint frozen longer than its plan's `freeze_bound_s`, "
        "so none stays frozen longer than that bound plus this interval while a worker lives; "
        "0: no watchdog. Must divide a minute.",
    )
    operation_retention: float = Field(
        7 * 24 * 3600.0,
        ge=1,
        le=10 * 365 * 24 * 3600.0,
        description="Seconds a finished operation is kept (its record, steps, Idempotency-Key "
        "and DBOS's records of its workflow); then the engine's prune, run once per cluster "
        "every `convergence_interval`, removes it.",
    )
    convergence_policy: Literal["recreate", "report"] = Field(
        "recreate",
        description="What a convergence pass does with a server deleted behind Cascade's back: "
        "recreate it at its site, or only mark it MISSING and report it.",
    )
    fabric_url: str = Field(
        "memory",
        description="Bus of the network fabric (control plane to host agents): `memory`, an "
        "in-process bus that only agents in the same process receive (the embedded default), "
        "or the URL of a NATS server, nats://host:port (a cluster's nodes: several, "
        "comma-separated).",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=_toml_path())
        return (init_settings, env_settings, toml)

    @field_validator(
        "convergence_interval", "protection_schedule_interval", "freeze_watchdog_interval"
    )
    @classmethod
    def _divides_the_clock(cls, seconds: int) -> int:
        if seconds:  # 0 (a schedule turned off) has no cron expression
            cron_schedule(seconds)
        return seconds

    @model_validator(mode="after")
    def _rotation_keeps_live_keys(self) -> Self:
        every, kept = self.identity_rotate_every, self.identity_max_active_keys - 2
        if every and every * kept < self.token_expiration:
            raise ValueError(
                f"identity_rotate_every ({every} s) x {kept} secondary keys is shorter than "
                f"token_expiration ({self.token_expiration} s): rotations would drop keys of "
                "unexpired tokens; rotate less often or raise identity_max_active_keys"
            )
        return self

    @field_validator("public_url")
    @classmethod
    def _public_base_url(cls, url: str | None) -> str | None:
        if url is None:
            return url
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - ValueError when not a number within 0..65535
        except ValueError as error:
            raise ValueError(f"must be an http(s)://host[:port][/path] URL, got {url!r}") from error
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
            raise ValueError(f"must be an http(s)://host[:port][/path] URL, got {url!r}")
        return url

    @field_validator("fabric_url")
    @classmethod
    def _fabric_bus(cls, url: str) -> str:
        if url != "memory" and not all(_is_nats_url(part.strip()) for part in url.split(",")):
            raise ValueError(f"must be 'memory' or nats://host:port URLs, got {url!r}")
        return url

    @property
    def key_repository(self) -> Path:
        return self.data_dir / "fernet-keys"

    @property
    def staged_key_repository(self) -> Path:
        """At the master, during a rotation: the key set every site installs before the
        master promotes it."""
        return self.data_dir / "fernet-keys.next"

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'cascade.db').resolve()}"

    @property
    def effective_public_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


def _is_nats_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError when not a number within 0..65535
    except ValueError:
        return False
    return (
        parts.scheme == "nats"
        and bool(parts.hostname)
        and port != 0
        and not parts.path.strip("/")
        and not parts.query
    )


def cron_schedule(seconds: int) -> str:
    """A six-field cron expression that fires every ``seconds`` seconds, aligned to the clock."""
    if seconds < 60 and 60 % seconds == 0:
        return f"*/{seconds} * * * * *"
    if seconds % 60 == 0 and 60 % (seconds // 60) == 0:
        return f"0 */{seconds // 60} * * * *"
    raise ValueError(f"{seconds} s does not divide a minute or, in whole minutes, an hour")


def config_file(data_dir: Path) -> Path:
    """The TOML file the settings of ``data_dir`` are read from: ``CASCADE_CONFIG``, else
    ``<data dir>/cascade.toml``."""
    token = _data_dir_override.set(data_dir)
    try:
        return _toml_path()
    finally:
        _data_dir_override.reset(token)


def load_settings(**overrides: Any) -> Settings:
    """Settings from env and TOML, with CLI overrides (None means 'not given')."""
    given = {key: value for key, value in overrides.items() if value is not None}
    token = _data_dir_override.set(Path(given["data_dir"]) if "data_dir" in given else None)
    try:
        return Settings(**given)
    except tomllib.TOMLDecodeError as error:  # name the file: the parser does not
        raise tomllib.TOMLDecodeError(f"{_toml_path()}: {error}") from error
    finally:
        _data_dir_override.reset(token)

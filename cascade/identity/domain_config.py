"""Keystone's domain-specific configuration (``/identity/v3/domains/{id}/config``): what may
be stored, storing it, and showing it as Keystone shows it.

Cascade stores a domain's configuration and acts on none of it, as Keystone does with
``domain_specific_drivers_enabled`` off (its default): every domain's users stay in Cascade's
own database, nothing reads LDAP. Tools and Tempest expect the API, and an operator sees
what was stored.

Keystone's rules, with its messages: only the ``identity`` and ``ldap`` groups and the options
Keystone allows in them (``OPTIONS``); ``ldap``'s ``password`` is sensitive, stored but never
shown (asking for it is 404, as for an option never set). An option or group not allowed is
403 (Keystone's ``InvalidDomainConfig`` is a Forbidden), as is an empty configuration. PUT
replaces the whole configuration (201 when there was none, 200 otherwise); PATCH merges,
and PATCH or DELETE of a group or option needs it to be set already (404). The defaults
(``/domains/config/{group}/{option}/default``) are Keystone's defaults, since Cascade has no
settings of its own for them. ``security_compliance`` is read (by any token) only for the
default domain: Cascade has no password regex, Keystone's default, so both options are null.

May import the database models and ``cascade.errors``; the identity store for writes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from cascade.db import Database
from cascade.db.domain_config_models import DomainConfigOption
from cascade.db.models import Domain
from cascade.errors import Forbidden, NotFound
from cascade.identity.store import IdentityStore
from cascade.identity.token_format import DEFAULT_DOMAIN_ID

Config = dict[str, dict[str, Any]]

# The options Keystone allows, with its defaults (which Cascade shows as the defaults).
OPTIONS: Config = {
    "identity": {"driver": "sql", "list_limit": None},
    "ldap": {
        "url": "ldap://localhost",
        "user": None,
        "suffix": "cn=example,cn=com",
        "query_scope": "one",
        "page_size": 0,
        "alias_dereferencing": "default",
        "debug_level": None,
        "chase_referrals": None,
        "user_tree_dn": None,
        "user_filter": None,
        "user_objectclass": "inetOrgPerson",
        "user_id_attribute": "cn",
        "user_name_attribute": "sn",
        "user_mail_attribute": "mail",
        "user_description_attribute": "description",
        "user_pass_attribute": "userPassword",
        "user_enabled_attribute": "enabled",
        "user_enabled_invert": False,
        "user_enabled_mask": 0,
        "user_enabled_default": "True",
        "user_attribute_ignore": ["default_project_id"],
        "user_default_project_id_attribute": None,
        "user_enabled_emulation": False,
        "user_enabled_emulation_dn": None,
        "user_enabled_emulation_use_group_config": False,
        "user_additional_attribute_mapping": [],
        "group_tree_dn": None,
        "group_filter": None,
        "group_objectclass": "groupOfNames",
        "group_id_attribute": "cn",
        "group_name_attribute": "ou",
        "group_members_are_ids": False,
        "group_member_attribute": "member",
        "group_desc_attribute": "description",
        "group_attribute_ignore": [],
        "group_additional_attribute_mapping": [],
        "tls_cacertfile": None,
        "tls_cacertdir": None,
        "use_tls": False,
        "tls_req_cert": "demand",
        "use_pool": True,
        "pool_size": 10,
        "pool_retry_max": 3,
        "pool_retry_delay": 0.1,
        "pool_connection_timeout": -1,
        "pool_connection_lifetime": 600,
        "use_auth_pool": True,
        "auth_pool_size": 100,
        "auth_pool_connection_lifetime": 60,
    },
}
SENSITIVE = {"identity": frozenset[str](), "ldap": frozenset({"password"})}
SECURITY_COMPLIANCE = "security_compliance"
COMPLIANCE_OPTIONS = ("password_regex", "password_regex_description")


def _invalid(reason: str) -> Forbidden:
    return Forbidden(f"Invalid domain specific configuration: {reason}.")


def _missing(domain_id: str, group: str | None, option: str | None) -> NotFound:
    if option:
        what = f"option {option} in group {group}"
    else:
        what = f"group {group}" if group else "any options"
    return NotFound(f"Could not find {what} in domain configuration for domain {domain_id}.")


def check_option(group: str | None, option: str | None) -> None:
    """403 unless ``group`` (and ``option`` in it) may be configured per domain."""
    if group is None:
        return
    if group not in OPTIONS:
        raise _invalid(f"Group {group} is not supported for domain specific configurations")
    if option is not None and option not in OPTIONS[group] and option not in SENSITIVE[group]:
        raise _invalid(
            f"Option {option} in group {group} is not supported for domain specific configurations"
        )


def _checked(config: dict[str, Any]) -> Config:
    if not config:
        raise _invalid("No options specified")
    for group, options in config.items():
        if not options or not isinstance(options, dict):
            raise _invalid(
                f"The value of group {group} specified in the config should be a dictionary "
                "of options"
            )
        for option in options:
            check_option(group, option)
    return config


def _rows(session: Session, domain_id: str) -> list[DomainConfigOption]:
    query = select(DomainConfigOption).where(DomainConfigOption.domain_id == domain_id)
    return list(session.scalars(query))


def _as_config(rows: Iterable[DomainConfigOption], with_sensitive: bool = False) -> Config:
    config: Config = {}
    for row in rows:
        if with_sensitive or not row.sensitive:
            config.setdefault(row.group_name, {})[row.option_name] = row.value
    return config


def _shown(config: Config, domain_id: str, group: str | None, option: str | None) -> Any:
    """The part of a stored configuration asked for (an option alone, without its group),
    404 if it is not set."""
    part: Any = config
    if group is not None:
        part = {group: config[group]} if config.get(group) else {}
    if option is not None:
        options = part.get(group, {})
        part = {option: options[option]} if option in options else {}
    if not part:
        raise _missing(domain_id, group, option)
    return part


def _domain(session: Session, domain_id: str) -> None:
    if session.get(Domain, domain_id) is None:
        raise NotFound(f"Could not find domain: {domain_id}.")


def shown(db: Database, domain_id: str, group: str | None, option: str | None) -> Any:
    """``GET /domains/{id}/config[/{group}[/{option}]]``: never a sensitive option."""
    check_option(group, option)
    with db.session() as session:
        _domain(session, domain_id)
        config = _as_config(_rows(session, domain_id))
    return _shown(config, domain_id, group, option)


def create(store: IdentityStore, domain_id: str, config: dict[str, Any]) -> tuple[Config, bool]:
    """``PUT /domains/{id}/config``: the domain's whole configuration becomes ``config``.
    Returns what is shown of it and whether the domain had none before."""
    wanted = _checked(config)
    with store.writing("domain configuration") as session:
        _domain(session, domain_id)
        had_any = bool(_rows(session, domain_id))
        session.execute(delete(DomainConfigOption).where(DomainConfigOption.domain_id == domain_id))
        rows = list(_new_rows(domain_id, wanted))
        session.add_all(rows)
        return _as_config(rows), not had_any


def _new_rows(domain_id: str, config: Config) -> Iterable[DomainConfigOption]:
    for group, options in config.items():
        for option, value in options.items():
            yield DomainConfigOption(
                domain_id=domain_id,
                group_name=group,
                option_name=option,
                value=value,
                sensitive=option in SENSITIVE[group],
            )


def update(
    store: IdentityStore,
    domain_id: str,
    config: dict[str, Any],
    group: str | None,
    option: str | None,
) -> Any:
    """``PATCH /domains/{id}/config[/{group}[/{option}]]``: merge ``config`` (for an option,
    ``{option: value}``) into what is stored; a group or option named must be set already
    and be all ``config`` holds. Returns the whole configuration shown."""
    check_option(group, option)
    wanted = _checked({str(group): config} if option else config)
    if group is not None and (len(wanted) != 1 or (option and len(wanted.get(group, {})) != 1)):
        only = f"option {option} in group {group}" if option else f"group {group}"
        raise _invalid(f"Trying to update {only}, so that, and only that, must be specified")
    if group is not None and (group not in wanted or (option and option not in wanted[group])):
        raise _invalid(f"The config given does not hold {option or group}, as the path names")
    with store.writing("domain configuration") as session:
        _domain(session, domain_id)
        if group is not None:
            _shown(_as_config(_rows(session, domain_id), True), domain_id, group, option)
        for row in _new_rows(domain_id, wanted):
            session.merge(row)
        session.flush()
        return _shown(_as_config(_rows(session, domain_id)), domain_id, None, None)


def delete_config(
    store: IdentityStore, domain_id: str, group: str | None, option: str | None
) -> None:
    """``DELETE /domains/{id}/config[/{group}[/{option}]]``; a group or option named must be
    set (404). Deleting a whole configuration never set is quietly done, as Keystone's."""
    check_option(group, option)
    with store.writing("domain configuration") as session:
        _domain(session, domain_id)
        if group is not None:
            _shown(_as_config(_rows(session, domain_id), True), domain_id, group, option)
        query = delete(DomainConfigOption).where(DomainConfigOption.domain_id == domain_id)
        if group is not None:
            query = query.where(DomainConfigOption.group_name == group)
        if option is not None:
            query = query.where(DomainConfigOption.option_name == option)
        session.execute(query)


def default(group: str | None, option: str | None) -> Any:
    """``GET /domains/config[/{group}[/{option}]]/default``: Keystone's defaults; a sensitive
    option has none to read (403)."""
    check_option(group, option)
    if group is not None and option is not None and option not in OPTIONS[group]:
        raise _invalid(f"Reading the default for option {option} in group {group} is not supported")
    return _shown(OPTIONS, "", group, option)


def security_compliance(domain_id: str, option: str | None) -> Any:
    """``GET /domains/{id}/config/security_compliance[/{option}]``: the password rules users
    may read, only for the default domain; Cascade has none (Keystone's default)."""
    if domain_id != DEFAULT_DOMAIN_ID:
        raise _invalid(
            "Reading security compliance information for any domain other than the default "
            "domain is not allowed or supported"
        )
    if option is not None and option not in COMPLIANCE_OPTIONS:
        raise _invalid(
            "Reading security compliance values other than password_regex and "
            "password_regex_description is not allowed"
        )
    if option is not None:
        return {option: None}
    return {SECURITY_COMPLIANCE: dict.fromkeys(COMPLIANCE_OPTIONS)}

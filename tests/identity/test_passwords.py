"""Generated passwords are safe to pass on a command line as written in the README
(`--os-password "$(cat site-a/admin-password)"`): a URL-safe token starting with '-' was
taken for an option by the openstack CLI."""

from __future__ import annotations

import string

from cascade.identity import generated_password


def test_generated_passwords_are_plain_and_distinct() -> None:
    drawn = [generated_password() for _ in range(2000)]
    assert len(set(drawn)) == len(drawn)
    for password in drawn:
        assert len(password) == 32
        assert set(password) <= set(string.hexdigits.lower())

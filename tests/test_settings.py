"""Settings come from env and one TOML file; docs/settings.md lists every one of them."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from cascade.config import Settings, load_settings

DOC = Path(__file__).resolve().parent.parent / "docs" / "settings.md"


def test_every_setting_is_documented() -> None:
    text = DOC.read_text()
    for name in Settings.model_fields:
        assert f"`CASCADE_{name.upper()}`" in text, name


def test_toml_file_in_data_dir_and_env_precedence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "cascade.toml").write_text('port = 6001\nregion = "Paris"\n')
    monkeypatch.delenv("CASCADE_PORT", raising=False)
    settings = load_settings(data_dir=tmp_path)
    assert settings.port == 6001
    assert settings.region == "Paris"
    monkeypatch.setenv("CASCADE_PORT", "6002")
    assert load_settings(data_dir=tmp_path).port == 6002
    assert load_settings(data_dir=tmp_path, port=6003).port == 6003


def test_unknown_toml_key_is_refused(tmp_path: Path) -> None:
    (tmp_path / "cascade.toml").write_text("prot = 1\n")
    with pytest.raises(ValidationError, match="prot"):
        load_settings(data_dir=tmp_path)

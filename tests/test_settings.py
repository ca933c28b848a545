"""Settings: the repository's config documents every key; environment overrides; unknown or
ill-typed keys and secrets in files are named errors that stop the process (exit 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from service.settings import SECRETS, ConfigError, Section, load_settings
from tests.factories import ROOT


def test_repository_config_is_valid_and_documents_every_key() -> None:
    settings = load_settings(ROOT / "config.toml", environ={})
    assert settings.http.port == 8000
    text = (ROOT / "config.toml").read_text()
    for section in settings.__struct_fields__:
        assert f"[{section}]" in text
        struct = getattr(settings, section)
        for key in struct.__struct_fields__:
            if isinstance(getattr(struct, key), Section):  # a table of its own: [models.limits]
                assert f"[{section}.{key}]" in text
                for inner in getattr(struct, key).__struct_fields__:
                    assert f"\n{inner} = " in text, f"{section}.{key}.{inner} is not documented"
            elif (section, key) in SECRETS:
                assert f"SERVICE__{section.upper()}__{key.upper()}" in text
            else:
                assert f"\n{key} = " in text, f"{section}.{key} is not documented in config.toml"


def test_environment_overrides_with_type_coercion(tmp_path: Path) -> None:
    settings = load_settings(
        tmp_path / "missing.toml",
        environ={
            "SERVICE__HTTP__BIND": "0.0.0.0:9000",
            "SERVICE__DATABASE__POOL_MAX": "25",
            "SERVICE__HTTP__ACCESS_LOG": "true",
            "SERVICE__AUTH__ALGORITHMS": '["ES256"]',
            "SERVICE__ARTIFACTS__HMAC_KEY": "s3cret",
        },
    )
    assert (settings.http.host, settings.http.port) == ("0.0.0.0", 9000)
    assert settings.database.pool_max == 25
    assert settings.http.access_log is True
    assert settings.auth.algorithms == ["ES256"]
    assert settings.artifacts.hmac_key == "s3cret"


def test_unknown_key_names_it(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[http]\nbindd = '1.2.3.4:5'\n")
    with pytest.raises(ConfigError, match=r"`http\.bindd`"):
        load_settings(path, environ={})


def test_unknown_section_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="`htp`"):
        load_settings(tmp_path / "none.toml", environ={"SERVICE__HTP__BIND": "x:1"})


def test_ill_typed_value_names_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"`database\.pool_max`"):
        load_settings(tmp_path / "none.toml", environ={"SERVICE__DATABASE__POOL_MAX": "many"})
    with pytest.raises(ConfigError, match=r"`http\.bind`"):
        load_settings(tmp_path / "none.toml", environ={"SERVICE__HTTP__BIND": "no-port"})


def test_secrets_are_refused_in_files(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[artifacts]\nhmac_key = 'oops'\n")
    with pytest.raises(ConfigError, match="SERVICE__ARTIFACTS__HMAC_KEY"):
        load_settings(path, environ={})


def test_service_config_names_another_file(tmp_path: Path) -> None:
    path = tmp_path / "other.toml"
    path.write_text("[logging]\nlevel = 'DEBUG'\n")
    assert load_settings(environ={"SERVICE_CONFIG": str(path)}).logging.level == "DEBUG"
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(environ={"SERVICE_CONFIG": str(tmp_path / "nope.toml")})


def test_process_exits_2_on_a_bad_key(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "service", "migrate"],
        cwd=ROOT,
        env={"SERVICE__HTTP__TYPO": "1", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "http.typo" in result.stderr


def test_api_and_worker_refuse_to_start_without_the_artifact_key() -> None:
    for command in ("api", "worker"):
        result = subprocess.run(
            [sys.executable, "-m", "service", command],
            cwd=ROOT,
            env={"SERVICE__AUTH__MODE": "disabled", "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2, result.stderr
        assert "SERVICE__ARTIFACTS__HMAC_KEY" in result.stderr

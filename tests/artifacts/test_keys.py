"""The artifact keyring is checked before a process serves or signs anything: a missing, short or
conflicting key stops it with exit status 2 naming the variable, and older keys only verify."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from service.artifacts import signing
from service.artifacts.keys import forget_key_variables
from service.settings import ConfigError, load_settings
from tests.factories import HMAC_KEY, ROOT, artifact_keys

OLD_KEY = "an-older-artifact-key-0123456789abcdef"
SHORT = "x" * 31  # one byte under the minimum


def test_the_current_key_signs_and_every_configured_key_verifies() -> None:
    keys = artifact_keys(key_id="k2", hmac_keys={"k1": OLD_KEY})
    assert keys.current_id == "k2"
    assert keys.secrets == {"k1": OLD_KEY.encode(), "k2": HMAC_KEY.encode()}
    place = signing.Place("default", 7, 3)
    data = b"artifact bytes"
    seal = keys.seal(signing.sha256(data), place)
    assert seal.key_id == "k2"
    keys.verify(data, place, seal)


def test_all_keys_can_come_from_the_mapping() -> None:
    keys = artifact_keys(hmac_key="", key_id="k1", hmac_keys={"k1": OLD_KEY})
    assert keys.secrets == {"k1": OLD_KEY.encode()}


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"hmac_key": SHORT}, "SERVICE__ARTIFACTS__HMAC_KEY is 31 bytes"),
        ({"hmac_keys": {"old": SHORT}}, "SERVICE__ARTIFACTS__HMAC_KEYS.old is 31 bytes"),
        ({"hmac_key": ""}, "set SERVICE__ARTIFACTS__HMAC_KEY"),
        ({"key_id": "k2", "hmac_key": "", "hmac_keys": {"k1": OLD_KEY}}, "key id 'k2'"),
        ({"hmac_keys": {"k1": OLD_KEY}}, "two different secrets"),
    ],
    ids=["short current key", "short old key", "no key", "current id unknown", "conflict"],
)
def test_an_unusable_key_configuration_is_refused_naming_it(
    overrides: dict[str, object], named: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(named)):
        artifact_keys(**overrides)


def test_a_32_byte_key_is_long_enough() -> None:
    assert artifact_keys(hmac_key="y" * 32).secrets["k1"] == b"y" * 32


def test_old_keys_are_secrets_that_never_live_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f"[artifacts]\nhmac_keys = {{k1 = '{OLD_KEY}'}}\n")
    with pytest.raises(ConfigError, match="SERVICE__ARTIFACTS__HMAC_KEYS"):
        load_settings(path, environ={})


def test_old_keys_are_read_from_the_environment_as_json() -> None:
    settings = load_settings(
        Path("/nonexistent"),
        environ={
            "SERVICE__ARTIFACTS__HMAC_KEY": HMAC_KEY,
            "SERVICE__ARTIFACTS__KEY_ID": "k2",
            "SERVICE__ARTIFACTS__HMAC_KEYS": f'{{"k1": "{OLD_KEY}"}}',
        },
    )
    assert settings.artifacts.hmac_keys == {"k1": OLD_KEY}
    assert settings.artifacts.key_id == "k2"


def test_a_key_id_is_a_short_plain_name() -> None:
    with pytest.raises(ConfigError, match="artifacts.key_id"):
        artifact_keys(key_id="k 1; drop")


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("SERVICE__ARTIFACTS__HMAC_KEY", SHORT, "SERVICE__ARTIFACTS__HMAC_KEY is 31 bytes"),
        ("SERVICE__ARTIFACTS__HMAC_KEYS", f'{{"old": "{SHORT}"}}', "HMAC_KEYS.old is 31 bytes"),
    ],
)
@pytest.mark.parametrize("command", ["api", "worker"])
def test_api_and_worker_refuse_to_start_with_a_short_key(
    command: str, variable: str, value: str, named: str
) -> None:
    env = {
        "SERVICE__AUTH__MODE": "disabled",
        "SERVICE__ARTIFACTS__HMAC_KEY": HMAC_KEY,
        "PATH": "/usr/bin:/bin",
    }
    env[variable] = value
    result = subprocess.run(
        [sys.executable, "-m", "service", command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert named in result.stderr


def test_processes_started_after_the_keys_are_forgotten_do_not_see_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SERVICE__ARTIFACTS__HMAC_KEY", HMAC_KEY)
    monkeypatch.setenv("SERVICE__ARTIFACTS__HMAC_KEYS", f'{{"k0": "{OLD_KEY}"}}')
    monkeypatch.setenv("SERVICE__ARTIFACTS__KEY_ID", "k1")
    show = "import os; print(sorted(k for k in os.environ if k.startswith('SERVICE__ARTIFACTS')))"

    def child_sees() -> str:
        return subprocess.run(
            [sys.executable, "-c", show], capture_output=True, text=True, check=True, timeout=60
        ).stdout.strip()

    assert "SERVICE__ARTIFACTS__HMAC_KEY'" in child_sees()
    forget_key_variables(os.environ)
    assert child_sees() == "['SERVICE__ARTIFACTS__KEY_ID']"

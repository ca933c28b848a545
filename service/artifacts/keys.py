"""The artifact keys a process holds: the current one signs, every configured one verifies.

Built once at start-up from `[artifacts]`, so a missing or short key stops the api or the worker
(exit status 2) before it signs or refuses anything. Rotation: move the current secret into
`hmac_keys` under its id, then set a new `key_id` and `hmac_key`; versions keep naming the key
that signed them, and a key dropped from the configuration no longer verifies them.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass

from service.artifacts import signing
from service.settings import SECRETS, ArtifactSettings, ConfigError

# HMAC-SHA256 keys shorter than its output weaken it; random 32-byte keys are cheap.
MIN_KEY_BYTES = 32
_CURRENT_VAR = SECRETS[("artifacts", "hmac_key")]
_OLD_VAR = SECRETS[("artifacts", "hmac_keys")]


@dataclass(frozen=True)
class Keyring:
    current_id: str
    secrets: Mapping[str, bytes]

    @classmethod
    def from_settings(cls, settings: ArtifactSettings) -> Keyring:
        """ConfigError naming the key when one is missing, conflicting or short."""
        named = {
            key_id: (secret, f"{_OLD_VAR}.{key_id}")
            for key_id, secret in settings.hmac_keys.items()
        }
        if settings.hmac_key:
            earlier = named.get(settings.key_id)
            if earlier is not None and earlier[0] != settings.hmac_key:
                raise ConfigError(
                    f"{_CURRENT_VAR} and {earlier[1]} give key '{settings.key_id}'"
                    " two different secrets"
                )
            named[settings.key_id] = (settings.hmac_key, _CURRENT_VAR)
        if settings.key_id not in named:
            raise ConfigError(
                f"set {_CURRENT_VAR}: model artifacts are signed and verified with it"
                f" (key id '{settings.key_id}')"
            )
        for secret, where in named.values():
            size = len(secret.encode())
            if size < MIN_KEY_BYTES:
                raise ConfigError(
                    f"{where} is {size} bytes long; artifact keys need at least {MIN_KEY_BYTES}"
                )
        return cls(settings.key_id, {key_id: s.encode() for key_id, (s, _) in named.items()})

    def seal(self, digest: str, place: signing.Place) -> signing.Seal:
        return signing.seal(digest, place, self.current_id, self.secrets[self.current_id])

    def verify(self, data: bytes, place: signing.Place, stored: signing.Seal) -> None:
        signing.verify(data, place, stored, self.secrets)


def forget_key_variables(environ: MutableMapping[str, str]) -> None:
    """Removes the key variables once the settings hold them, so that processes started later
    (the fit children, which run estimator code on clients' settings) never see a key."""
    for variable in (_CURRENT_VAR, _OLD_VAR):
        environ.pop(variable, None)

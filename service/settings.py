"""Typed configuration: `config.toml`, overridden by `SERVICE__<SECTION>__<KEY>` variables.

Every section is a msgspec Struct that forbids unknown fields, so a typo stops the process at
start instead of silently falling back to a default. Secrets are read from the environment only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from service.domain.actors import TENANT_PATTERN
from service.schemas.errors import split_validation_error

ENV_PREFIX = "SERVICE__"
CONFIG_ENV = "SERVICE_CONFIG"
DEFAULT_CONFIG = Path("config.toml")

# Settings that must never live in a file: `(section, key)` → environment variable.
SECRETS: dict[tuple[str, str], str] = {
    ("artifacts", "hmac_key"): "SERVICE__ARTIFACTS__HMAC_KEY",
    ("artifacts", "hmac_keys"): "SERVICE__ARTIFACTS__HMAC_KEYS",
    ("auth", "introspection_client_secret"): "SERVICE__AUTH__INTROSPECTION_CLIENT_SECRET",
    ("webhooks", "secret_key"): "SERVICE__WEBHOOKS__SECRET_KEY",
}

Positive = Annotated[int, msgspec.Meta(gt=0)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]


class Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every config section: unknown keys are errors, fields are keyword-only."""


class HttpSettings(Section):
    bind: Annotated[str, msgspec.Meta(pattern=r"^[^:\s]*:\d{1,5}$")] = "127.0.0.1:8000"
    max_body_bytes: Positive = 32 * 1024 * 1024
    # JSON becomes Python objects (~30x its size), CSV streams: JSON gets a far smaller limit.
    max_json_bytes: Positive = 4 * 1024 * 1024
    graceful_timeout: PositiveFloat = 10.0
    keep_alive_timeout: PositiveFloat = 5.0
    read_timeout: PositiveFloat = 30.0
    spool_dir: str = ""
    send_timeout: PositiveFloat = 30.0
    export_timeout: PositiveFloat = 900.0
    predict_timeout: PositiveFloat = 30.0
    access_log: bool = False

    @property
    def host(self) -> str:
        return self.bind.rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.bind.rsplit(":", 1)[1])


class DatabaseSettings(Section):
    url: str = "postgresql://postgres@127.0.0.1:5432/models"
    pool_max: Positive = 10
    connect_timeout: PositiveFloat = 2.0
    statement_timeout_ms: Positive = 30_000
    lock_timeout_ms: Positive = 5_000
    # The role the service's statements run as (`SET ROLE` on each new connection): never a
    # superuser, which would bypass row-level security. Empty when the login role is already it.
    role: str = "models_service"


class RedisSettings(Section):
    url: str = "redis://127.0.0.1:6379/0"
    queue_name: str = "models:queue"
    connect_timeout: PositiveFloat = 1.0


class AuthSettings(Section):
    mode: Literal["jwt", "introspection", "disabled"] = "jwt"
    issuer: str = ""
    audience: str = ""
    jwks_url: str = ""
    jwks_file: str = ""
    algorithms: list[str] = msgspec.field(default_factory=lambda: ["RS256", "ES256", "EdDSA"])
    leeway_seconds: Annotated[int, msgspec.Meta(ge=0)] = 30
    jwks_cache_seconds: Positive = 300
    jwks_min_refresh_seconds: Annotated[int, msgspec.Meta(ge=0)] = 30
    http_timeout: PositiveFloat = 3.0
    introspection_url: str = ""
    introspection_client_id: str = ""
    introspection_client_secret: str = ""
    token_cache_size: Positive = 10_000
    rejected_token_cache_seconds: Annotated[float, msgspec.Meta(ge=0)] = 5.0
    # The claim that names the caller's tenant; a token without it belongs to `default_tenant`,
    # or is refused with `require_tenant`.
    tenant_claim: Annotated[str, msgspec.Meta(min_length=1)] = "tenant"
    default_tenant: Annotated[str, msgspec.Meta(pattern=TENANT_PATTERN)] = "default"
    require_tenant: bool = False
    # Development key pair used by `python -m service token` and `make run`.
    dev_key_file: str = "var/dev-jwk.json"


class WorkerSettings(Section):
    max_jobs: Positive = 2
    poll_seconds: PositiveFloat = 0.05
    max_tries: Positive = 3
    job_timeout: Positive = 3600
    heartbeat_seconds: PositiveFloat = 2.0
    stale_after_seconds: PositiveFloat = 15.0
    sweep_seconds: PositiveFloat = 5.0
    requeue_after_seconds: PositiveFloat = 5.0
    metrics_port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 9101
    metrics_address: Annotated[str, msgspec.Meta(min_length=1)] = "127.0.0.1"
    max_train_rows: Positive = 5_000_000
    eval_fraction: Annotated[float, msgspec.Meta(ge=0, lt=1)] = 0.2
    eval_min_rows: Positive = 20
    eval_max_rows: Annotated[int, msgspec.Meta(ge=0)] = 100_000
    shutdown_wait_seconds: Annotated[float, msgspec.Meta(ge=0)] = 20.0
    # Limits of each fit's child process (0: none); see README "Limits of a fit".
    fit_memory_bytes: Annotated[int, msgspec.Meta(ge=0)] = 4 * 1024**3
    fit_cpu_seconds: Annotated[int, msgspec.Meta(ge=0)] = 3600
    fit_threads: Positive = 1
    fit_processes: Annotated[int, msgspec.Meta(ge=0)] = 0


KeyId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]


class ArtifactSettings(Section):
    """The current key signs new artifacts under `key_id`; older keys in `hmac_keys` (id to
    secret) still verify what they signed. Both secrets come from the environment only."""

    hmac_key: str = ""
    key_id: KeyId = "k1"
    hmac_keys: dict[KeyId, str] = msgspec.field(default_factory=dict)


class ModelLimits(Section):
    """Largest values of the hyperparameters that size a fit's memory, for every model type
    that has them; shown as `maximum` in the types' JSON Schemas and checked on model create."""

    n_estimators: Positive = 2000
    n_components: Positive = 10_000
    n_clusters: Positive = 10_000
    n_bins: Positive = 1000
    degree: Positive = 5
    max_iter: Positive = 1_000_000
    hidden_layer_size: Positive = 4096
    hidden_layers: Positive = 16


class ModelSettings(Section):
    cache_bytes: Positive = 512 * 1024 * 1024
    plugins: list[str] = msgspec.field(default_factory=list)
    predict_threads: Positive = 2
    predict_queue: Positive = 256
    batch_max_rows: Positive = 256
    batch_max_wait_ms: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    batch_max_rows_by_type: dict[str, Positive] = msgspec.field(default_factory=dict)
    shadow_threads: Positive = 1
    shadow_queue: Positive = 256
    shadow_batch_wait_ms: Annotated[float, msgspec.Meta(ge=0, le=1000)] = 20.0
    limits: ModelLimits = msgspec.field(default_factory=ModelLimits)


class LimitsSettings(Section):
    """Fair use: a request rate per caller (tenant + `sub`), active jobs per tenant, rows per
    online prediction."""

    rate_per_second: Annotated[float, msgspec.Meta(ge=0)] = 0.0  # 0: no rate limit
    burst: Positive = 20
    # Longest wait for Redis's answer before a request goes on unchecked (fail open).
    rate_check_timeout_ms: Positive = 250
    active_jobs_per_tenant: Positive = 16
    max_predict_rows: Positive = 10_000


class WebhookSettings(Section):
    """Delivery of events to receivers (see README, "Events")."""

    # Encrypts the webhooks' signing secrets at rest (environment only). Empty: derived from
    # `artifacts.hmac_key` (HKDF-SHA256), so one secret serves both.
    secret_key: str = ""
    # Receivers on loopback, private, link-local or metadata addresses (tests, a laptop).
    allow_private: bool = False
    retry_hours: PositiveFloat = 24.0
    attempt_timeout_seconds: PositiveFloat = 10.0
    # Attempts in flight at once to one webhook, and over all webhooks, per worker.
    max_in_flight_per_webhook: Positive = 4
    max_in_flight: Positive = 64
    # First retry after about this long (with jitter), doubling up to `max_backoff_seconds`.
    backoff_seconds: PositiveFloat = 5.0
    max_backoff_seconds: PositiveFloat = 3600.0
    # A delivery claimed by a worker that died is due again after this long.
    lease_seconds: PositiveFloat = 60.0
    # Due deliveries are looked for this often, besides when PostgreSQL says one is new.
    poll_seconds: PositiveFloat = 5.0
    max_webhooks_per_tenant: Positive = 100


class StreamSettings(Section):
    """Server-Sent Events: `GET /events` and `GET /jobs/{id}/events`."""

    heartbeat_seconds: PositiveFloat = 15.0
    max_streams_per_caller: Positive = 10
    # Events sent from the outbox when a stream resumes (`Last-Event-ID`), at most, per read.
    replay_batch: Positive = 500


class MetricsSettings(Section):
    """What /metrics shows beyond the request counters (see README, "Metrics")."""

    # (tenant, model) pairs that get labels of their own in the api's per-model metrics, per
    # process, first seen first; the rest share `tenant="_other", model="_other"`.
    per_model_limit: Annotated[int, msgspec.Meta(ge=0, le=10_000)] = 50
    # Seconds between a worker's reads of the job backlog (PostgreSQL and Redis) for its
    # metrics; a scrape reads the last figures and never waits for either.
    job_stats_seconds: PositiveFloat = 15.0


class LoggingSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "text"] = "json"


class TracingSettings(Section):
    """OpenTelemetry traces, exported over OTLP/HTTP (see README, "Tracing")."""

    enabled: bool = False
    # Empty: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces,
    # else http://localhost:4318/v1/traces (the library's own rules).
    otlp_endpoint: str = ""
    # Share of traces begun here that are kept; a caller's `traceparent` decides for its own.
    sample_ratio: Annotated[float, msgspec.Meta(ge=0, le=1)] = 1.0
    service_name: Annotated[str, msgspec.Meta(min_length=1)] = "models-service"


class Settings(Section):
    http: HttpSettings = msgspec.field(default_factory=HttpSettings)
    database: DatabaseSettings = msgspec.field(default_factory=DatabaseSettings)
    redis: RedisSettings = msgspec.field(default_factory=RedisSettings)
    auth: AuthSettings = msgspec.field(default_factory=AuthSettings)
    worker: WorkerSettings = msgspec.field(default_factory=WorkerSettings)
    artifacts: ArtifactSettings = msgspec.field(default_factory=ArtifactSettings)
    models: ModelSettings = msgspec.field(default_factory=ModelSettings)
    limits: LimitsSettings = msgspec.field(default_factory=LimitsSettings)
    webhooks: WebhookSettings = msgspec.field(default_factory=WebhookSettings)
    streams: StreamSettings = msgspec.field(default_factory=StreamSettings)
    metrics: MetricsSettings = msgspec.field(default_factory=MetricsSettings)
    logging: LoggingSettings = msgspec.field(default_factory=LoggingSettings)
    tracing: TracingSettings = msgspec.field(default_factory=TracingSettings)


class ConfigError(Exception):
    """The configuration cannot be used; the message names the offending key."""


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read the TOML file, apply environment overrides and validate the result."""
    env = os.environ if environ is None else environ
    path = path or Path(env.get(CONFIG_ENV, "") or DEFAULT_CONFIG)
    raw: dict[str, Any] = {}
    if path.exists():
        try:
            raw = msgspec.toml.decode(path.read_bytes())
        except msgspec.DecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
    elif CONFIG_ENV in env:
        raise ConfigError(f"{CONFIG_ENV}={path} does not exist")
    for (section, key), var in SECRETS.items():
        if key in raw.get(section, {}):
            raise ConfigError(f"{section}.{key} is a secret: set {var} in the environment instead")
    _apply_env(raw, env)
    return convert_settings(raw)


def convert_settings(raw: dict[str, Any]) -> Settings:
    try:
        return msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(_describe(exc)) from exc


def _apply_env(raw: dict[str, Any], env: Mapping[str, str]) -> None:
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        parts = name[len(ENV_PREFIX) :].lower().split("__")
        if len(parts) != 2 or not all(parts):
            raise ConfigError(f"{name}: expected {ENV_PREFIX}<SECTION>__<KEY>")
        section, key = parts
        target = raw.setdefault(section, {})
        if not isinstance(target, dict):
            raise ConfigError(f"{name}: [{section}] is not a section")
        target[key] = _env_value(value)


def _env_value(value: str) -> Any:
    # Lists and tables (`auth.algorithms`, `models.batch_max_rows_by_type`) are JSON there.
    if value.startswith(("[", "{")):
        try:
            return msgspec.json.decode(value)
        except msgspec.DecodeError:
            return value
    return value


def _describe(exc: msgspec.ValidationError) -> str:
    """Turn msgspec's `... - at `$.http`` into a message that names the dotted key."""
    text, where = split_validation_error(exc)
    location = where.removeprefix("$").lstrip(".").replace("[", ".").replace("]", "")
    if text.startswith("Object contains unknown field"):
        field = text.split("`")[1]
        key = f"{location}.{field}" if location else field
        return f"unknown setting `{key}`"
    return f"invalid setting `{location}`: {text}" if location else text

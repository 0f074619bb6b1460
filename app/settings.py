"""Typed settings for Baton, read from the environment (prefix ``BATON_``) and ``.env``."""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the service; nested values use ``__`` (``BATON_DB__POOL_SIZE``)."""

    model_config = SettingsConfigDict(
        env_prefix="BATON_", env_file=".env", extra="ignore", env_nested_delimiter="__"
    )

    environment: str = Field("development", description="development | production | test")
    # The plugin flags every non-literal alias, though the field has a default and is read from
    # the environment (DATABASE_URL or BATON_DATABASE_URL), never passed by name.
    database_url: SecretStr | None = Field(  # type: ignore[pydantic-alias]
        None,
        validation_alias=AliasChoices("DATABASE_URL", "BATON_DATABASE_URL"),
        description="Postgres URL; when unset an embedded Postgres is started in data_dir.",
    )
    data_dir: Path = Field(Path(".baton"), description="Where the embedded Postgres keeps data.")
    db_pool_size: int = Field(10, ge=1, description="Connections kept by a process's pool.")
    db_max_overflow: int = Field(
        10, ge=0, description="Connections a process's pool may open beyond its size under load."
    )
    db_read_pool_size: int = Field(
        10, ge=1, description="Connections of the read-only pool behind the hottest GET routes."
    )
    db_statement_timeout_ms: int = Field(30_000, description="Per-statement timeout.")
    db_statement_cache: bool = Field(
        True,
        description="asyncpg's prepared-statement caches; false behind PgBouncer in transaction "
        "mode, where consecutive statements may reach different server connections.",
    )
    engine_budget_s: float = Field(
        30,
        gt=0,
        le=3600,
        description="Longest a plan or rebalance may compute before it is abandoned (503).",
    )
    default_page_size: int = 50
    log_level: str = "INFO"
    bootstrap_admin_key: SecretStr | None = Field(
        None,
        description="An API key (`bt_<prefix>_<secret>`) ensured as an admin key at start-up, "
        "so a deployment can be scripted; generate one with `baton apikey generate`.",
    )
    rate_limit: str = Field(
        "1200/minute",
        description="Requests allowed per API key and process, in `limits` notation "
        "(`100/second`, `1200/minute`); empty disables rate limiting.",
    )
    auth_failure_limit: str = Field(
        "30/minute",
        description="Failed authentications allowed per client address (bad API keys) and per "
        "webhook source and sender (bad signatures), per process, before 429; empty disables it.",
    )
    max_body_bytes: int = Field(1_048_576, ge=0, description="Largest request body accepted.")
    cors_origins: str = Field(
        "",
        description="Origins whose browser pages may call the API (CORS), comma-separated "
        "(`https://console.example.com,https://crm.example.com`); empty: no cross-origin access.",
    )
    require_if_match: bool = Field(
        False, description="PATCH/DELETE of tiers, managers, customers must send If-Match (428)."
    )
    idempotency_ttl_hours: int = Field(24, ge=1, description="How long idempotent responses stay.")
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", description="auto: JSON lines in production, readable lines otherwise."
    )
    run_worker: bool = Field(
        False, description="Run the background worker inside the API process (baton serve)."
    )
    auth_cache_seconds: float = Field(
        10, ge=0, le=3600, description="How long a verified API key is trusted without a lookup."
    )
    worker_heartbeat_timeout_s: float = Field(
        30, gt=0, le=3600, description="A job whose worker stops beating this long is retried."
    )
    worker_tick_s: float = Field(
        2,
        gt=0,
        le=60,
        description="How often the worker runs its short upkeep (folding the workload journal).",
    )
    handover_refusal_window_hours: int = Field(
        24, ge=0, description="How long after a handover a customer may refuse the new owner."
    )
    handover_max_transfers: int = Field(
        2, ge=1, description="Handover transfers allowed per customer within the transfer window."
    )
    handover_transfer_window_days: int = Field(
        90, ge=1, description="The window over which handover transfers are counted."
    )
    webhooks_allow_private_targets: bool = Field(
        False,
        description="Let webhook subscriptions target loopback/private addresses (tests, dev).",
    )
    webhooks_delivery_timeout_s: float = Field(
        12.0, gt=0, le=60, description="Timeout of one outbound webhook request."
    )
    webhooks_secret_grace_hours: int = Field(
        24, ge=0, le=720, description="How long a rotated secret still signs and verifies."
    )
    webhooks_concurrency: int = Field(
        32, ge=1, le=512, description="Outbound requests one worker sends at once."
    )
    smtp_url: SecretStr | None = Field(
        None,
        description="Also e-mail handover notifications: `smtp://user:password@host:587` "
        "(STARTTLS when offered) or `smtps://…:465`; unset: webhooks only.",
    )
    smtp_from: str = Field("Baton <baton@localhost>", description="The From of those e-mails.")
    webhooks_retention_days: int = Field(
        30,
        ge=1,
        description="Days webhook logs are kept: finished outbound events with their "
        "deliveries, processed inbound events (failed ones stay until retried).",
    )

    @property
    def pgdata_dir(self) -> Path:
        """The embedded Postgres cluster directory inside ``data_dir``."""
        return self.data_dir / "pgdata"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings; tests call ``get_settings.cache_clear()`` after changing env."""
    return Settings()

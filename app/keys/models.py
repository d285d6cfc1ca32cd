"""The typed shapes of managed keys: what an operator sends, what is answered, what a lookup yields."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.errors import AuthenticationError

MICROS_PER_USD = 1_000_000
LATEST_EXPIRY = 253_402_300_799
"""9999-12-31T23:59:59Z: the last instant every database and ``datetime`` can hold."""


def usd_to_micros(usd: float) -> int:
    return round(usd * MICROS_PER_USD)


def micros_to_usd(micros: int) -> float:
    return round(micros / MICROS_PER_USD, 6)


class NewKey(BaseModel):
    """``POST /admin/keys`` and ``pixelgate keys create``: what a new key may carry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200, description="who or what the key is for")
    budget_usd: float | None = Field(default=None, ge=0, le=1e9, description="spend limit in USD; null: none")
    models: tuple[str, ...] | None = Field(default=None, description="models the key may use; null: all")
    rpm: int | None = Field(
        default=None, ge=1, le=1_000_000_000, description="requests per minute for this key; null: the default"
    )
    expires_at: datetime | int | None = Field(default=None, description="ISO 8601 time or Unix seconds; null: never")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.strip() or not value.isprintable():
            raise ValueError("name must be printable text")
        return value

    @field_validator("models")
    @classmethod
    def _models(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        cleaned = tuple(dict.fromkeys(model.strip() for model in value))
        if not cleaned or any(not model for model in cleaned):
            raise ValueError("models must name at least one model (leave it out to allow all)")
        if any(len(model) > 200 or not model.isprintable() for model in cleaned):
            raise ValueError("each model must be a model id (printable, at most 200 characters)")
        return cleaned

    @field_validator("expires_at")
    @classmethod
    def _expiry(cls, value: datetime | int | None) -> datetime | int | None:
        if value is None:
            return None
        seconds = expiry_seconds(value)
        if seconds <= datetime.now(UTC).timestamp():
            raise ValueError("expires_at is in the past")
        if seconds > LATEST_EXPIRY:
            raise ValueError("expires_at is after the year 9999")
        return value

    def expires_at_seconds(self) -> int | None:
        return None if self.expires_at is None else expiry_seconds(self.expires_at)


def expiry_seconds(value: datetime | int) -> int:
    """Unix seconds of an expiry given as Unix seconds or a datetime (naive means UTC)."""
    if isinstance(value, int):
        return value
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return int(aware.timestamp())


class KeyRecord(BaseModel):
    """A managed key as the admin API answers it: never its secret."""

    model_config = ConfigDict(frozen=True)

    id: str
    object: Literal["api_key"] = "api_key"
    name: str
    prefix: str = Field(description="the secret's first characters, for telling keys apart")
    created: int
    budget_usd: float | None
    spent_usd: float
    models: tuple[str, ...] | None
    rpm: int | None
    expires_at: int | None
    revoked: bool
    revoked_at: int | None

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at


class CreatedKey(KeyRecord):
    """The answer to creating a key: the record and, this once, its secret."""

    key: str


@dataclass(frozen=True)
class RefusedKey:
    """A presented secret that belongs to a key which may no longer be used."""

    key_id: str
    reason: Literal["revoked", "expired"]

    def error(self) -> AuthenticationError:
        """The 401 to raise for it (a clear message and code, so the client knows not to retry)."""
        return AuthenticationError(f"This API key has been {self.reason}.", code=f"key_{self.reason}")

"""Managed API keys: made by the admin API or ``pixelgate keys``, stored hashed, resolved per request."""

from app.keys.models import CreatedKey, KeyRecord, NewKey, RefusedKey
from app.keys.store import KeyStore

__all__ = ["CreatedKey", "KeyRecord", "KeyStore", "NewKey", "RefusedKey"]

"""The usage ledger (one row per image request) and the usage totals read from it."""

from app.usage.ledger import Ledger, LedgerConfig, LedgerEntry
from app.usage.recording import UsageMiddleware, UsageNote, note_model, note_result, usage_note
from app.usage.report import GroupBy, UsageRange, UsageRow, parse_range, usage_totals

__all__ = [
    "GroupBy",
    "Ledger",
    "LedgerConfig",
    "LedgerEntry",
    "UsageMiddleware",
    "UsageNote",
    "UsageRange",
    "UsageRow",
    "note_model",
    "note_result",
    "parse_range",
    "usage_note",
    "usage_totals",
]

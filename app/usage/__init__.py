"""The usage ledger (one row per image request) and the usage totals read from it.

The request-path side (:mod:`app.usage.recording`) is imported from its module: the operations
commands load only the ledger and the report.
"""

from app.usage.ledger import Ledger, LedgerConfig, LedgerEntry
from app.usage.report import GroupBy, Grouping, UsageRange, UsageRow, parse_range, usage_totals

__all__ = [
    "GroupBy",
    "Grouping",
    "Ledger",
    "LedgerConfig",
    "LedgerEntry",
    "UsageRange",
    "UsageRow",
    "parse_range",
    "usage_totals",
]

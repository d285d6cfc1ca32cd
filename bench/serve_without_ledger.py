"""``pixelgate serve`` with the usage ledger switched off: the baseline of ``python -m bench.run --ledger-cost``.

The one difference from the real server is :meth:`app.usage.Ledger.record`, made a no-op before the
app is built: no row is buffered, so the writer never runs. Everything else (the request log, the
metrics, the per-request record the ledger would get) is the same code, so the difference between
the two servers is what the ledger costs. Bench-only: pixelgate itself has no way to turn the ledger off.
"""

from __future__ import annotations

import sys

from app.cli import main
from app.usage import Ledger, LedgerEntry


def _discard(self: Ledger, entry: LedgerEntry) -> None:
    return None


if __name__ == "__main__":
    Ledger.record = _discard  # type: ignore[method-assign]
    sys.exit(main(sys.argv[1:]))

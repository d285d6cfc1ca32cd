"""The collector set-up of ``pixelgate serve``: start-up objects frozen out of collections, a larger
young generation, and cyclic garbage made afterwards still collected.

Run in a child interpreter: freezing is process-wide and the test process keeps the defaults.
"""

from __future__ import annotations

import json
import subprocess
import sys

from app.collector import YOUNG_THRESHOLD

CHILD = """
import gc, json, weakref
import app.main  # the gateway's modules: what start-up leaves alive
before = gc.get_threshold()
from app.collector import tune_collector
tune_collector()
frozen = gc.get_freeze_count()

class Node:
    pass

# A reference cycle made after start-up: garbage only the collector can free.
node = Node(); node.self = node
alive = weakref.ref(node)
del node
gc.collect()
print(json.dumps({"before": before, "after": gc.get_threshold(), "frozen": frozen, "cycle_freed": alive() is None}))
"""


def test_startup_objects_are_frozen_and_later_cycles_still_collected() -> None:
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120, check=True)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["before"][0] < YOUNG_THRESHOLD
    assert report["after"] == [YOUNG_THRESHOLD, report["before"][1], report["before"][2]]
    assert report["frozen"] > 50_000  # the imported gateway: modules, routes, schemas
    assert report["cycle_freed"] is True

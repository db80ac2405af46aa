"""clinic.wsgi settles the collector (clinic/memory.py): what startup loaded is frozen out of
the cyclic collector, generation 0 is collected after GC_GEN0_THRESHOLD allocations, and a
cycle made after startup is still collected. Each case imports clinic.wsgi in a fresh
interpreter, as a gunicorn worker does."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import gc, json, weakref
import clinic.wsgi

class Node:
    pass

a, b = Node(), Node()
a.other, b.other = b, a
alive = weakref.ref(a)
del a, b
gc.collect()
print(json.dumps({
    "frozen": gc.get_freeze_count(),
    "threshold": gc.get_threshold(),
    "cycle_collected": alive() is None,
    "views_loaded": "scheduling.api.views" in __import__("sys").modules,
}))
"""


def probe(**env: str) -> dict:
    completed = subprocess.run(  # noqa: S603 (a fixed command line)
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "clinic.settings_test", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def settled() -> dict:
    return probe()


def test_startup_is_frozen_out_of_the_collector(settled):
    # Django, DRF and every view: well over 50,000 objects (about 150,000 today).
    assert settled["frozen"] > 50_000
    assert settled["views_loaded"], "the URLconf (every view) is loaded before the freeze"


def test_young_generation_is_collected_after_the_setting(settled):
    assert settled["threshold"][0] == 7000
    assert settled["threshold"][1:] == [10, 10]  # the older generations as Python has them


def test_a_cycle_made_after_startup_is_still_collected(settled):
    assert settled["cycle_collected"]


def test_threshold_from_the_environment():
    assert probe(GC_GEN0_THRESHOLD="2000")["threshold"][0] == 2000


def test_zero_keeps_pythons_thresholds():
    assert probe(GC_GEN0_THRESHOLD="0")["threshold"][0] == 700

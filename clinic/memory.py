"""The web worker's garbage collector, settled once the application is loaded.

Django, DRF and the URLconf leave about 150,000 tracked objects after startup (modules,
classes, functions, serializer fields). Python's cyclic collector walks the older of them
again and again: every collection of generation 2 visits them all (about 100 ms here), and the
young generations fill after 700 allocations, which a page of 50 rows passes many times.

`settle()` is called once by `clinic.wsgi`, after the application is built and its URLconf
loaded, before the first request:

- `gc.freeze()` moves everything alive then into a permanent generation that no collection
  walks. Each gunicorn worker loads the application itself (no `preload_app`), so each worker
  freezes its own; the objects are never freed, which is what they would be anyway.
- generation 0's threshold is raised from 700 to `GC_GEN0_THRESHOLD` (7,000 by default), so a
  request's short-lived objects are mostly freed by reference counting before a collection
  looks at them. Cycles are still collected, ten times less often; memory per worker does not
  grow with it (each request's garbage is what it is).

Measured in-process (docs/benchmarks.md, sixth round): time spent in collections per day-view
request 3.1 ms → 1.1 ms, audit events 0.8 ms → 0.3 ms, availability 0.4 ms → 0.1 ms.
"""

import gc

from django.conf import settings
from django.urls import get_resolver


def settle() -> None:
    """Load what the first request would, freeze it out of the collector, and space the young
    generation's collections (`GC_GEN0_THRESHOLD`; 0 leaves the thresholds as they are)."""
    get_resolver().url_patterns  # noqa: B018  (imports every view, serializer and filterset)
    gc.collect()
    gc.freeze()
    threshold = settings.GC_GEN0_THRESHOLD
    if threshold:
        _, gen1, gen2 = gc.get_threshold()
        gc.set_threshold(threshold, gen1, gen2)

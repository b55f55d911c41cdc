"""The service's counters as Prometheus metrics, read when ``/metrics`` is scraped.

A request or a lookup only bumps plain ints and dicts (``ThreatServiceApp``, ``Dispatcher``,
``StoreGate``, each searcher's ``SearcherStats`` and ``Bulkhead``); this collector turns them
into metric families at scrape time, so the hot path takes no prometheus_client lock and
builds no metric object.  Collection runs in the HTTP loop thread (``ThreatServiceApp.handle``
answers ``/metrics`` there), which is also the one thread where those counters change: no lock
is needed, and a scrape sees them all at one instant.

Labels carry service and searcher names only, never an artifact, a lookup id or a path.
"""
from __future__ import annotations

from itertools import accumulate
from typing import TYPE_CHECKING, Iterator

from prometheus_client import GCCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from .lookups.breaker import GAUGE as BREAKER_GAUGE
from .lookups.bulkhead import LATENCY_BUCKETS

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from .http.app import ThreatServiceApp
    from .http.server import HttpServer
    from .lookups.dispatcher import Dispatcher

SEARCHER = ["service", "searcher"]


class ServiceCollector(Collector):
    """Reads the framework's own counters; registered in the service's own registry."""

    def __init__(self, app: "ThreatServiceApp", dispatcher: "Dispatcher", server: "HttpServer"):
        self.app = app
        self.dispatcher = dispatcher
        self.server = server

    def collect(self) -> Iterator["Metric"]:
        yield from self._front()
        yield from self._lookups()
        yield from self._searchers()

    def _front(self) -> Iterator["Metric"]:
        app = self.app
        requests = CounterMetricFamily(
            "rc_cts_http_requests", "Requests to the service URLs answered, by method and status "
            "(not /healthz, /readyz, /metrics).", labels=["method", "status"])
        for (method, status), count in sorted(app.requests.items()):
            requests.add_metric([method, str(status)], count)
        yield requests
        yield GaugeMetricFamily("rc_cts_http_connections", "Client connections open (TLS ones "
                                "before their handshake too); the limit is max_connections.",
                                value=self.server.connections)
        yield CounterMetricFamily("rc_cts_post_requests", "POSTs with a valid artifact.", value=app.posts)
        yield CounterMetricFamily("rc_cts_post_cache_hits", "POSTs answered from the cache alone: every "
                                  "searcher's answer was cached (per searcher: rc_cts_searcher_cache_hits).",
                                  value=app.posts_cached)
        yield GaugeMetricFamily("rc_cts_post_cache_hit_ratio", "rc_cts_post_cache_hits / "
                                "rc_cts_post_requests since the start (0 before the first POST).",
                                value=app.posts_cached / app.posts if app.posts else 0.0)

    def _lookups(self) -> Iterator["Metric"]:
        d = self.dispatcher
        yield CounterMetricFamily("rc_cts_lookups_started", "Lookups run here: new ones, resumed "
                                  "ones, and reruns of the searchers missing from one.",
                                  value=d.lookups_started)
        yield CounterMetricFamily("rc_cts_lookups_completed", "Lookups ended whole: every searcher "
                                  "answered.", value=d.lookups_whole)
        yield CounterMetricFamily("rc_cts_lookups_incomplete", "Lookups ended with a searcher missing "
                                  "(failed, timed out or incomplete): run again on later requests.",
                                  value=d.lookups_incomplete)
        yield GaugeMetricFamily("rc_cts_lookups_active", "Lookups running here now.", value=len(d.active))
        yield CounterMetricFamily("rc_cts_store_errors", "Store calls that failed or passed their "
                                  "deadline (each answered 503, or retried for a write).",
                                  value=d.results.gate.errors)
        yield GaugeMetricFamily("rc_cts_store_unsaved_results", "Ended lookups kept in memory "
                                "until the store takes them.", value=len(d.results.kept))

    def _searchers(self) -> Iterator["Metric"]:
        def counter(name: str, doc: str) -> CounterMetricFamily:
            return CounterMetricFamily(name, doc, labels=SEARCHER)

        def gauge(name: str, doc: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=SEARCHER)

        calls = counter("rc_cts_searcher_calls", "Handler calls started.")
        failures = counter("rc_cts_searcher_failures", "Calls that raised (not counting "
                           "ThreatLookupIncompleteException).")
        timeouts = counter("rc_cts_searcher_timeouts", "Calls given up after call_timeout_secs.")
        deferrals = counter("rc_cts_searcher_deferrals", "Calls put off: the queue was full or "
                            "the rate_limit quota spent (their lookups stay pending).")
        in_flight = gauge("rc_cts_searcher_in_flight", "Calls running now (at most max_concurrency).")
        queued = gauge("rc_cts_searcher_queued", "Calls waiting in the queue (at most max_queue).")
        abandoned = gauge("rc_cts_searcher_abandoned", "Threads still running a call that passed "
                          "its timeout (at most max_abandoned).")
        latency = HistogramMetricFamily("rc_cts_searcher_call_duration_seconds", "How long calls "
                                        "took (a timed-out one counts its timeout).", labels=SEARCHER)
        skipped = counter("rc_cts_searcher_breaker_skipped", "Calls not made because the "
                          "searcher's circuit breaker was open (their lookups ended incomplete).")
        breaker = gauge("rc_cts_searcher_breaker_state", "The searcher's circuit breaker: 0 closed, "
                        "1 half-open (one probe call), 2 open (not called).")
        trips = counter("rc_cts_searcher_breaker_trips", "Times the breaker opened.")
        paused = gauge("rc_cts_searcher_quota_paused_seconds", "Seconds until the searcher's quota "
                       "lets calls start again (0: not paused).")
        quota_left = GaugeMetricFamily("rc_cts_searcher_quota_remaining", "Calls left in each "
                                       "rate_limit window (a quota shared through Redis: as of this "
                                       "process's last call).", labels=[*SEARCHER, "window"])
        cache_hits = counter("rc_cts_searcher_cache_hits", "Answers taken fresh from the "
                             "per-searcher cache: no call made.")
        cache_stale = counter("rc_cts_searcher_cache_stale", "Stale answers served (within "
                              "stale_secs) and refreshed in the background.")
        cache_misses = counter("rc_cts_searcher_cache_misses", "Lookups with no usable cached "
                               "answer for the searcher: it was called.")
        bounds = [floatToGoString(b) for b in LATENCY_BUCKETS] + ["+Inf"]
        for searcher in self.dispatcher.registry.searchers():
            labels = [searcher.service, searcher.name]
            bulkhead = searcher.bulkhead
            stats = bulkhead.stats
            calls.add_metric(labels, stats.calls)
            failures.add_metric(labels, stats.failed)
            timeouts.add_metric(labels, stats.timed_out)
            deferrals.add_metric(labels, stats.deferred)
            in_flight.add_metric(labels, bulkhead.in_flight)
            queued.add_metric(labels, bulkhead.queued)
            abandoned.add_metric(labels, bulkhead.abandoned)
            latency.add_metric(labels, list(zip(bounds, accumulate(stats.latency_counts))),
                               stats.latency_sum)
            skipped.add_metric(labels, stats.skipped)
            breaker.add_metric(labels, BREAKER_GAUGE[bulkhead.breaker.state])
            trips.add_metric(labels, bulkhead.breaker.trips)
            paused.add_metric(labels, bulkhead.paused_for())
            for window, left in zip(bulkhead.quota.windows, bulkhead.quota.remaining()):
                quota_left.add_metric([*labels, window.describe()], left)
            cache_hits.add_metric(labels, stats.cache_hits)
            cache_stale.add_metric(labels, stats.cache_stale)
            cache_misses.add_metric(labels, stats.cache_misses)
        yield from (calls, failures, timeouts, deferrals, in_flight, queued, abandoned, latency,
                    skipped, breaker, trips, paused, quota_left, cache_hits, cache_stale, cache_misses)


def service_registry(collector: ServiceCollector) -> CollectorRegistry:
    """A registry of the service's own (not prometheus_client's process-wide default, which a
    host or a searcher may fill too): the service's metrics, and the process's (CPU, memory,
    open file descriptors, garbage collections)."""
    registry = CollectorRegistry()
    registry.register(collector)
    ProcessCollector(registry=registry)
    GCCollector(registry=registry)
    return registry

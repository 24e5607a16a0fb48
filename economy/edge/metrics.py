"""The node's Prometheus metrics, in a registry the node owns (never the process-global one).

Counted per request: ``edge_requests_total{endpoint, status}`` and the handler's latency
``edge_request_seconds{endpoint}`` (a histogram from 0.25 ms to 2.5 s). Read from the node at
scrape time: ``edge_cache_hits_total`` / ``edge_cache_misses_total`` by ``cache`` (``ad``: ad
texts found embedded / run through the model; ``context``: context vectors reused /
recomputed), ``edge_users``, ``edge_events`` (stored), and ``edge_epsilon`` by ``scope``:
``model`` is the per-user epsilon the served model's training spent (the run's
``privacy.epsilon_max``; absent when unknown) and ``serving`` is what the node spends per user
(0: decisions use the context on the node and send nothing of it out).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .node import EdgeNode
from .store import EventStore

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BUCKETS = (0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class _NodeCollector(Collector):
    """Gauges and counters derived from the node's own state when scraped."""

    def __init__(self, node: EdgeNode, store: EventStore) -> None:
        self.node, self.store = node, store

    def collect(self) -> Iterator[Metric]:
        stats = self.node.stats
        hits = CounterMetricFamily("edge_cache_hits", "cache hits", labels=["cache"])
        misses = CounterMetricFamily("edge_cache_misses", "cache misses", labels=["cache"])
        hits.add_metric(["ad"], self.node.ads.hits)
        hits.add_metric(["context"], stats.context_hits)
        misses.add_metric(["ad"], self.node.ads.misses)
        misses.add_metric(["context"], stats.context_misses)
        yield hits
        yield misses
        yield GaugeMetricFamily("edge_users", "users hosted", value=self.node.users)
        yield GaugeMetricFamily("edge_events", "events stored", value=self.store.count)
        eps = GaugeMetricFamily("edge_epsilon", "per-user epsilon spent", labels=["scope"])
        if self.node.model.epsilon is not None:
            eps.add_metric(["model"], self.node.model.epsilon)
        eps.add_metric(["serving"], 0.0)
        yield eps


class NodeMetrics:
    """Request counters and latencies, plus the node's derived metrics, in one registry."""

    def __init__(self, node: EdgeNode, store: EventStore) -> None:
        self.registry = CollectorRegistry()
        self._requests = Counter(
            "edge_requests", "requests by endpoint and status", ["endpoint", "status"],
            registry=self.registry,
        )  # fmt: skip
        self._latency = Histogram(
            "edge_request_seconds", "handler latency in seconds", ["endpoint"],
            buckets=BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.registry.register(_NodeCollector(node, store))
        self._children: dict[tuple[str, int], tuple[Counter, Histogram]] = {}

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        """Count one request to ``endpoint`` answered with ``status`` after ``seconds``."""
        child = self._children.get((endpoint, status))
        if child is None:
            child = (
                self._requests.labels(endpoint, str(status)),
                self._latency.labels(endpoint),
            )
            self._children[(endpoint, status)] = child
        child[0].inc()
        child[1].observe(seconds)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)

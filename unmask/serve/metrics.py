"""Prometheus counters of the service, written in the text exposition format (version 0.0.4) by hand:
a few counters and one latency histogram do not need a client library.
"""
from __future__ import annotations

import threading
from collections import Counter

__all__ = ["Metrics", "LATENCY_BUCKETS"]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _labels(**kw: str) -> str:
    esc = (lambda v: str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n"))
    return "{" + ",".join(f'{k}="{esc(v)}"' for k, v in kw.items()) + "}"


class Metrics:
    """Thread-safe counters: requests by route and status, images by label, errors by status,
    request latency (histogram), forward passes and the images/inputs they carried."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter = Counter()       # (route, status) -> n
        self.images: Counter = Counter()         # label -> n
        self.errors: Counter = Counter()         # status -> n
        self.buckets = [0] * len(LATENCY_BUCKETS)
        self.latency_sum = 0.0
        self.latency_count = 0
        self.batches = self.batch_images = self.batch_inputs = 0
        self.in_flight = 0

    def request(self, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(route, status)] += 1
            if status >= 400:
                self.errors[status] += 1
            self.latency_sum += seconds
            self.latency_count += 1
            for i, b in enumerate(LATENCY_BUCKETS):
                if seconds <= b:
                    self.buckets[i] += 1

    def image(self, label: str) -> None:
        with self._lock:
            self.images[label] += 1

    def batch(self, n_images: int, n_inputs: int) -> None:
        with self._lock:
            self.batches += 1
            self.batch_images += n_images
            self.batch_inputs += n_inputs

    def render(self) -> str:
        with self._lock:
            out = ["# HELP unmask_requests_total HTTP requests by route and status.",
                   "# TYPE unmask_requests_total counter"]
            out += [f"unmask_requests_total{_labels(route=r, status=s)} {n}"
                    for (r, s), n in sorted(self.requests.items())]
            out += ["# HELP unmask_images_total Images scored (label real or fake) or refused (label error).",
                    "# TYPE unmask_images_total counter"]
            out += [f"unmask_images_total{_labels(label=k)} {n}" for k, n in sorted(self.images.items())]
            out += ["# HELP unmask_errors_total Requests answered with a 4xx or 5xx status.",
                    "# TYPE unmask_errors_total counter"]
            out += [f"unmask_errors_total{_labels(status=s)} {n}" for s, n in sorted(self.errors.items())]
            out += ["# HELP unmask_request_seconds Request latency, upload to answer.",
                    "# TYPE unmask_request_seconds histogram"]
            out += [f"unmask_request_seconds_bucket{_labels(le=b)} {n}" for b, n in zip(LATENCY_BUCKETS, self.buckets)]
            out += [f'unmask_request_seconds_bucket{{le="+Inf"}} {self.latency_count}',
                    f"unmask_request_seconds_sum {self.latency_sum:.6f}",
                    f"unmask_request_seconds_count {self.latency_count}"]
            for name, v, what in (("batches", self.batches, "Forward passes (micro-batches)."),
                                  ("batch_images", self.batch_images, "Images carried by the forward passes."),
                                  ("batch_inputs", self.batch_inputs, "Model inputs (tiles) in the forward passes.")):
                out += [f"# HELP unmask_{name}_total {what}", f"# TYPE unmask_{name}_total counter",
                        f"unmask_{name}_total {v}"]
            out += ["# HELP unmask_in_flight Requests being handled now.", "# TYPE unmask_in_flight gauge",
                    f"unmask_in_flight {self.in_flight}"]
        return "\n".join(out) + "\n"

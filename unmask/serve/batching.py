"""Micro-batching: requests that arrive together are scored in one forward pass.

A request's prepared images wait in a queue; the batcher takes the first, waits at most
``wait_s`` for company (only when the queue was empty: whatever queued up during the previous
forward pass already waited), up to ``max_inputs`` model inputs, and runs one forward pass on its
own thread, so the event loop keeps accepting and parsing uploads meanwhile. This is the dynamic
batching of serving systems (Crankshaw et al., "Clipper", NSDI 2017; NVIDIA Triton's dynamic
batcher): under load the batch grows with the queue and the per-image cost falls; alone, a request
waits ``wait_s`` at most.
"""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Sequence

from .engine import Prepared, Scored

__all__ = ["MicroBatcher"]


@dataclass
class _Job:
    items: list[Prepared]
    future: asyncio.Future
    n_inputs: int


class MicroBatcher:
    """``await batcher.score(items)`` -> one :class:`Scored` per item, batched with other requests."""

    def __init__(self, score: Callable[[Sequence[Prepared]], list[Scored]], max_inputs: int = 2048,
                 wait_s: float = 0.005, on_batch: Callable[[int, int], None] | None = None) -> None:
        self._score, self.max_inputs, self.wait_s = score, max_inputs, wait_s
        self._on_batch = on_batch or (lambda n_images, n_inputs: None)
        self._queue: asyncio.Queue[_Job] | None = None
        self._task: asyncio.Task | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="unmask-forward")

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._run(), name="unmask-batcher")

    async def stop(self) -> None:
        """Finish what is queued, then stop (called after the server stopped taking requests)."""
        if self._task is not None:
            while self._queue is not None and not self._queue.empty():
                await asyncio.sleep(0.01)
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._pool.shutdown(wait=True)

    async def score(self, items: list[Prepared]) -> list[Scored]:
        if self._queue is None:
            raise RuntimeError("MicroBatcher.start() was not awaited")
        fut = asyncio.get_running_loop().create_future()
        await self._queue.put(_Job(items, fut, sum(len(it.inputs) for it in items)))
        return await fut

    async def _collect(self) -> list[_Job]:
        q = self._queue
        first = await q.get()
        jobs, n = [first], first.n_inputs
        waited = not q.empty()  # a queue that filled during the last forward pass has waited already
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_s
        while n < self.max_inputs:
            if not q.empty():
                job = q.get_nowait()
            elif waited or loop.time() >= deadline:
                break
            else:
                try:
                    job = await asyncio.wait_for(q.get(), deadline - loop.time())
                except asyncio.TimeoutError:
                    break
            jobs.append(job)
            n += job.n_inputs
        return jobs

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = await self._collect()
            live = [j for j in jobs if not j.future.done()]  # a request that timed out is not scored
            items = [it for j in live for it in j.items]
            if not items:
                continue
            try:
                scored = await loop.run_in_executor(self._pool, self._score, items)
            except Exception as e:  # noqa: BLE001 - reported to every waiting request
                for j in live:
                    if not j.future.done():
                        j.future.set_exception(e)
                continue
            self._on_batch(len(items), sum(len(it.inputs) for it in items))
            off = 0
            for j in live:
                if not j.future.done():
                    j.future.set_result(scored[off:off + len(j.items)])
                off += len(j.items)

"""Dynamic batching for the server: texts of requests that arrive together are scored as one batch.

The first waiting request opens a batch; it closes at `max_batch` texts or `max_wait_ms` later, whichever comes
first (at 0, the default, it takes what is queued: under load, the requests that arrived while the previous batch
was scored). Batches are scored one at a time in a worker thread, so the event loop keeps taking requests meanwhile
(and those become the next batch). `max_batch=1, max_wait_ms=0` scores each request alone: batching off.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np


class Batcher:
    def __init__(self, score: Callable[[list[str]], np.ndarray], max_batch: int = 32, max_wait_ms: float = 5.0,
                 on_batch: Callable[[int], None] | None = None):
        if max_batch < 1 or max_wait_ms < 0:
            raise ValueError(f"max_batch {max_batch} (>= 1) and max_wait_ms {max_wait_ms} (>= 0)")
        self.score, self.max_batch, self.max_wait = score, max_batch, max_wait_ms / 1000
        self.on_batch = on_batch or (lambda n: None)
        self.queue: asyncio.Queue[tuple[list[str], asyncio.Future]] = asyncio.Queue()
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="score")  # torch uses its own threads

    async def submit(self, texts: list[str]) -> np.ndarray:
        """The scores of `texts` (one row each), scored with whatever else arrives meanwhile."""
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((texts, future))
        return await future

    async def _next_batch(self) -> list[tuple[list[str], asyncio.Future]]:
        batch = [await self.queue.get()]
        size, deadline = len(batch[0][0]), time.monotonic() + self.max_wait
        while size < self.max_batch:
            try:  # whatever is waiting already, then what arrives before the deadline
                item = self.queue.get_nowait() if not self.queue.empty() else await asyncio.wait_for(
                    self.queue.get(), max(0.0, deadline - time.monotonic()))
            except (TimeoutError, asyncio.QueueEmpty):
                break
            batch.append(item)
            size += len(item[0])
        return batch

    async def run(self) -> None:
        """Score batches until cancelled (the server's lifespan runs it as a task)."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                batch = [(texts, f) for texts, f in await self._next_batch() if not f.done()]  # gone: not scored
                if not batch:
                    continue
                texts = [t for ts, _ in batch for t in ts]
                self.on_batch(len(texts))
                try:
                    scores = await loop.run_in_executor(self.worker, self.score, texts)
                except Exception as e:  # every request of the batch gets the error; the loop goes on
                    for _, f in batch:
                        if not f.done():
                            f.set_exception(e)
                    continue
                start = 0
                for ts, f in batch:
                    if not f.done():  # a client that left meanwhile
                        f.set_result(scores[start:start + len(ts)])
                    start += len(ts)
        finally:
            self.worker.shutdown(wait=False, cancel_futures=True)

"""The inbox loop: courier pushes, verified and stored by the webhook, applied by the use case
courier/services/inbox.py a few rows per transaction, a bounded number per cycle; then proof of
delivery artefacts of fresh deliveries are fetched. A database outage is raised to the loop,
which waits it out (worker/loop.py).
"""

from __future__ import annotations

import asyncio

from courier.context import AppContext
from courier.services import artefacts, inbox, pod
from worker.loop import poll_interval, run_periodic

MAX_PER_CYCLE = 200


async def once(ctx: AppContext, worker_id: str) -> int:
    """Process due inbox rows (bounded per cycle); then fetch pending POD artefacts."""
    done = 0
    while done < MAX_PER_CYCLE:
        taken = await inbox.apply_due_pushes(ctx)
        done += taken
        if taken < inbox.BATCH:
            break
    if done:
        await pod.fetch_pending(
            ctx.sessions,
            artefacts.store(ctx),
            now=ctx.clock.now(),
            origins=pod.allowed_origins(ctx.settings.couriers),
            max_bytes=ctx.settings.pod_max_bytes,
        )
    return done


async def run(ctx: AppContext, worker_id: str, stopping: asyncio.Event) -> None:
    await run_periodic(
        "inbox",
        once,
        ctx=ctx,
        worker_id=worker_id,
        stopping=stopping,
        interval=poll_interval(ctx),
    )

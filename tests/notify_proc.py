"""A tiny agent for the crash test: queues one firing alert for one webhook, delivers, exits.

    python -m tests.notify_proc STATE_DIR URL

Prints ``started`` once its delivery task runs and ``drained`` once nothing is queued; the test kills
the first such process with SIGKILL while its request is held open by the receiver, then runs a second
one on the same state directory.
"""

from __future__ import annotations

import asyncio
import sys

from dbwatch.agent.notify import Notifier
from dbwatch.exporters.receivers import NotificationsConfig, parse_receivers
from tests.notifyutil import T0, make_alert


async def main(state_dir: str, url: str) -> int:
    receivers = parse_receivers([{"name": "oncall", "type": "webhook", "url": url, "timeout": "20s"}])
    notifier = Notifier(receivers, state_dir, settings=NotificationsConfig(min_backoff=0.05, max_backoff=0.2))
    notifier.update([make_alert(fired_at=T0)])  # the same alert in both runs: remembered, queued once
    await notifier.start()
    print("started", flush=True)
    drained = await notifier.drain(timeout=30)
    print("drained" if drained else "not drained", flush=True)
    await notifier.stop(grace=1)
    return 0 if drained else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2])))

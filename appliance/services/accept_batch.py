"""Group commit: the acceptance writes of concurrent requests in one transaction.

Every accepted request ends in one write (its payload, messages and first
events, ``Messages.accept_many``). On SQLite there is one writer, and each
write is a worker-thread round trip, so under load requests queue behind it
one at a time. :class:`AcceptBatcher` writes whatever arrived while the
previous write was running in the next single transaction:

- an idle appliance writes a request at once (nothing waits for a timer);
- while one batch is being written, new requests join the next one, up to
  ``max_requests`` requests or ``max_messages`` messages;
- the first request of a batch writes it; each request of it returns once the
  transaction has committed, or raises the batch's error (one transaction:
  nothing of any of them was written, so each may retry).

Waiting for the batch is shielded from cancellation, as a thread write is: a
request whose client went away is written (or refused) with its batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import trio

from appliance.domain.acceptance import AcceptancePlan
from appliance.store.messages import AcceptWrite, Messages, PlannedAccept

MAX_REQUESTS: Final = 64
MAX_MESSAGES: Final = 2000


@dataclass(slots=True)
class _Batch:
    writes: list[AcceptWrite | PlannedAccept] = field(default_factory=list)
    messages: int = 0  # known before planning: recipients (PlannedAccept) or messages
    plans: list[AcceptancePlan] = field(default_factory=list)
    done: trio.Event = field(default_factory=trio.Event)
    error: BaseException | None = None


class AcceptBatcher:
    def __init__(
        self,
        messages: Messages,
        *,
        max_requests: int = MAX_REQUESTS,
        max_messages: int = MAX_MESSAGES,
    ) -> None:
        self._messages = messages
        self._max_requests = max_requests
        self._max_messages = max_messages
        self._open: _Batch | None = None  # the batch new writes join
        self._writing = trio.Lock()  # one batch written at a time

    async def write(self, item: AcceptWrite | PlannedAccept) -> AcceptancePlan:
        """Write ``item`` with the batch it joins and return its plan; raises that
        batch's error."""
        batch = self._open
        leader = batch is None
        if batch is None:
            batch = self._open = _Batch()
        index = len(batch.writes)
        batch.writes.append(item)
        if isinstance(item, PlannedAccept):
            batch.messages += max(1, len(item.suppression_keys))
        else:
            batch.messages += len(item.plan.messages)
        if len(batch.writes) >= self._max_requests or batch.messages >= self._max_messages:
            self._open = None  # full: later writes start the next batch
        with trio.CancelScope(shield=True):
            if leader:
                await self._commit(batch)
            else:
                await batch.done.wait()
        if batch.error is not None:
            raise batch.error
        return batch.plans[index]

    async def _commit(self, batch: _Batch) -> None:
        try:
            async with self._writing:
                if self._open is batch:
                    self._open = None
                batch.plans = await self._messages.accept_many(batch.writes)
        except BaseException as exc:  # every request of the batch gets it, the leader too
            batch.error = exc
        finally:
            batch.done.set()

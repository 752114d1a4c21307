"""From events to SendGrid's 16 statistics metrics: one table, no I/O.

An event adds to a day's counters as SendGrid counts them:

- ``requests`` = processed + drops made at acceptance (a suppressed recipient
  is dropped instead of processed, so each request counts once);
- ``bounces`` are hard and soft bounces; a ``bounce_type`` of ``block`` counts
  as ``blocks`` instead;
- a drop counts by its reason: ``bounce_drops``, ``spam_report_drops``,
  ``unsubscribe_drops``, ``invalid_emails``; a drop after processing
  (``render_failed``) adds nothing, its request was counted when processed;
- ``unique_opens`` / ``unique_clicks`` count only the first open / click of
  a message;
- ``unsubscribes`` include group unsubscribes.

Events with no metric (``requeued``, ``cancelled``, ``group_resubscribe``,
``webhook_disabled``, anything unknown) add nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

METRICS: tuple[str, ...] = (
    "blocks",
    "bounce_drops",
    "bounces",
    "clicks",
    "deferred",
    "delivered",
    "invalid_emails",
    "opens",
    "processed",
    "requests",
    "spam_report_drops",
    "spam_reports",
    "unique_clicks",
    "unique_opens",
    "unsubscribe_drops",
    "unsubscribes",
)
"""SendGrid's metric names, in the order its responses list them."""

FIRST_OF_KIND_EVENTS: frozenset[str] = frozenset({"open", "click", "delivered"})
"""Events whose first occurrence for a message counts differently: opens and clicks
as unique, and ``delivered`` only once (a relay's agent may report the final
delivery of a message we already counted when the relay took it)."""

DATA_EVENTS: frozenset[str] = frozenset({"dropped", "bounce"})
"""Events whose metrics depend on their payload (others may be given an empty one)."""

Increments = Mapping[str, int]

_NONE: Increments = MappingProxyType({})


def _add(*names: str) -> Increments:
    return MappingProxyType(dict.fromkeys(names, 1))


# event type -> increments, for events whose payload does not matter
_BY_TYPE: Mapping[str, Increments] = {
    "processed": _add("requests", "processed"),
    "deferred": _add("deferred"),
    "spamreport": _add("spam_reports"),
    "unsubscribe": _add("unsubscribes"),
    "group_unsubscribe": _add("unsubscribes"),
}

# dropped: reason -> increments
_DROPS: Mapping[str, Increments] = {
    "suppressed_bounce": _add("requests", "bounce_drops"),
    "suppressed_spam_report": _add("requests", "spam_report_drops"),
    "suppressed_unsubscribe": _add("requests", "unsubscribe_drops"),
    "suppressed_invalid": _add("requests", "invalid_emails"),
    "render_failed": _NONE,  # dropped after its ``processed`` event
}
_OTHER_DROP = _add("requests")  # dropped before processing, for a reason with no metric

# bounce: bounce_type -> increments
_BOUNCES: Mapping[str, Increments] = {"block": _add("blocks")}
_OTHER_BOUNCE = _add("bounces")

# open / click: (event, first of its kind for the message) -> increments
_ENGAGEMENT: Mapping[tuple[str, bool], Increments] = {
    ("open", True): _add("opens", "unique_opens"),
    ("open", False): _add("opens"),
    ("click", True): _add("clicks", "unique_clicks"),
    ("click", False): _add("clicks"),
    ("delivered", True): _add("delivered"),
    ("delivered", False): _NONE,
}


def increments(event_type: str, data: Mapping[str, Any], *, first_of_kind: bool) -> Increments:
    """The metrics one event adds to its day.

    ``first_of_kind`` says whether this is the message's first event of this
    type (only ``open``, ``click`` and ``delivered`` look at it).
    """
    if event_type == "dropped":
        return _DROPS.get(str(data.get("reason") or ""), _OTHER_DROP)
    if event_type == "bounce":
        return _BOUNCES.get(str(data.get("bounce_type") or ""), _OTHER_BOUNCE)
    if event_type in FIRST_OF_KIND_EVENTS:
        return _ENGAGEMENT[(event_type, first_of_kind)]
    return _BY_TYPE.get(event_type, _NONE)


def zero_metrics() -> dict[str, int]:
    return dict.fromkeys(METRICS, 0)


def summed(parts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """All 16 metrics, summed over ``parts`` (missing names count as 0)."""
    total = zero_metrics()
    for part in parts:
        for name, value in part.items():
            total[name] += value
    return total

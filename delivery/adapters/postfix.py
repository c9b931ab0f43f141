"""Postfix delivery log lines from the SMTP client, ``postfix/smtp``.

References: Postfix "Postfix logging" and the smtp(8) manual (https://www.postfix.org/smtp.8.html,
https://www.postfix.org/MAILLOG_README.html). A delivery attempt is logged as::

    Nov 24 06:00:03 mx1 postfix/smtp[2211]: 4Yc0R81XZ2z9v: to=<ana@gmail.com>,
      relay=gmail-smtp-in.l.google.com[142.250.102.27]:25, delay=1.2,
      delays=0.1/0/0.5/0.6, dsn=4.7.28, status=deferred (host gmail-smtp-in.l.google.com
      [142.250.102.27] said: 421-4.7.28 ... (in reply to end of DATA command))

(one line). ``status=sent`` -> delivered, ``deferred`` -> deferred, ``bounced`` -> bounced;
``dsn=`` -> reply.enhanced; the reply after "said:" (or the whole parenthesised text when
the server never answered, e.g. "connect to ...: Connection timed out") -> reply;
``relay=host[ip]:port`` -> mx_host; the queue id -> message_id. Lines from other programs
(qmgr, smtpd, cleanup, bounce, local, virtual, lmtp, pipe, error) and smtp lines without
``status=`` are skipped: ``postfix/error`` re-defers without contacting the server, and local
deliveries are not outbound traffic. When the syslog name is not plain ``postfix`` (multi-
instance setups or ``-o syslog_name=postfix-pool1`` per IP), that name -> pool. The envelope
sender is not on the smtp line; a ``StreamDecoder`` remembers it from the qmgr ``from=<...>``
line of the same queue id.

Timestamps: RFC 3339 timestamps (rsyslog's high-precision format, journalctl
``-o short-iso``) are used as they are. Traditional BSD syslog timestamps ("Nov 24 06:00:03")
carry neither year nor zone: the zone is a parameter (default UTC), and the year is a
parameter too; when not given, it is the current year in that zone, or the previous year
when that would put the line more than a day in the future (a December log read in January).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from delivery.adapters.common import (
    Converted,
    Draft,
    FormatError,
    InputFormat,
    domain_of,
    first_enhanced,
    parse_reply,
    parse_time,
    show,
)
from schemas.vocabulary import SourceStatus

NAME = "postfix"

STATUS: Mapping[str, SourceStatus] = {
    "sent": SourceStatus.DELIVERED,
    "deferred": SourceStatus.DEFERRED,
    "bounced": SourceStatus.BOUNCED,
}

ORIGIN: Mapping[str, str] = {
    "event_time": "timestamp",
    "recipient": "to",
    "sender": "from",
    "sending_domain": "from",
    "pool": "syslog_name",
    "mx_host": "relay",
    "reply.code": "status",
    "reply.enhanced": "dsn",
    "reply.text": "status",
    "status": "status",
    "message_id": "queue_id",
}

_MONTHS = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
_LINE = re.compile(
    r"^(?:<\d{1,3}>)?"  # a syslog priority, when read off the wire
    r"(?:(?P<mon>[A-Z][a-z]{2}) +(?P<day>\d{1,2}) (?P<hms>\d\d:\d\d:\d\d)"
    r"|(?P<iso>\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)))"
    r" +(?P<host>\S+) +(?P<prog>[\w.-]+(?:/[\w.-]+)+)\[\d+\]:"
    r" +(?:(?P<qid>[0-9A-Za-z]+): +)?(?P<rest>.*)$"
)
_FROM = re.compile(r"^from=<(?P<from>[^>]*)>")


class Clock:
    """How to complete BSD syslog timestamps: the zone, and the year or how to guess it."""

    __slots__ = ("now", "tz", "year")

    def __init__(
        self, year: int | None = None, tz: tzinfo = UTC, now: datetime | None = None
    ) -> None:
        self.year = year
        self.tz = tz
        self.now = now

    def resolve(self, mon: str, day: str, hms: str) -> datetime:
        month = _MONTHS.get(mon)
        if month is None:
            raise FormatError("timestamp", f"unknown month {mon!r}")
        hour, minute, second = (int(x) for x in hms.split(":"))
        now = self.now or datetime.now(self.tz)
        year = self.year if self.year is not None else now.year
        try:
            stamp = datetime(year, month, int(day), hour, minute, second, tzinfo=self.tz)
            if self.year is None and stamp > now + timedelta(days=1):
                stamp = stamp.replace(year=year - 1)
        except ValueError as exc:
            raise FormatError("timestamp", f"not a valid date: {exc}") from None
        return stamp


DEFAULT_CLOCK = Clock()


class State:
    """What later lines of one log need: the clock and each queue id's envelope sender."""

    __slots__ = ("clock", "senders")

    def __init__(self, year: int | None = None, tz: tzinfo = UTC) -> None:
        self.clock = Clock(year, tz)
        self.senders: dict[str, str] = {}


def new_state(year: int | None, tz: tzinfo) -> State:
    return State(year, tz)


def read_line(line: str, state: State) -> Converted:
    return convert_line(line, state.clock, state.senders)


def looks_like(line: str) -> bool:
    return "postfix" in line and _LINE.match(line) is not None


def convert_line(
    line: str, clock: Clock = DEFAULT_CLOCK, senders: MutableMapping[str, str] | None = None
) -> Converted:
    """Drafts for a delivery line, ``None`` for any other Postfix line. ``senders`` (queue id
    -> envelope sender) is filled from qmgr lines and read for smtp lines."""
    match = _LINE.match(line.rstrip("\r\n"))
    if match is None:
        if "postfix" not in line:
            return None  # another daemon's line in the same mail log
        raise FormatError(None, f"not a Postfix syslog line (got {show(line)})")
    prog = match["prog"]
    instance, _, agent = prog.rpartition("/")
    rest = match["rest"]
    if senders is not None and agent == "qmgr" and match["qid"]:
        found = _FROM.match(rest)
        if found:
            senders[match["qid"]] = found["from"]
            if len(senders) > 100_000:
                # bounded: drop the oldest queue ids, whose messages are long gone
                for key in list(senders)[:10_000]:
                    del senders[key]
        elif rest.startswith("removed"):
            senders.pop(match["qid"], None)
        return None
    if agent != "smtp" or match["qid"] is None:
        return None
    # plain string scanning: these lines are long and regex backtracking over the reply
    # text costs more than the rest of the adapter
    at = rest.find(", status=")
    if at < 0 or not rest.startswith("to=<"):
        return None
    head = rest[:at]
    word, _, text = rest[at + 9 :].partition(" ")
    status = STATUS.get(word)
    if status is None:
        return None  # expired, undeliverable, deliverable: not an SMTP attempt's verdict
    text = text.strip()
    if text.startswith("(") and text.endswith(")"):
        text = text[1:-1]
    said = text.find(" said: ")
    reply = text[said + 7 :] if said >= 0 else text
    cut = reply.rfind(" (in reply to ")
    if cut >= 0 and reply.endswith(")"):
        reply = reply[:cut]
    code, text_enhanced = parse_reply(reply)
    relay = _field(head, ", relay=")
    mx_host = relay.partition("[")[0].rstrip(".") or None if relay and relay != "none" else None
    sender = senders.get(match["qid"]) if senders is not None else None
    syslog_name = instance.partition("/")[0]
    if match["iso"]:
        when = parse_time(match["iso"].replace(" ", "T", 1), "timestamp")
    else:
        when = clock.resolve(match["mon"], match["day"], match["hms"])
    fields: dict[str, Any] = {
        "event_time": when,
        "recipient": head[4 : head.find(">")],
        "sender": sender or None,
        "sending_domain": domain_of(sender),
        "pool": syslog_name if syslog_name != "postfix" else None,
        "mx_host": mx_host,
        "reply": {
            "code": code,
            "enhanced": first_enhanced(_field(head, ", dsn=")) or text_enhanced,
            "text": reply,
        },
        "status": status,
        "message_id": match["qid"],
        "source_format": NAME,
    }
    return [Draft(fields, ORIGIN)]


def _field(head: str, key: str) -> str | None:
    """The value of ``key`` (", relay=") in the ``name=value, ...`` part of a line."""
    at = head.find(key)
    if at < 0:
        return None
    start = at + len(key)
    end = head.find(",", start)
    return head[start:] if end < 0 else head[start:end]


FORMAT = InputFormat(NAME, "text", "Postfix smtp(8) log lines", looks_like, read_line, new_state)

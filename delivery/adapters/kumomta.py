"""KumoMTA JSON log records.

Reference: KumoMTA "Log Record" (https://docs.kumomta.com/reference/log_record/). One JSON
object per record; ``type`` says what happened. Delivery, TransientFailure, Bounce and
Expiration are delivery attempts (or the end of them). Reception, OOB, AdminBounce, Rejection
and Delay are not attempts and are skipped: an OOB bounce follows a Delivery record already
counted, and an AdminBounce is an operator's decision, not a receiver's answer.

Feedback records (an ARF report KumoMTA received on a listener with ``log_arf``, see
"Configuring Feedback Loop Processing", https://docs.kumomta.com/userguide/configuration/fbl/)
-> feedback events, one per complainer, from ``feedback_report`` (RFC 5965's fields in snake
case): the record's ``timestamp`` (when KumoMTA received the report) -> event_time,
``feedback_type``, ``user_agent`` -> reporter, ``arrival_date`` (when the provider received
the original) -> sent_at, ``source_ip``, ``original_mail_from`` -> sender, the first of
``reported_domain`` else the sender's domain -> sending_domain, ``original_rcpt_to`` ->
recipient. The supplemental trace header KumoMTA adds to what it sends (``X-KumoRef``),
decoded into ``feedback_report.supplemental_trace``, names the original ``recipient`` (which
feedback loops often redact), the spool ``id`` and the ``meta`` keys listed in
``include_meta_names`` (``tenant``, ``campaign``); it wins over the report. When no address
is left, the recipient is the domain of the reporting MTA (``reporting_mta.name``), so the
complaint still counts against the right mailbox provider.

Field mapping:
- ``timestamp`` (unix seconds, or RFC 3339 in some builds) -> event_time
- ``response.code`` / ``response.enhanced_code`` {class, subject, detail} /
  ``response.content`` -> reply
- ``egress_pool`` -> pool; ``source_address.address`` (since 2024.09.02, "ip:port") ->
  source_ip; ``peer_address.name`` (the MX host) -> mx_host, else the host in ``site``
- ``num_attempts`` -> attempt (at least 1); ``id`` (spool id) -> message_id
- tenant and campaign from ``meta.tenant`` / ``meta.campaign`` when the logger is configured
  to log those meta keys, else from the queue name ``[campaign:][tenant@]domain``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from delivery.adapters.common import (
    Converted,
    Draft,
    FormatError,
    InputFormat,
    address_of,
    as_dict,
    domain_of,
    feedback_draft,
    feedback_type,
    host_without_port,
    opt_str,
    parse_time,
    require,
    show,
)
from schemas.vocabulary import SourceStatus

NAME = "kumomta"

STATUS: Mapping[str, SourceStatus] = {
    "Delivery": SourceStatus.DELIVERED,
    "TransientFailure": SourceStatus.DEFERRED,
    "Bounce": SourceStatus.BOUNCED,
    "Expiration": SourceStatus.EXPIRED,
}
SKIPPED = frozenset({"Reception", "OOB", "AdminBounce", "Rejection", "Delay"})
#: Every record type the documentation lists; detection keys on these.
TYPES = frozenset(STATUS) | SKIPPED | {"Feedback"}

ORIGIN: Mapping[str, str] = {
    "event_time": "timestamp",
    "recipient": "recipient",
    "sender": "sender",
    "sending_domain": "sender",
    "source_ip": "source_address.address",
    "pool": "egress_pool",
    "mx_host": "peer_address.name",
    "reply.code": "response.code",
    "reply.enhanced": "response.enhanced_code",
    "reply.text": "response.content",
    "reply": "response",
    "status": "type",
    "attempt": "num_attempts",
    "message_id": "id",
    "tenant": "meta.tenant",
    "campaign": "meta.campaign",
}

# site is "<source>-><mx pattern>", e.g. "source2->(alt1|alt2)?.gmail-smtp-in.l.google.com."
_SITE_ALTS = re.compile(r"^\([^)]*\)\?\.")


def looks_like(record: Mapping[str, Any]) -> bool:
    kind = record.get("type")
    return isinstance(kind, str) and kind in TYPES and "recipient" in record


def convert(record: dict[str, Any]) -> Converted:
    kind = require(record, "type")
    status = STATUS.get(kind)
    if status is None:
        if kind == "Feedback":
            return _feedback(record)
        if kind in SKIPPED or isinstance(kind, str):
            # unknown future record types are skipped like the known non-attempts
            return None
        raise FormatError("type", f"expected a record type string (got {show(kind)})")

    response = as_dict(require(record, "response"), "response")
    enhanced = _enhanced(response.get("enhanced_code"))
    meta = record.get("meta")
    tenant = campaign = None
    if isinstance(meta, dict):
        tenant, campaign = opt_str(meta.get("tenant")), opt_str(meta.get("campaign"))
    if tenant is None or campaign is None:
        queue_campaign, queue_tenant = _queue_parts(record.get("queue"))
        tenant, campaign = tenant or queue_tenant, campaign or queue_campaign
    sender = opt_str(record.get("sender"))
    source = record.get("source_address")
    source_ip = (
        host_without_port(opt_str(source.get("address"))) if isinstance(source, dict) else None
    )
    peer = record.get("peer_address")
    mx_host = opt_str(peer.get("name")) if isinstance(peer, dict) else None
    mx_host = mx_host.rstrip(".") if mx_host else _site_host(record.get("site"))
    attempts = record.get("num_attempts")
    recipient = require(record, "recipient")

    fields: dict[str, Any] = {
        "event_time": parse_time(require(record, "timestamp"), "timestamp"),
        "recipient": recipient,
        "sender": sender,
        "sending_domain": domain_of(sender),
        "source_ip": source_ip,
        "pool": opt_str(record.get("egress_pool")),
        "mx_host": mx_host,
        "reply": {
            "code": response.get("code"),
            "enhanced": enhanced,
            "text": response.get("content") or "",
        },
        "status": status,
        # num_attempts counts the attempts made so far; older builds logged 0 on the first
        "attempt": 1 if attempts is None or attempts == 0 else attempts,
        "message_id": opt_str(record.get("id")),
        "tenant": tenant,
        "campaign": campaign,
        "source_format": NAME,
    }
    if not isinstance(recipient, list):
        return [Draft(fields, ORIGIN)]
    # newer builds may log several recipients of one message in a single record
    recipients = recipient
    return [Draft({**fields, "recipient": rcpt}, ORIGIN) for rcpt in recipients]


def _enhanced(value: object) -> str | None:
    if value is None:
        return None
    code = as_dict(value, "response.enhanced_code")
    try:
        return f"{int(code['class'])}.{int(code['subject'])}.{int(code['detail'])}"
    except (KeyError, TypeError, ValueError):
        raise FormatError(
            "response.enhanced_code",
            f"expected {{class, subject, detail}} integers (got {show(value)})",
        ) from None


def _queue_parts(queue: object) -> tuple[str | None, str | None]:
    """KumoMTA queue names are ``[campaign:][tenant@]domain``."""
    if not isinstance(queue, str):
        return None, None
    campaign, sep, rest = queue.partition(":")
    if not sep:
        campaign, rest = "", queue
    tenant, sep, _domain = rest.rpartition("@")
    return campaign or None, (tenant if sep else "") or None


def _site_host(site: object) -> str | None:
    if not isinstance(site, str) or "->" not in site:
        return None
    host = _SITE_ALTS.sub("", site.partition("->")[2]).rstrip(".")
    if not host or any(c in host for c in "()|?*"):
        return None
    return host


_FEEDBACK_ORIGIN: Mapping[str, str] = {
    "event_time": "timestamp",
    "sent_at": "feedback_report.arrival_date",
    "recipient": "feedback_report.original_rcpt_to",
    "feedback_type": "feedback_report.feedback_type",
    "reporter": "feedback_report.user_agent",
    "sender": "feedback_report.original_mail_from",
    "sending_domain": "feedback_report.reported_domain",
    "source_ip": "feedback_report.source_ip",
    "message_id": "feedback_report.supplemental_trace.id",
    "tenant": "feedback_report.supplemental_trace.meta.tenant",
    "campaign": "feedback_report.supplemental_trace.meta.campaign",
}


def _feedback(record: dict[str, Any]) -> Converted:
    report = as_dict(require(record, "feedback_report"), "feedback_report")
    trace = report.get("supplemental_trace")
    trace = trace if isinstance(trace, dict) else {}
    meta = trace.get("meta")
    meta = meta if isinstance(meta, dict) else {}
    arrival = report.get("arrival_date")
    sender = address_of(report.get("original_mail_from"))
    reported = report.get("reported_domain")
    reported_domain = (
        opt_str(reported[0]) if isinstance(reported, list) and reported else opt_str(reported)
    )
    recipients = [
        a
        for r in _as_list(trace.get("recipient") or report.get("original_rcpt_to"))
        if (a := address_of(r)) and "@" in a
    ]
    if not recipients:
        mta = report.get("reporting_mta")
        host = opt_str(mta.get("name")) if isinstance(mta, dict) else None
        if host is None:
            raise FormatError(
                "feedback_report.original_rcpt_to",
                "no complainer address and no reporting_mta to tell the mailbox provider by",
            )
        recipients = [host.rstrip(".")]
    fields: dict[str, Any] = {
        "event_time": parse_time(require(record, "timestamp"), "timestamp"),
        "sent_at": parse_time(arrival, "feedback_report.arrival_date") if arrival else None,
        "recipient": recipients,
        "feedback_type": feedback_type(report.get("feedback_type")),
        "reporter": opt_str(report.get("user_agent")),
        "sender": sender,
        "sending_domain": (reported_domain or "").lower() or domain_of(sender),
        "source_ip": opt_str(report.get("source_ip")),
        "message_id": opt_str(trace.get("id")),
        "tenant": opt_str(meta.get("tenant")),
        "campaign": opt_str(meta.get("campaign")),
        "source_format": NAME,
    }
    return feedback_draft(fields, _FEEDBACK_ORIGIN)


def _as_list(value: object) -> list[object]:
    return value if isinstance(value, list) else [] if value is None else [value]


FORMAT = InputFormat(
    NAME, "json", "KumoMTA JSON log records (Feedback records too)", looks_like, convert
)

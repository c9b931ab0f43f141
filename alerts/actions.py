"""What to do about each cause of failure: the ``recommended_action`` line of an alert.

Written for the person on call at a sender, not for the receiving ISP; each names the first
check, because the first minutes of an incident go to finding which of few causes it is.
"""

from __future__ import annotations

from schemas.vocabulary import Category

_ACTIONS: dict[Category, str] = {
    Category.THROTTLED: (
        "Slow down to {isp}: lower the sending rate and concurrent connections for it "
        "(MTA traffic shaping) and let deferred mail retry with backoff; a throttled ISP "
        "that keeps receiving at full rate tends to turn deferrals into blocks."
    ),
    Category.REPUTATION: (
        "Check the sending IPs and domain on public blocklists (Spamhaus, Barracuda) and "
        "in {isp}'s postmaster tools, look at complaint rates and at recent volume or list "
        "changes; pause new or cold segments to {isp} until the reputation recovers."
    ),
    Category.AUTHENTICATION: (
        "Check SPF, DKIM and DMARC alignment for the sending domain: a recent DNS change, "
        "an expired or rotated DKIM key, or a new sending IP missing from SPF."
    ),
    Category.CONTENT: (
        "Review recently launched content: URLs and their domains' reputation, attachments, "
        "and copy that spam filters key on; compare with the last campaign that delivered."
    ),
    Category.POLICY: (
        "Read the reply text for {isp}'s policy (bulk sender requirements, one-click "
        "unsubscribe, PTR records) and fix the named requirement."
    ),
    Category.MAILBOX_FULL: (
        "List hygiene: suppress recipients whose mailbox stays full across retries; a wave of "
        "them often means an old or purchased segment."
    ),
    Category.USER_UNKNOWN: (
        "List hygiene: suppress unknown users at once and find the segment or signup source "
        "they came from; a high unknown-user rate hurts reputation with {isp}."
    ),
    Category.MAILBOX_DISABLED: (
        "List hygiene: suppress disabled mailboxes; they mark an inactive, aging segment."
    ),
    Category.DOMAIN_INVALID: (
        "List hygiene: suppress addresses on invalid domains and check the signup form's "
        "validation (typos such as gmial.com)."
    ),
    Category.MESSAGE_TOO_LARGE: "Reduce message size: large attachments or inlined images.",
    Category.GREYLISTED: (
        "Usually nothing: greylisting clears on retry. Make sure retries come from the same "
        "IP and are not faster than a few minutes."
    ),
    Category.CONNECTION: (
        "Check network paths and DNS to {isp}'s MX hosts from the sending IPs (timeouts, "
        "TLS failures, refused connections)."
    ),
    Category.SERVER_ERROR: (
        "Likely on {isp}'s side; keep retrying with backoff and watch their status page."
    ),
    Category.EXPIRED: (
        "Messages expired in the queue after repeated deferrals: find the deferral cause "
        "first, then consider a longer queue lifetime for {isp}."
    ),
    Category.SUPPRESSED: (
        "Check why the ESP suppressed these recipients (earlier bounces or complaints)."
    ),
    Category.UNKNOWN: "Read the top replies below; the classifier did not recognise them.",
}


def recommend(cause: Category | None, isp_name: str) -> str:
    """The recommended action for a cause at one ISP."""
    if cause is None or cause is Category.DELIVERED:
        return ""
    return _ACTIONS.get(cause, _ACTIONS[Category.UNKNOWN]).format(isp=isp_name)


#: The spam-complaint rate each provider asks bulk senders to stay under, with its source.
#: Gmail and Yahoo published theirs with the bulk-sender requirements in force since
#: February 2024; the others publish no number, and 0.3 % is the line the industry reads
#: for them too.
COMPLAINT_LIMITS: dict[str, tuple[float, str]] = {
    "gmail": (
        0.003,
        "Gmail's sender guidelines: keep the spam rate in Postmaster Tools below 0.10 %, "
        "never reach 0.30 %",
    ),
    "yahoo": (
        0.003,
        "Yahoo's sender best practices: keep the spam complaint rate below 0.3 %",
    ),
}
DEFAULT_COMPLAINT_LIMIT = (
    0.003,
    "no published limit; 0.3 % is Gmail's and Yahoo's, which the industry applies to all",
)


def complaint_limit(isp: str) -> tuple[float, str]:
    """(limit, where it comes from) of the complaint rate at one ISP."""
    return COMPLAINT_LIMITS.get(isp, DEFAULT_COMPLAINT_LIMIT)


def complaint_actions(isp_name: str, top_campaign: str | None) -> str:
    """The recommended actions of a complaint alert, in the order they help."""
    campaign = f" (top: {top_campaign})" if top_campaign else ""
    return (
        f"Suppress every complainer at once: each further mail to them is another complaint "
        f"to {isp_name}. Check the list source and consent of the campaign with the most "
        f"complaints{campaign}: purchased, old or co-registered addresses complain most. "
        "Make sure RFC 8058 one-click unsubscribe works (List-Unsubscribe and "
        "List-Unsubscribe-Post headers, DKIM-signed): people who cannot leave press spam."
    )

"""``bouncewatch classify``: what each reply on stdin means, one JSON line per input line.

Input, one per line: an event in any format ``delivery.adapters`` reads (bouncewatch JSON,
KumoMTA, SES, SendGrid, Mailgun, Postmark, PowerMTA CSV, Postfix log), or the plain reply
form ``{"code": 421, "enhanced": "4.7.28", "text": "...", "recipient": "gmail.com"}`` where
``recipient`` may be an address, a bare domain, or absent (then ``isp`` is null), and
``mx_host`` and ``status`` may be added.

Output, in input order, at least one line per input line, each with ``line`` (from 1):
- per event: ``recipient``, ``outcome``, ``bounce_type``, ``category``, ``reason``, ``isp``,
  ``isp_code`` (and ``rule`` with ``--explain``: the id of the rule that decided, null when
  none did); a line holding several events (an SES bounce to three recipients) gives several;
- a line that cannot be read: ``error`` (naming the field), ``field``, ``format``; the run
  goes on;
- per feedback event (a complaint from an ARF report, a KumoMTA Feedback or PowerMTA ``f``
  record, an SES Complaint, a SendGrid spamreport, a Mailgun complained, a Postmark
  SpamComplaint): ``recipient``, ``feedback_type``, ``complaint`` (true for abuse, fraud,
  virus and other; false for not-spam, opt-out, auth-failure, counted apart), ``isp``,
  ``event_time``, ``sent_at``, ``sender``, ``sending_domain``, ``source_ip``, ``tenant``,
  ``campaign``, ``message_id``, ``reporter`` and ``format``;
- a line with no delivery attempt and no feedback (an open, a Postfix qmgr line, a CSV
  header, a blank line): ``skipped``.
The exit status is 0 when stdin was read to the end, whatever the lines held.

Files given as arguments are read instead of stdin. A bounce mail or a feedback report
(``--format dsn`` or ``arf``, or a file that opens with a mail's header block under
``auto``) is read whole, an ``.mbox`` file as many mails: one line per recipient it reports
on (per complainer for a feedback report, with the feedback fields above), with ``file``,
``mail`` (its place in the file, from 1), ``recipient`` and the fields above; a mail that is
not a bounce (an auto-reply, a challenge, a read receipt) gives one line with ``skipped``
saying why. Other files are read line by line as stdin is, each answer carrying ``file``.
With ``--format dsn`` (or ``arf``) and no file, stdin is read as one mail (or an mbox).

``--evaluate LABELLED.jsonl`` scores the classifier instead: each line is one classify
reads plus ``expected`` ({"outcome": ..., "bounce_type": ..., "category": ...}, any of the
three); it prints the accuracy of each, per-category precision and recall, and every
confusion with its first example and the rule that decided (``--json`` for the report as
JSON). Exit status 0 when the file was read, 2 when it could not be.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from pydantic import TypeAdapter, ValidationError

from bouncewatch.commands.common import load_settings
from delivery.adapters import (
    FORMATS,
    MAIL_FORMATS,
    decode_mails,
    detect,
    format_help,
    reads_mails,
)
from delivery.adapters.common import loads, validation_reason
from delivery.classify import load_classifier
from delivery.evaluation import LABEL_KEYS, LabelError, Scorer, parse_expected, render_text
from delivery.isp import load_resolver
from delivery.pipeline import ClassifiedEvent, EventReader
from delivery.rules_table import RulesFileError
from delivery.types import Classification
from schemas.event import DeliveryEvent, FeedbackEvent, SmtpReply
from schemas.vocabulary import BounceType, Category, Outcome, SourceStatus

#: The keys of the plain reply form; any of the first three marks a line as one.
PLAIN_KEYS = frozenset({"code", "enhanced", "text", "recipient", "mx_host", "status"})
_PLAIN_MARKS = ("code", "enhanced", "text")
# the plain form's own names for the event fields that validation errors report
_PLAIN_ORIGIN = {"reply.code": "code", "reply.enhanced": "enhanced", "reply.text": "text"}
# the plain form has no time; validation needs one and the output never shows it
_NO_TIME = datetime(1970, 1, 1, tzinfo=UTC)
_STATUS: TypeAdapter[SourceStatus | None] = TypeAdapter(SourceStatus | None)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "classify",
        help="classify SMTP replies or events read on stdin: one JSON line per input line",
        description=(__doc__ or "").split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--format",
        default="auto",
        choices=("auto", *FORMATS),
        help="input format (default: auto; plain replies are always read). " + format_help(),
    )
    parser.add_argument(
        "--rules", type=Path, help="extra reply rules YAML, taking precedence over packaged ones"
    )
    parser.add_argument(
        "--explain", action="store_true", help="add 'rule': the id of the rule that decided"
    )
    parser.add_argument(
        "paths",
        nargs="*",
        type=Path,
        metavar="PATH",
        help="files to read instead of stdin: bounce mails (.eml, .mbox) or event files",
    )
    parser.add_argument(
        "--evaluate",
        type=Path,
        metavar="LABELLED.jsonl",
        help="score the classifier on labelled lines (classify's input plus 'expected'); "
        "'-' reads stdin",
    )
    parser.add_argument(
        "--json", action="store_true", help="with --evaluate: print the report as JSON"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # The worker's settings, so that a reply reads as the worker reads it.
    settings = load_settings()
    rules = args.rules or settings.reply_rules_file
    try:
        classifier = load_classifier(rules) if rules else None
        resolver = load_resolver(settings.isp_overrides_file, unknown=settings.isp_unknown)
    except (RulesFileError, OSError, ValueError) as exc:
        print(f"bouncewatch classify: {exc}", file=sys.stderr)
        return 2
    reader = EventReader(args.format, classifier, resolver)
    if args.evaluate is not None:
        if args.paths:
            print("bouncewatch classify: --evaluate reads its own file; no PATH", file=sys.stderr)
            return 2
        return _evaluate(args.evaluate, reader, as_json=args.json)
    try:
        if args.paths or args.format in MAIL_FORMATS:
            classify_files(args.paths or [Path("-")], sys.stdout, reader, explain=args.explain)
        else:
            classify_stream(sys.stdin.buffer, sys.stdout, reader, explain=args.explain)
    except BrokenPipeError:
        # the reader went away (| head): not an error; keep Python from complaining at exit
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
    return 0


def classify_files(
    paths: Iterable[Path], out: IO[str], reader: EventReader, *, explain: bool = False
) -> int:
    """Write the answers for each file: a bounce mail (or mbox) per recipient, any other
    file per line. Returns the number of error lines."""
    errors = 0
    for path in paths:
        name = str(path)
        try:
            data = sys.stdin.buffer.read() if name == "-" else path.read_bytes()
        except OSError as exc:
            errors += 1
            reason = f"cannot read: {exc.strerror or exc}"
            out.write(json.dumps({"file": name, "error": reason, "field": None, "format": None}))
            out.write("\n")
            continue
        if reads_mails(reader.fmt, data):
            errors += _classify_mails(name, data, out, reader, explain)
        else:
            lines = EventReader(reader.fmt, reader.classifier, reader.resolver)
            errors += classify_stream(
                data.splitlines(keepends=True), out, lines, explain=explain, file=name
            )
    out.flush()
    return errors


def _classify_mails(
    name: str, data: bytes, out: IO[str], reader: EventReader, explain: bool
) -> int:
    errors = 0
    for mail in decode_mails(data):
        head: dict[str, Any] = {"file": name, "mail": mail.number}
        answers: list[dict[str, Any]] = []
        if mail.skipped is not None:
            answers.append({**head, "skipped": mail.skipped})
        for event in mail.decoded.events:
            answers.append({**head, **_fields(reader.event(event), explain)})
        for feedback in mail.decoded.feedback:
            isp = reader.resolver.resolve(feedback.recipient_domain, feedback.mx_host)
            answers.append({**head, **feedback_answer(feedback, isp.key)})
        for error in mail.decoded.errors:
            errors += 1
            answers.append(
                {**head, "error": error.reason, "field": error.field, "format": error.format}
            )
        for answer in answers:
            out.write(json.dumps(answer, ensure_ascii=False) + "\n")
    return errors


def classify_stream(
    lines: Iterable[bytes | str],
    out: IO[str],
    reader: EventReader,
    *,
    explain: bool = False,
    file: str | None = None,
) -> int:
    """Write the answer lines for every input line; returns the number of error lines.
    ``file`` names the file the lines come from, in every answer."""
    errors = 0
    for number, raw in enumerate(lines, start=1):
        if isinstance(raw, bytes):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                errors += 1
                reason = f"line is not UTF-8: byte {exc.start}: {exc.reason}"
                answer = {"line": number, "error": reason, "field": None, "format": None}
                out.write(json.dumps(answer) + "\n")
                continue
        else:
            line = raw
        try:
            answers = classify_line(line, number, reader, explain=explain)
        except Exception as exc:
            # A line that finds a bug must not end the run. Only the type: the exception's
            # text may quote the line, which can be megabytes.
            reason = f"could not be read: {type(exc).__name__}"
            answers = [{"line": number, "error": reason, "field": None, "format": None}]
        for answer in answers:
            errors += "error" in answer
            if file is not None:
                answer = {"file": file, **answer}
            out.write(json.dumps(answer, ensure_ascii=False) + "\n")
    out.flush()
    return errors


def classify_line(
    line: str, number: int, reader: EventReader, *, explain: bool = False
) -> list[dict[str, Any]]:
    """The answers for one input line (never empty, never raises on bad input)."""
    stripped = line.strip()
    if not stripped:
        return [{"line": number, "skipped": "blank line"}]
    plain = _plain_record(stripped)
    if plain is not None:
        return [_plain(plain, number, reader, explain)]
    read = reader.read_line(line)
    answers: list[dict[str, Any]] = [_event_answer(number, e, explain) for e in read.events]
    answers.extend({"line": number, **feedback_answer(f.event, f.isp.key)} for f in read.feedback)
    answers.extend(
        {"line": number, "error": e.reason, "field": e.field, "format": e.format}
        for e in read.errors
    )
    if not answers:
        answers.append({"line": number, "skipped": "no delivery attempt or feedback on this line"})
    return answers


def _plain_record(stripped: str) -> dict[str, Any] | None:
    """The object when the line is the plain reply form, else None (read as an event)."""
    if not stripped.startswith("{") or '"event_time"' in stripped:
        return None
    try:
        value = loads(stripped)
    except ValueError:
        return None  # the adapters report it, with their wording
    if not isinstance(value, dict) or not any(key in value for key in _PLAIN_MARKS):
        return None
    if detect(value) is not None:
        return None  # an ESP record that happens to carry a "text" or "code"
    return value


def _plain(
    record: dict[str, Any], number: int, reader: EventReader, explain: bool
) -> dict[str, Any]:
    unknown = sorted(set(record) - PLAIN_KEYS)
    if unknown:
        expected = ", ".join(sorted(PLAIN_KEYS))
        return _error(
            number,
            f"unknown field(s) {', '.join(unknown)}; expected some of {expected}",
            unknown[0],
        )
    reply = {key: record[key] for key in _PLAIN_MARKS if key in record}
    if "recipient" not in record:
        try:
            smtp = SmtpReply.model_validate(reply)
        except ValidationError as exc:
            reason, field = validation_reason(exc, {}, "")
            return _error(number, reason, field)
        try:
            status = _STATUS.validate_python(record.get("status"))
        except ValidationError as exc:
            detail = exc.errors(include_url=False)[0]
            return _error(number, f"status: {detail['msg']} (got {record['status']!r})", "status")
        classification = reader.classifier.classify(smtp.code, smtp.enhanced, smtp.text, status)
        return _answer(number, None, classification, None, explain)
    draft = {
        "event_time": _NO_TIME,
        "recipient": record["recipient"],
        "mx_host": record.get("mx_host"),
        "status": record.get("status"),
        "reply": reply,
    }
    try:
        event = DeliveryEvent.model_validate(draft)
    except ValidationError as exc:
        reason, field = validation_reason(exc, _PLAIN_ORIGIN, "")
        return _error(number, reason, field)
    return _event_answer(number, reader.event(event), explain)


def feedback_answer(event: FeedbackEvent, isp: str) -> dict[str, Any]:
    """The fields classify prints for one feedback event."""
    return {
        "recipient": event.recipient,
        "feedback_type": event.feedback_type,
        "complaint": event.is_complaint,
        "isp": isp,
        "event_time": event.event_time.isoformat(),
        "sent_at": event.sent_at.isoformat() if event.sent_at else None,
        "sender": event.sender,
        "sending_domain": event.sending_domain,
        "source_ip": event.source_ip,
        "tenant": event.tenant,
        "campaign": event.campaign,
        "message_id": event.message_id,
        "reporter": event.reporter,
        "format": event.source_format,
    }


def _error(number: int, reason: str, field: str | None) -> dict[str, Any]:
    return {"line": number, "error": reason, "field": field, "format": "plain"}


def _event_answer(number: int, classified: ClassifiedEvent, explain: bool) -> dict[str, Any]:
    event, classification, isp = classified
    return _answer(number, event.recipient, classification, isp.key, explain)


def _fields(classified: ClassifiedEvent, explain: bool) -> dict[str, Any]:
    event, classification, isp = classified
    answer = _answer(0, event.recipient, classification, isp.key, explain)
    del answer["line"]
    return answer


def _answer(
    number: int,
    recipient: str | None,
    c: Classification,
    isp: str | None,
    explain: bool,
) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "line": number,
        "recipient": recipient,
        "outcome": c.outcome.value,
        "bounce_type": c.bounce_type.value,
        "category": c.category.value,
        "reason": c.reason,
        "isp": isp,
        "isp_code": c.isp_code,
    }
    if explain:
        answer["rule"] = c.rule_id
    return answer


def _evaluate(path: Path, reader: EventReader, *, as_json: bool) -> int:
    try:
        if str(path) == "-":
            scorer = evaluate_stream(sys.stdin.buffer, reader)
        else:
            with path.open("rb") as lines:
                scorer = evaluate_stream(lines, reader)
    except OSError as exc:
        print(f"bouncewatch classify: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    report = scorer.report()
    sys.stdout.write(
        json.dumps(report, ensure_ascii=False) + "\n" if as_json else render_text(report)
    )
    return 0


def evaluate_stream(lines: Iterable[bytes | str], reader: EventReader) -> Scorer:
    """Score every labelled line: what classify answers for it against its ``expected``."""
    scorer = Scorer()
    for number, raw in enumerate(lines, start=1):
        try:
            line = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError as exc:
            scorer.error(number, f"line is not UTF-8: byte {exc.start}: {exc.reason}")
            continue
        if not line.strip():
            continue
        try:
            record = loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict) or "expected" not in record:
            scorer.error(number, "not a labelled line: a JSON object with 'expected' is needed")
            continue
        try:
            expected = parse_expected(record["expected"])
        except LabelError as exc:
            scorer.error(number, str(exc))
            continue
        unlabelled = {key: value for key, value in record.items() if key not in LABEL_KEYS}
        text = unlabelled.get("text")
        shown = text if isinstance(text, str) else json.dumps(unlabelled)[:200]
        try:
            answers = classify_line(json.dumps(unlabelled), number, reader, explain=True)
        except Exception as exc:
            answers = [{"error": f"could not be read: {type(exc).__name__}"}]
        for answer in answers:
            if "error" in answer or "skipped" in answer:
                scorer.error(number, str(answer.get("error") or answer.get("skipped")))
                continue
            scorer.add(expected, _classification(answer), shown, number)
    return scorer


def _classification(answer: dict[str, Any]) -> Classification:
    return Classification(
        outcome=Outcome(answer["outcome"]),
        bounce_type=BounceType(answer["bounce_type"]),
        category=Category(answer["category"]),
        reason=answer["reason"],
        isp_code=answer["isp_code"],
        rule_id=answer.get("rule"),
    )

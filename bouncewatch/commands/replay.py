"""``bouncewatch replay EVENTS --rules RULES``: the alerts a file of events would have raised.

The events go through the same core as the live worker (classification, ISP resolution,
buckets, rules, alert state) in event-time order; see ``alerts.replay``. The whole file is
read and sorted in memory first: fine up to a few million events (a few GB).
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, TextIO, cast

from tqdm import tqdm

from aggregation.ingest import Engine
from aggregation.metrics import parse_metric
from alerts.replay import Observation, Replay, observe, observe_feedback
from alerts.rules import RulesError, RuleSet, load_default_rules, load_rules
from bouncewatch.commands.common import load_settings
from schemas.alert import AlertTransition, TransitionKind
from schemas.durations import format_duration

#: Files above this size show a progress bar on a terminal.
PROGRESS_MIN_BYTES = 20 * 1024 * 1024
_PROGRESS_EVERY = 20_000


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="backtest rules on a file of events: print the alert transitions they produce",
    )
    parser.add_argument("events", help="events file (.gz accepted; - for stdin)")
    parser.add_argument("--rules", help="YAML rules file (default: the packaged default rules)")
    from delivery.adapters import INPUT_FORMATS, format_help  # the registry: no edit here

    parser.add_argument(
        "--format",
        default="auto",
        choices=INPUT_FORMATS,
        help="input format (default: auto, detected per line; bouncewatch is JSONL). "
        + format_help(),
    )
    parser.add_argument(
        "--output", choices=("table", "jsonl"), default="table", help="table (default) or jsonl"
    )
    parser.add_argument("--no-pending", action="store_true", help="leave out pending transitions")
    parser.add_argument(
        "--report",
        metavar="HTML",
        help="also write a self-contained HTML report: each rule's metric per ISP against its "
        "thresholds, volume, alert periods, evidence (needs the report extra: plotly)",
    )
    parser.add_argument(
        "--compare",
        metavar="RULES_B",
        help="with --report: replay a second rules file too and show both side by side, with "
        "what fires in one and not the other",
    )
    parser.add_argument(
        "--report-points",
        type=int,
        default=1500,
        metavar="N",
        help="most points per chart; longer runs are binned (default: 1500)",
    )
    parser.add_argument(
        "--suppressions",
        metavar="OUT_JSONL",
        help="also write the suppression list these events make (list hygiene), one "
        "{key, value} record per line, as the worker publishes them on the suppressions topic",
    )
    parser.add_argument(
        "--progress",
        choices=("auto", "always", "never"),
        default="auto",
        help="progress bar on stderr: auto shows it for large files on a terminal",
    )
    parser.set_defaults(func=run)


class _Progress:
    """replay's progress bar on stderr (tqdm), driven by bytes read from the file on disk:
    the compressed size of a ``.gz``, so the bar is not fooled by the compression ratio."""

    def __init__(self, raw: IO[bytes] | None, total: int, enabled: bool) -> None:
        self.raw = raw
        self.bar = tqdm(
            total=total or None,
            desc="reading",
            unit="B",
            unit_scale=True,
            file=sys.stderr,
            disable=not enabled,
        )

    def update(self, events: int, done: bool = False) -> None:
        if self.bar.disable or (events % _PROGRESS_EVERY and not done):
            return
        if self.raw is not None and not self.raw.closed:
            self.bar.update(self.raw.tell() - self.bar.n)
        self.bar.set_postfix_str(f"{events:,} events", refresh=False)
        if done:
            if self.bar.total:
                self.bar.update(self.bar.total - self.bar.n)
            self.bar.close()


def _open(path: str) -> tuple[TextIO, IO[bytes] | None, int]:
    if path == "-":
        return sys.stdin, None, 0
    raw = Path(path).open("rb")  # noqa: SIM115 - closed by the caller through the text wrapper
    total = os.fstat(raw.fileno()).st_size
    stream: IO[bytes] = raw
    if path.endswith(".gz"):
        stream = cast(IO[bytes], gzip.GzipFile(fileobj=raw))
    return io.TextIOWrapper(stream, encoding="utf-8", errors="replace"), raw, total


def read_observations(
    path: str,
    fmt: str,
    progress: str,
    engine: Engine | None = None,
    suppressions: list[dict[str, Any]] | None = None,
) -> tuple[list[Observation], dict[str, str], int]:
    """Decode, classify and resolve every event of the file; (observations, ISP names, errors).

    ``engine`` (the settings' by default) classifies and resolves as the worker does. The
    file is one input: events too far ahead of the clock or behind the file's progress are
    refused as the worker refuses them (``aggregation.watermark.InputProgress``). With list
    hygiene on, the addresses the events newly suppress are observations too, decided in the
    file's order as the worker decides them (``hygiene.replay.Twin``). ``suppressions``, if
    given, receives the suppressions topic's records those decisions make, ``{"key": ...,
    "value": ...}`` in order (``replay --suppressions``; with hygiene off, by the default
    graduation rule, and then not counted in the observations).
    """
    from aggregation.watermark import InputProgress
    from alerts.replay import observe_suppression
    from delivery.adapters import Decoded, StreamDecoder, decode_mails, reads_mails
    from hygiene.observe import suppression_labels
    from hygiene.replay import Twin

    engine = engine or Engine.from_settings(load_settings(), mx_lookup=False)
    twin = Twin(engine) if engine.hygiene is not None or suppressions is not None else None
    inputs = InputProgress(engine.time_bounds)
    now = time.time()
    text, raw, total = _open(path)
    enabled = progress == "always" or (
        progress == "auto" and total >= PROGRESS_MIN_BYTES and sys.stderr.isatty()
    )
    bar = _Progress(raw, total, enabled)
    observations: list[Observation] = []
    names: dict[str, str] = {}
    errors = 0

    def take(decoded: Decoded, where: str) -> None:
        nonlocal errors
        decoded, _ = inputs.admit(decoded, path, now)
        for error in decoded.errors:
            errors += 1
            if errors <= 10:
                print(f"{where}: skipped: {error.reason}", file=sys.stderr)
        new = [observe(e, engine.classifier, engine.resolver) for e in decoded.events]
        new += [observe_feedback(f, engine.resolver) for f in decoded.feedback]
        if twin is not None:
            decisions = twin.feed(decoded)
            if suppressions is not None:
                suppressions.extend({"key": d.key, "value": d.record} for d, _ in decisions)
            if engine.hygiene is not None:
                new += [
                    observe_suppression(
                        obs[2], obs[3], str(d.record["reason"]), suppression_labels(obs)
                    )
                    for d, obs in decisions
                    if d.record is not None
                ]
        for obs in new:
            if obs.isp not in names:
                names[obs.isp] = engine.isp_name(obs.isp)
        observations.extend(new)
        bar.update(len(observations))

    with text:
        binary: Any = getattr(text, "buffer", None)
        head = b""
        if hasattr(binary, "peek"):
            head = binary.peek(8192)[:8192]
        elif binary is not None and binary.seekable():
            head = binary.read(8192)
            binary.seek(0)
        if reads_mails(fmt, head):
            # Bounce mails and feedback reports are read whole: one mail, or an mbox of many.
            data = binary.read() if binary is not None else text.read().encode()
            skipped = 0
            for mail in decode_mails(data):
                take(mail.decoded, f"{path}: mail {mail.number}")
                skipped += mail.skipped is not None
            if skipped:
                print(f"{path}: {skipped} mails skipped: not bounces", file=sys.stderr)
        else:
            decoder = StreamDecoder(fmt)
            for number, line in enumerate(text, start=1):
                take(decoder.feed_line(line), f"{path}:{number}")
    bar.update(len(observations), done=True)
    if errors > 10:
        print(f"{path}: {errors} lines or items skipped in all", file=sys.stderr)
    return observations, names, errors


def _iter_sorted(observations: list[Observation]) -> Iterator[Observation]:
    observations.sort(key=lambda o: o.t)
    yield from observations


def format_row(t: AlertTransition) -> list[str]:
    group = "".join(f" {k}={v}" for k, v in t.group.items())
    limit = ""
    if t.threshold is not None:
        limit = _fmt_value(t, t.threshold)
    elif t.baseline is not None:
        limit = "base " + _fmt_value(t, t.baseline)
    return [
        t.event_time.strftime("%Y-%m-%d %H:%M"),
        t.rule,
        t.isp + group,
        t.kind.value,
        t.severity.value,
        _fmt_value(t, t.value),
        limit,
        f"{t.attempts:,}",
        format_duration(t.window_seconds),
        t.cause.value if t.cause else "",
    ]


def _fmt_value(t: AlertTransition, value: float) -> str:
    return parse_metric(t.metric).format(value)


HEADER = ["event time (UTC)", "rule", "key", "transition", "severity", "value", "limit",
          "attempts", "window", "cause"]  # fmt: skip


def print_table(transitions: list[AlertTransition]) -> None:
    rows = [HEADER] + [format_row(t) for t in transitions]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    for index, row in enumerate(rows):
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if index == 0:
            print("  ".join("-" * w for w in widths))


def run(args: argparse.Namespace) -> int:
    if args.compare and not args.report:
        print("bouncewatch replay: --compare needs --report", file=sys.stderr)
        return 2
    try:
        rules: RuleSet = load_rules(args.rules) if args.rules else load_default_rules()
        rules_b: RuleSet | None = load_rules(args.compare) if args.compare else None
    except RulesError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    engine = Engine.from_settings(load_settings(), rules, mx_lookup=False)
    records: list[dict[str, Any]] | None = [] if args.suppressions else None
    try:
        observations, names, _errors = read_observations(
            args.events, args.format, args.progress, engine, records
        )
    except OSError as exc:
        print(f"bouncewatch replay: {args.events}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if records is not None:
        try:
            with Path(args.suppressions).open("w", encoding="utf-8") as out:
                for record in records:
                    out.write(json.dumps(record, ensure_ascii=False) + "\n")
        except OSError as exc:
            print(f"bouncewatch replay: {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
            return 1
        print(f"{len(records):,} suppression records: {args.suppressions}", file=sys.stderr)
    transitions: list[AlertTransition] = []

    def keep(transition: AlertTransition) -> None:
        if args.no_pending and transition.kind is TransitionKind.PENDING:
            return
        transitions.append(transition)
        if args.output == "jsonl":
            sys.stdout.write(json.dumps(transition.model_dump(mode="json")) + "\n")

    backtest = Replay(rules, names, on_transition=keep)
    backtest.feed(_iter_sorted(observations))
    result = backtest.finish()
    if args.output == "table":
        if transitions:
            print_table(transitions)
        else:
            print("no alert transitions")
    stats = result.stats
    print(
        f"{stats.events:,} events, {stats.keys} keys, {len(transitions)} transitions",
        file=sys.stderr,
    )
    if args.report:
        return _write_report(args, observations, names, rules, result.transitions, rules_b)
    return 0


def _write_report(
    args: argparse.Namespace,
    observations: list[Observation],
    names: dict[str, str],
    rules: RuleSet,
    transitions: list[AlertTransition],
    rules_b: RuleSet | None,
) -> int:
    """The --report output step: the observations (now in event-time order) and the
    transitions of each rule set go to alerts.report."""
    from alerts.report import ReportDependencyError, RuleRun, replay_rules, write_report

    source_a = args.rules or "default rules"
    runs = [RuleRun("A" if rules_b else "rules", source_a, rules, transitions)]
    if rules_b is not None:
        runs.append(RuleRun("B", args.compare, rules_b, replay_rules(rules_b, names, observations)))
    try:
        path = write_report(
            args.report,
            observations,
            runs,
            names,
            source=args.events,
            max_points=max(args.report_points, 10),
        )
    except ReportDependencyError as exc:
        print(f"bouncewatch replay: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"bouncewatch replay: {args.report}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    size = path.stat().st_size
    print(f"report: {path} ({size / 1e6:.1f} MB)", file=sys.stderr)
    return 0

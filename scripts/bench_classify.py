"""Events per second through decode → classify → resolve (``delivery.pipeline.EventReader``).

    .venv/bin/python scripts/bench_classify.py [--events N] [--repeat R] [--delivered 0.8]

Traffic: ``--delivered`` share (default 0.85) of 250 replies, each with its own message id
as receivers write them; the rest the labelled failure replies of
``tests/data/reply_samples.yaml`` (documented texts from about 45 ISPs and filters) at the
ISPs' domains, with a fresh per-message id, host and time where the ISP adds one (Gmail's
"<id> - gsmtp", Microsoft's "[host time id]"), the recipient's own address where the text
names it, and one of eight sending IPs where it names the IP. So exact texts rarely repeat
and the classifier's normalized cache does the work, as in production; the *miss* figures
show what a text never seen costs.

The collector is tuned as the worker tunes it (``bouncewatch.commands.worker._tune_gc`` is
called after the inputs are built, as the worker calls it after start-up).

Inputs measured, each for adapter only, classify only (cache hit), resolve only (cache hit)
and end to end:
  (a) native bouncewatch events, one per Kafka message;
  (b) native events in JSON-array batches of 100;
  (c) a mix of formats: native single events, KumoMTA records built from the same replies,
      and the documented SES / SendGrid / Mailgun / Postmark / PowerMTA / Postfix samples of
      ``tests/data/formats``.
Figures are the median of ``--repeat`` runs (the machine is shared: the spread is printed).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import string
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bouncewatch.commands.worker import _tune_gc  # noqa: E402
from delivery.adapters import decode_message  # noqa: E402
from delivery.classify import ReplyClassifier, default_classifier, normalize_text  # noqa: E402
from delivery.pipeline import EventReader  # noqa: E402
from tests.support.reply_ids import gmail_id, microsoft_trailer, pick  # noqa: E402

sys.path.insert(0, str(ROOT / "scripts"))
from bench.machine import describe  # noqa: E402

SAMPLES = ROOT / "tests" / "data" / "reply_samples.yaml"
FORMATS = ROOT / "tests" / "data" / "formats"
_RNG = random.Random(20261124)
_DOC_IP = re.compile(r"\b(?:192\.0\.2|198\.51\.100|203\.0\.113)\.\d{1,3}\b")
_ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_GMAIL_ID = re.compile(r"[0-9a-f]{13}-[0-9a-f]{10,11}si\d+[a-z]{3}\.\d+|[0-9a-f-]+si\d+\.\d+")


def delivered_text(recipient: str) -> str:
    """A 250 reply with its per-message id, in the forms the big receivers use."""
    kind = _RNG.randrange(4)
    if kind == 0:
        return f"250 2.0.0 OK  {_RNG.randint(10**9, 2 * 10**9)} {gmail_id(_RNG)} - gsmtp"
    if kind == 1:
        return (
            f"250 2.6.0 <{pick(_RNG, string.digits, 14)}.{pick(_RNG, string.ascii_uppercase, 6)}"
            f"@mail.shop.example> [InternalId={pick(_RNG, string.digits, 12)}, Hostname="
            f"{microsoft_trailer(_RNG)[1:].split()[0]}] Queued mail for delivery"
        )
    if kind == 2:
        return (
            f"250 ok {_RNG.randint(10**9, 2 * 10**9)} qp {_RNG.randint(1000, 99999)} <{recipient}>"
        )
    queue_id = pick(_RNG, string.digits, 1) + pick(_RNG, string.ascii_letters + string.digits, 12)
    return f"250 2.0.0 Ok: queued as {queue_id}"


def failure_text(isp: str, text: str, recipient: str, source_ip: str) -> str:
    """A labelled reply as one message would get it: fresh ids where the ISP writes one."""
    text = _DOC_IP.sub(source_ip, text)
    text = _ADDRESS.sub(recipient, text)
    if text.rstrip().endswith("- gsmtp"):
        if _GMAIL_ID.search(text):
            text = _GMAIL_ID.sub(gmail_id(_RNG), text)
        else:
            text = text.rstrip()[: -len("- gsmtp")] + f"{gmail_id(_RNG)} - gsmtp"
    elif isp == "microsoft" and "outlook.com]" not in text:
        text = f"{text} {microsoft_trailer(_RNG)}"
    return text


def isp_domains() -> dict[str, str]:
    """One recipient domain per packaged ISP that lists domains."""
    data = yaml.safe_load((ROOT / "delivery" / "data" / "isps.yaml").read_text("utf-8"))
    out: dict[str, str] = {}
    for key, spec in data.items():
        domains = spec.get("domains") if isinstance(spec, dict) else spec
        plain = [d for d in domains or [] if isinstance(d, str) and "*" not in d and ":" not in d]
        if plain:
            out[key] = plain[0]
    return out


def replies() -> list[tuple[str, int | None, str | None, str]]:
    """(isp, code, enhanced, text) of every labelled sample that names an ISP and has a code."""
    data = yaml.safe_load(SAMPLES.read_text("utf-8"))
    return [
        (s["isp"], s.get("code"), s.get("enhanced"), s["text"])
        for s in data["samples"]
        if s.get("isp") and s.get("code") and s.get("text")
    ]


def native_events(count: int, delivered: float) -> list[dict[str, Any]]:
    domains = isp_domains()
    samples = [s for s in replies() if s[1] is not None and s[1] >= 400]
    keys = sorted(domains)
    events = []
    every = round(1 / (1 - delivered)) if delivered < 1 else 0
    for i in range(count):
        source_ip = f"192.0.2.{i % 8 + 10}"
        if every and i % every == 0:
            isp, code, enhanced, text = samples[(i // every) % len(samples)]
            domain = domains.get(isp, domains[keys[i % len(keys)]])
            recipient = f"user{i % 997}@{domain}"
            text = failure_text(isp, text, recipient, source_ip)
        else:
            domain = domains[keys[i % len(keys)]]
            recipient = f"user{i % 997}@{domain}"
            code, enhanced, text = 250, "2.0.0", delivered_text(recipient)
        reply: dict[str, Any] = {"code": code, "text": text}
        if enhanced:
            reply["enhanced"] = enhanced
        events.append(
            {
                "event_time": f"2026-11-24T06:{(i // 60) % 60:02d}:{i % 60:02d}Z",
                "recipient": recipient,
                "sender": "news@mail.shop.example",
                "source_ip": source_ip,
                "reply": reply,
                "status": "delivered" if code and code < 300 else None,
            }
        )
    return events


def kumomta(event: dict[str, Any], template: dict[str, Any]) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(json.dumps(template))
    code = event["reply"]["code"]
    record["type"] = "Delivery" if code < 300 else "Bounce" if code >= 500 else "TransientFailure"
    record["recipient"] = event["recipient"]
    record["response"]["code"] = code
    record["response"]["content"] = event["reply"]["text"]
    record["response"].pop("enhanced_code", None)
    return record


def documented_samples() -> list[bytes]:
    """Each delivery-attempt record of the other formats' samples, one message each."""
    out: list[bytes] = []
    for fmt in ("ses", "sendgrid", "mailgun", "postmark"):
        for path in sorted((FORMATS / fmt).glob("*.json")):
            value = json.loads(path.read_text("utf-8"))
            for item in value if isinstance(value, list) else [value]:
                payload = json.dumps(item).encode()
                if decode_message(payload).events:
                    out.append(payload)
    for path in (FORMATS / "powermta" / "acct.csv", FORMATS / "postfix" / "mail.log"):
        lines = path.read_text("utf-8").splitlines()
        head = lines[0] + "\n" if path.suffix == ".csv" else ""
        for line in lines:
            payload = (head + line).encode()
            if line != lines[0] and decode_message(payload).events:
                out.append(payload)
    return out


def timed(run: Callable[[], int], repeat: int) -> tuple[float, float, float]:
    """(median, min, max) events per second over ``repeat`` runs; one warm-up run first."""
    run()
    rates = []
    for _ in range(repeat):
        start = time.perf_counter()
        n = run()
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates), min(rates), max(rates)


def report(label: str, rates: tuple[float, float, float]) -> None:
    median, low, high = rates
    print(
        f"  {label:<44} {median:>11,.0f} ev/s  {1e6 / median:6.2f} us/ev"
        f"   (min {low:,.0f}, max {high:,.0f})"
    )


def bench_input(name: str, runs: Sequence[Sequence[bytes]], repeat: int) -> None:
    """Each timed run reads its own messages, so per-message ids never repeat across runs
    (an exact-text cache hit would flatter the figure: production never sees a text twice)."""
    reader = EventReader()
    decoded = [[decode_message(p) for p in payloads] for payloads in runs]
    errors = sum(len(d.errors) for run in decoded for d in run)
    if errors:
        raise SystemExit(f"{name}: {errors} decode errors in the benchmark input")
    events = [[e for d in run for e in d.events] for run in decoded]
    keys = [[(e.reply.code, e.reply.enhanced, e.reply.text, e.status) for e in r] for r in events]
    places = [[(e.recipient_domain, e.mx_host) for e in r] for r in events]
    first = keys[0]
    texts = len({k[2] for k in first})
    failures = [k for k in first if not (k[0] and 200 <= k[0] < 300)]
    normal = len({normalize_text(k[2]) for k in failures})
    isps = len({reader.resolver.resolve(*p).key for p in places[0]})
    print(
        f"{name}: {len(runs[0]):,} messages, {len(first):,} events per run "
        f"({len(failures) / len(first):.0%} not 2xx), {texts:,} distinct reply texts, "
        f"{normal} distinct failure texts once normalized, {isps} ISPs"
    )
    turn = {"adapter": 0, "classify": 0, "resolve": 0, "end_to_end": 0}

    def next_run(figure: str) -> int:
        turn[figure] += 1
        return turn[figure] % len(runs)

    def adapter() -> int:
        n = 0
        for payload in runs[next_run("adapter")]:
            n += len(decode_message(payload).events)
        return n

    def classify() -> int:
        classify_ = reader.classifier.classify
        run = keys[next_run("classify")]
        for key in run:
            classify_(*key)
        return len(run)

    def resolve() -> int:
        resolver = reader.resolver.resolve
        run = places[next_run("resolve")]
        for domain, mx in run:
            resolver(domain, mx)
        return len(run)

    def end_to_end() -> int:
        read = reader.read
        n = 0
        for payload in runs[next_run("end_to_end")]:
            n += len(read(payload).events)
        return n

    report("adapter only (decode + validate)", timed(adapter, repeat))
    report("classify only (warm caches)", timed(classify, repeat))
    report("resolve only (cache hit)", timed(resolve, repeat))
    report("end to end (EventReader.read)", timed(end_to_end, repeat))


def bench_misses(repeat: int) -> None:
    """The classifier alone: a repeated text, and a text with a per-message id (never repeats)."""
    classifier = default_classifier()
    samples = [(c, e, t, None) for _, c, e, t in replies() if c and c >= 400]
    for key in samples:
        classifier.classify(*key)

    def classifier_hit() -> int:
        for key in samples:
            classifier.classify(*key)
        return len(samples)

    isps = [isp for isp, c, _, _ in replies() if c and c >= 400]
    varied = [
        [
            (code, enhanced, failure_text(isp, text, "someone@example.com", "192.0.2.10"), status)
            for isp, (code, enhanced, text, status) in zip(isps, samples, strict=True)
        ]
        for _ in range(repeat + 1)
    ]
    runs = iter(varied)

    def unique_id() -> int:
        # each text as one message would carry it: the raw cache never hits
        for key in next(runs):
            classifier.classify(*key)
        return len(samples)

    table = classifier.table

    def cold() -> int:
        # a new classifier per text: normalization and the full (pre-filtered) rule scan
        for key in samples:
            ReplyClassifier(table, cache_size=4).classify(*key)
        return len(samples)

    print(f"classifier alone ({len(samples)} non-2xx sample texts):")
    report("repeated text (raw-reply cache hit)", timed(classifier_hit, repeat))
    report("text with fresh per-message ids (raw miss)", timed(unique_id, repeat))
    report("text never seen (cold: every cache misses)", timed(cold, repeat))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=20_000, help="events per input")
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per figure")
    parser.add_argument(
        "--delivered", type=float, default=0.85, help="share of 250 replies (default 0.85)"
    )
    args = parser.parse_args(argv)
    print(describe())
    print("gc tuned as the worker: bouncewatch.commands.worker._tune_gc()")
    print(f"median of {args.repeat} runs after one warm-up; delivered share {args.delivered}")
    template = json.loads((FORMATS / "kumomta" / "bounce.json").read_text("utf-8"))
    others = documented_samples()
    singles: list[list[bytes]] = []
    batches: list[list[bytes]] = []
    mixes: list[list[bytes]] = []
    # one set of messages per timed run and the warm-up, each with its own ids
    for _ in range(args.repeat + 1):
        events = native_events(args.events, args.delivered)
        single = [json.dumps(e, separators=(",", ":")).encode() for e in events]
        singles.append(single)
        batches.append(
            [
                json.dumps(events[i : i + 100], separators=(",", ":")).encode()
                for i in range(0, len(events), 100)
            ]
        )
        mix: list[bytes] = []
        for i, event in enumerate(events):
            if i % 20 < 12:  # 60 % native
                mix.append(single[i])
            elif i % 20 < 17:  # 25 % KumoMTA
                mix.append(json.dumps(kumomta(event, template)).encode())
            else:  # 15 % the other formats' documented samples
                mix.append(others[i % len(others)])
        mixes.append(mix)
    # As the worker does once started: freeze what lives for the run, collect less often.
    _tune_gc()
    bench_input("(a) native, one event per message", singles, args.repeat)
    bench_input("(b) native, batches of 100", batches, args.repeat)
    bench_input("(c) mix of formats", mixes, args.repeat)
    bench_misses(args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())

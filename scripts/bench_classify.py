"""Events per second through decode → classify → resolve (``delivery.pipeline.EventReader``).

    .venv/bin/python scripts/bench_classify.py [--events N] [--repeat R] [--delivered 0.8]

Traffic: the labelled replies of ``tests/data/reply_samples.yaml`` (documented texts from
about 30 ISPs) spread over recipients at the packaged ISPs' domains, plus ``--delivered``
share of 250 replies. Texts recur as they do in production, so the classifier's and the resolver's
cache are warm after the first pass; the *miss* figures show what a text never seen costs.

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
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from delivery.adapters import decode_message  # noqa: E402
from delivery.classify import default_classifier  # noqa: E402
from delivery.pipeline import EventReader  # noqa: E402

SAMPLES = ROOT / "tests" / "data" / "reply_samples.yaml"
FORMATS = ROOT / "tests" / "data" / "formats"
DELIVERED_TEXTS = (
    "250 2.0.0 OK  1795500003 - gsmtp",
    "250 2.6.0 Queued mail for delivery",
    "250 ok dirdel",
    "250 2.0.0 Ok: queued as 4Yc0R81XZ2z9v",
)


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    return (
        f"nproc={os.cpu_count()} cpu={model!r} python={platform.python_version()} "
        f"({platform.python_implementation()})"
    )


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
    samples = replies()
    keys = sorted(domains)
    events = []
    every = round(1 / (1 - delivered)) if delivered < 1 else 0
    for i in range(count):
        if every and i % every == 0:
            isp, code, enhanced, text = samples[(i // every) % len(samples)]
            domain = domains.get(isp, domains[keys[i % len(keys)]])
        else:
            code, enhanced, text = 250, "2.0.0", DELIVERED_TEXTS[i % len(DELIVERED_TEXTS)]
            domain = domains[keys[i % len(keys)]]
        reply: dict[str, Any] = {"code": code, "text": text}
        if enhanced:
            reply["enhanced"] = enhanced
        events.append(
            {
                "event_time": f"2026-11-24T06:{(i // 60) % 60:02d}:{i % 60:02d}Z",
                "recipient": f"user{i % 997}@{domain}",
                "sender": "news@mail.shop.example",
                "source_ip": f"192.0.2.{i % 8 + 10}",
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


def bench_input(name: str, payloads: Sequence[bytes], repeat: int) -> None:
    reader = EventReader()
    decoded = [decode_message(p) for p in payloads]
    errors = sum(len(d.errors) for d in decoded)
    if errors:
        raise SystemExit(f"{name}: {errors} decode errors in the benchmark input")
    events = [e for d in decoded for e in d.events]
    keys = [(e.reply.code, e.reply.enhanced, e.reply.text, e.status) for e in events]
    places = [(e.recipient_domain, e.mx_host) for e in events]
    texts = len({k[2] for k in keys})
    isps = len({reader.resolver.resolve(*p).key for p in places})
    print(
        f"{name}: {len(payloads):,} messages, {len(events):,} events, "
        f"{texts} distinct reply texts, {isps} ISPs"
    )

    def adapter() -> int:
        n = 0
        for payload in payloads:
            n += len(decode_message(payload).events)
        return n

    def classify() -> int:
        classify_ = reader.classifier.classify
        for key in keys:
            classify_(*key)
        return len(keys)

    def resolve() -> int:
        resolver = reader.resolver.resolve
        for domain, mx in places:
            resolver(domain, mx)
        return len(places)

    def end_to_end() -> int:
        read = reader.read
        n = 0
        for payload in payloads:
            n += len(read(payload).events)
        return n

    report("adapter only (decode + validate)", timed(adapter, repeat))
    report("classify only (cache hit)", timed(classify, repeat))
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

    counter = iter(range(10**12))

    def unique_id() -> int:
        # a fresh id each time, as Gmail's "- gsmtp" suffix carries: the raw cache never hits
        for code, enhanced, text, status in samples:
            classifier.classify(
                code, enhanced, f"{text} {next(counter):x}9q{7:02d} - gsmtp", status
            )
        return len(samples)

    print(f"classifier alone ({len(samples)} non-2xx sample texts):")
    report("repeated text (raw-reply cache hit)", timed(classifier_hit, repeat))
    report("text with a per-message id (raw cache miss)", timed(unique_id, repeat))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=20_000, help="events per input")
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per figure")
    parser.add_argument(
        "--delivered", type=float, default=0.8, help="share of 250 replies (default 0.8)"
    )
    args = parser.parse_args(argv)
    print(machine())
    print(f"median of {args.repeat} runs after one warm-up; delivered share {args.delivered}")
    events = native_events(args.events, args.delivered)
    singles = [json.dumps(e, separators=(",", ":")).encode() for e in events]
    batches = [
        json.dumps(events[i : i + 100], separators=(",", ":")).encode()
        for i in range(0, len(events), 100)
    ]
    template = json.loads((FORMATS / "kumomta" / "bounce.json").read_text("utf-8"))
    others = documented_samples()
    mix: list[bytes] = []
    for i, event in enumerate(events):
        if i % 20 < 12:  # 60 % native
            mix.append(singles[i])
        elif i % 20 < 17:  # 25 % KumoMTA
            mix.append(json.dumps(kumomta(event, template)).encode())
        else:  # 15 % the other formats' documented samples
            mix.append(others[i % len(others)])
    bench_input("(a) native, one event per message", singles, args.repeat)
    bench_input("(b) native, batches of 100", batches, args.repeat)
    bench_input("(c) mix of formats", mix, args.repeat)
    bench_misses(args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Fault figures (issue 15): the notification promises under outages and crashes, in numbers.

Each test drives a real ``bouncewatch worker`` process on the real broker through an incident
and prints one line per figure, ``FAULT-FIGURE <name>: ...``; run with ``-s`` to see them:

    pytest -s tests/integration/test_fault_figures.py

- Slack answering 503 for 2 minutes, then 429 with Retry-After for 1 minute, and the SMTP
  relay down for 2 minutes and restarted on its port, both during one incident (one worker,
  both receivers, one run: the two outages overlap as they would in a bad hour, and CI pays
  for them once): every transition delivered once afterwards, in order, none lost.
- The worker SIGKILLed 5 times at random moments while a notification is in flight: no
  transition lost, duplicates within the bound README's "Notifications" states.

The incident is synthetic: ``ISPS`` recipient domains (each its own ISP key,
``BOUNCEWATCH_ISP_UNKNOWN=domain``), each deferring 60 % of its mail for a minute of event
time, one after the other ten seconds apart; one threshold rule makes that one firing and one
resolved transition per domain. The feed is produced slice by slice in real time, so
transitions keep arriving during the outage and between the kills. Each transition is its
own message (``group_by: [rule, isp]``), so a Slack message is matched to its transition by
its text (rendered by the product's own renderer from the transition read back from the
alert topic) and a mail by its ``X-Bouncewatch-Alerts`` header.

Times are printed, never asserted: the machine is shared and slow on some days. The
notifier's retry backoff (5 s doubling to 5 minutes, alerts.pipeline.Backoff) is not a
setting, so after a 3-minute outage the first retry that finds Slack up may come a couple
of minutes after it ended; the figure shows how long.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kafka.admin import KafkaAdminClient, NewTopic

from alerts.render.slack_blocks import render_slack
from schemas.alert import AlertTransition
from tests.support.kafka_io import TopicReader, produce_batches
from tests.support.ports import free_port
from tests.support.slack_standin import TOKEN, SlackStandIn, rate_limited, server_error
from tests.support.smtp_server import SmtpServer
from tests.support.worker import WorkerProcess, isolated_env, metric_by

# Minutes of outages and restarts, past the suite's 300 s default.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

RULE = "fault-soft-bounce-rate"
CHANNEL = "#deliverability"
RECIPIENT = "postmaster@example.com"

RULES_YAML = f"""\
version: 1
settings:
  bucket: 10s
  # The feed arrives over minutes of wall clock but its event time is an hour ago, and
  # nothing in it is late: lateness only has to cover the slices' own order.
  allowed_lateness: 5m
  evaluation_delay: 0s
rules:
  - name: {RULE}
    type: threshold
    description: Fault-figure rule, soft bounces per recipient domain.
    metric: soft_bounce_rate
    comparison: ">="
    window: 30s
    min_attempts: 40
    value: 0.3
    severity: warning
"""

# One alert per message: a Slack post or a mail then names exactly one transition.
NOTIFY_YAML = f"""\
receivers:
  - name: deliverability
    slack_configs:
      - channel: "{CHANNEL}"
    email_configs:
      - to: [{RECIPIENT}]
route:
  receiver: deliverability
  group_by: [rule, isp]
  group_wait: 1s
"""

DEFERRED = {
    "code": 421,
    "enhanced": "4.7.28",
    "text": "421-4.7.28 Our system has detected an unusual rate of unsolicited mail.",
}
ACCEPTED = {"code": 250, "enhanced": "2.0.0", "text": "OK 1709366400 x1si1.12 - gsmtp"}

#: Attempts per second to each domain.
RATE = 2
#: Seconds of event time before the first domain's incident, each incident's length and the
#: step between two domains' incidents. With 10 s buckets and a 30 s window, domain i fires
#: at FIRST + 20 + STEP * i and resolves at FIRST + 80 + STEP * i.
FIRST, LENGTH, STEP = 60, 60, 10
#: Seconds of event time per slice of the feed.
SLICE = 10


@dataclass(frozen=True)
class StaggeredIncident:
    """``domains`` recipient domains, each deferring 60 % for LENGTH seconds in turn."""

    start: datetime
    domains: int

    @property
    def end(self) -> int:
        # The last resolution's bucket, and one more so the watermark passes it.
        return FIRST + STEP * (self.domains - 1) + LENGTH + 2 * SLICE + SLICE

    def domain(self, i: int) -> str:
        return f"isp{i:02d}.example"

    def events(self, since: int, until: int) -> list[dict[str, Any]]:
        out = []
        for tick in range(since * RATE, until * RATE):
            second = tick / RATE
            for i in range(self.domains):
                begin = FIRST + STEP * i
                deferred = begin <= second < begin + LENGTH and tick % 5 < 3
                n = tick * self.domains + i
                out.append(
                    {
                        "event_time": (self.start + timedelta(seconds=second)).isoformat(),
                        "recipient": f"user{n}@{self.domain(i)}",
                        "sender": "news@mail.shop.example",
                        "sending_domain": "mail.shop.example",
                        "source_ip": "192.0.2.10",
                        "reply": DEFERRED if deferred else ACCEPTED,
                        "status": "deferred" if deferred else "delivered",
                        "message_id": f"<{n}@mail.shop.example>",
                    }
                )
        return out


def incident(domains: int) -> StaggeredIncident:
    # An hour ago, on a minute boundary, so the 10 s buckets line up with the phases.
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
    return StaggeredIncident(start, domains)


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    standin = SlackStandIn().start()
    yield standin
    standin.stop()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


#: Partitions of the worker's own topics: several notify partitions and changelog partitions.
PARTITIONS = 4


@pytest.fixture
def env(
    kafka_bootstrap: str,
    new_topic: Any,
    tmp_path: Path,
    slack: SlackStandIn,
    smtp: SmtpServer,
) -> Iterator[dict[str, str]]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES_YAML)
    notify = tmp_path / "notify.yaml"
    notify.write_text(NOTIFY_YAML)
    env = isolated_env(
        kafka_bootstrap,
        new_topic,
        partitions=PARTITIONS,
        BOUNCEWATCH_RULES_FILE=str(rules),
        BOUNCEWATCH_NOTIFY_FILE=str(notify),
        BOUNCEWATCH_ISP_UNKNOWN="domain",
        BOUNCEWATCH_SLACK_TOKEN=TOKEN,
        BOUNCEWATCH_SLACK_API_URL=slack.base_url,
        BOUNCEWATCH_SMTP_HOST=smtp.host,
        BOUNCEWATCH_SMTP_PORT=str(smtp.port),
        BOUNCEWATCH_SMTP_SECURITY="none",
        BOUNCEWATCH_SMTP_FROM="bouncewatch@alerts.example",
        # Static membership and a fixed web port, as the chart's StatefulSet has: a worker
        # restarted after a SIGKILL takes its place at once.
        BOUNCEWATCH_INSTANCE_ID="bouncewatch-0",
        BOUNCEWATCH_WEB_PORT=str(free_port()),
    )
    # Created before the worker starts, as in test_notify_e2e (its env fixture says why:
    # left to Faust, the assignor can miss it at the first start).
    notify_topic = f"{env['BOUNCEWATCH_APP_ID']}-notify"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, client_id="bouncewatch-tests")
    try:
        admin.create_topics(
            [NewTopic(notify_topic, num_partitions=PARTITIONS, replication_factor=1)],
            wait_for_metadata=True,
        )
        yield env
        admin.delete_topics([notify_topic], raise_errors=False)
    finally:
        admin.close()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[[dict[str, str], str], WorkerProcess]]:
    """Start workers by name; every one started is stopped (by its PID) at the end."""
    started: list[WorkerProcess] = []

    def start(env: dict[str, str], name: str) -> WorkerProcess:
        worker = WorkerProcess(env, tmp_path, name=name)
        worker.web_port = int(env["BOUNCEWATCH_WEB_PORT"])
        started.append(worker)
        worker.start()
        worker.wait_ready(timeout=180)
        return worker

    yield start
    for worker in started:
        worker.stop(timeout=15)


# --- what was published, what arrived --------------------------------------------------------

Id = tuple[str, int]  # (fingerprint, sequence)


def published(reader: TopicReader) -> dict[Id, AlertTransition]:
    """The transitions on the alert topic, once each (the topic is written at least once)."""
    out: dict[Id, AlertTransition] = {}
    for record in reader.poll():
        t = AlertTransition.model_validate(json.loads(record.value))
        out.setdefault((t.fingerprint, t.sequence), t)
    return out


@dataclass
class Delivered:
    """Per receiver, the transitions each delivered message named, in delivery order."""

    slack: list[Id | None]  # None: a post that names no published transition
    email: list[Id | None]

    def count(self, receiver: str) -> Counter[Id | None]:
        return Counter(getattr(self, receiver))


def delivered(
    slack: SlackStandIn, smtp: SmtpServer, transitions: dict[Id, AlertTransition]
) -> Delivered:
    by_text = {render_slack([t]).text: ident for ident, t in transitions.items()}
    posts = [r for r in slack.calls("chat.postMessage") if r.answered == 200]
    mails = []
    for mail in smtp.inbox.messages:
        names = [p.strip() for p in str(mail["X-Bouncewatch-Alerts"]).split(",")]
        for name in names:
            fingerprint, _, sequence = name.partition("#")
            ident = (fingerprint, int(sequence))
            mails.append(ident if ident in transitions else None)
    return Delivered(slack=[by_text.get(str(r.body.get("text"))) for r in posts], email=mails)


@dataclass(frozen=True)
class Tally:
    transitions: int
    once: int
    lost: int
    twice: int  # transitions delivered more than once
    extra: int  # messages beyond one per transition
    unknown: int  # messages that name no published transition
    in_order: bool  # each alert's transitions in sequence order


def tally(ids: list[Id | None], transitions: dict[Id, AlertTransition]) -> Tally:
    counts = Counter(ids)
    order: dict[str, list[int]] = defaultdict(list)
    for ident in ids:
        if ident is not None:
            order[ident[0]].append(ident[1])
    return Tally(
        transitions=len(transitions),
        once=sum(1 for i in transitions if counts[i] == 1),
        lost=sum(1 for i in transitions if counts[i] == 0),
        twice=sum(1 for i in transitions if counts[i] > 1),
        extra=sum(n - 1 for i, n in counts.items() if i is not None and n > 1),
        unknown=counts[None],
        in_order=all(seqs == sorted(seqs) for seqs in order.values()),
    )


def slack_threads_ok(slack: SlackStandIn, transitions: dict[Id, AlertTransition]) -> bool:
    """Every resolution is a reply in the thread of its alert's firing message."""
    by_text = {render_slack([t]).text: t for t in transitions.values()}
    posts = [r for r in slack.calls("chat.postMessage") if r.answered == 200]
    # Each answered post made one message, in order (the stand-in numbers them as they come);
    # the message's own text may since have been edited by chat.update, the request's not.
    firing_ts: dict[str, set[str]] = defaultdict(set)
    replies: list[tuple[AlertTransition, str | None]] = []
    for request, message in zip(posts, slack.posted(), strict=True):
        t = by_text.get(str(request.body.get("text")))
        if t is None:
            continue
        if t.kind == "firing" and not request.body.get("thread_ts"):
            firing_ts[t.fingerprint].add(message["ts"])
        elif t.kind == "resolved":
            replies.append((t, request.body.get("thread_ts")))
    return all(ts in firing_ts[t.fingerprint] for t, ts in replies)


def missing(ids: list[Id | None], transitions: dict[Id, AlertTransition]) -> list[str]:
    """The published transitions a receiver never got, as ``isp#sequence kind``."""
    got = set(ids)
    return [f"{t.isp}#{t.sequence} {t.kind}" for i, t in transitions.items() if i not in got]


def topic_dump(bootstrap: str, topic: str) -> str:
    """A topic's records, one line each, for a failure message: where each transition went."""
    reader = TopicReader(bootstrap, topic)
    try:
        lines = []
        for r in reader.poll():
            value = json.loads(r.value) if r.value else None
            if isinstance(value, dict) and "fingerprint" in value:
                what = f"{value['isp']}#{value['sequence']} {value['kind']}"
            else:
                what = "tick" if isinstance(value, dict) and "tick" in value else str(value)
            lines.append(f"  p{r.partition}@{r.offset} t={r.timestamp} {what}")
        return f"{topic}:\n" + "\n".join(line for line in lines if "tick" not in line)
    finally:
        reader.close()


def all_delivered(
    slack: SlackStandIn, smtp: SmtpServer, reader: TopicReader, expected: int
) -> Callable[[], bool]:
    def done() -> bool:
        transitions = published(reader)
        if len(transitions) < expected:
            return False
        got = delivered(slack, smtp, transitions)
        return all(tally(ids, transitions).lost == 0 for ids in (got.slack, got.email))

    return done


def failed_attempts(worker: WorkerProcess) -> dict[str, float]:
    return metric_by(
        worker.metrics(),
        "bouncewatch_notification_messages_total",
        "integration",
        outcome="failed",
    )


SLACK_KEY = "deliverability/slack/0"
EMAIL_KEY = "deliverability/email/0"

#: Seconds to keep watching after everything arrived: several notify ticks (2 s) and
#: evaluation ticks (1 s), time for a duplicate to show up.
SETTLE = 8.0


def figure(line: str) -> None:
    print(f"\nFAULT-FIGURE {line}", flush=True)


def check_scenario(transitions: dict[Id, AlertTransition], domains: int) -> None:
    """The feed made what it was built to make: one firing and one resolution per domain."""
    kinds = Counter(str(t.kind) for t in transitions.values())
    assert kinds == Counter({"firing": domains, "resolved": domains}), kinds


# --- the outages -----------------------------------------------------------------------------

#: Domains in the outage incident: 2 fire before the outage, the rest during it.
OUTAGE_DOMAINS = 16
SLACK_503_SECONDS = 120
SLACK_429_SECONDS = 60
RETRY_AFTER = 30
SMTP_DOWN_SECONDS = 120
#: Wall-clock seconds between two slices of the feed.
SLICE_WALL = 4.0


@pytest.mark.long(330)
def test_slack_and_smtp_outages_during_an_incident_lose_nothing_and_send_nothing_twice(
    env: dict[str, str],
    kafka_bootstrap: str,
    slack: SlackStandIn,
    smtp: SmtpServer,
    workers: Callable[[dict[str, str], str], WorkerProcess],
) -> None:
    scenario = incident(OUTAGE_DOMAINS)
    topic = env["BOUNCEWATCH_TOPIC_INPUT"]
    worker = workers(env, "worker")
    alerts = TopicReader(kafka_bootstrap, env["BOUNCEWATCH_TOPIC_ALERTS"])
    try:

        def state() -> str:
            transitions = published(alerts)
            got = delivered(slack, smtp, transitions)
            return (
                f"published {len(transitions)}; slack {tally(got.slack, transitions)}; "
                f"email {tally(got.email, transitions)}; failed {failed_attempts(worker)}"
            )

        # The incident starts: the first two domains fire and are told while all is well.
        before = FIRST + 20 + STEP + SLICE // 2  # past the second domain's firing boundary
        produce_batches(kafka_bootstrap, topic, scenario.events(0, before))
        worker.wait_until(
            "the first two firings on Slack and by email",
            all_delivered(slack, smtp, alerts, 2),
            timeout=120,
            state=state,
        )

        # Both receivers fail at once; the rest of the incident arrives during the outage.
        outage_start = time.monotonic()
        slack_up_at = slack.outage(
            (SLACK_503_SECONDS, server_error(503)),
            (SLACK_429_SECONDS, rate_limited(RETRY_AFTER)),
        )
        smtp.stop()
        smtp_up_at = outage_start + SMTP_DOWN_SECONDS
        for since in range(before, scenario.end, SLICE):
            produce_batches(
                kafka_bootstrap, topic, scenario.events(since, min(since + SLICE, scenario.end))
            )
            time.sleep(SLICE_WALL)
        during = len(published(alerts)) - 2
        held = delivered(slack, smtp, published(alerts))
        assert len(held.slack) == 2 and len(held.email) == 2, state()  # nothing got through

        time.sleep(max(0.0, smtp_up_at - time.monotonic()))
        smtp.start()  # the relay restarted on its port
        worker.wait_until(
            "everything delivered after the outages",
            all_delivered(slack, smtp, alerts, 2 * OUTAGE_DOMAINS),
            timeout=SLACK_503_SECONDS + SLACK_429_SECONDS + 420,
            state=state,
        )
        time.sleep(SETTLE)
        transitions = published(alerts)
        got = delivered(slack, smtp, transitions)
        failed = failed_attempts(worker)
    finally:
        alerts.close()

    check_scenario(transitions, OUTAGE_DOMAINS)

    def after(times: list[float], up_at: float) -> str:
        late = [t - up_at for t in times]
        return f"first {min(late):.0f} s after, drained {max(late):.0f} s after"

    wall = time.time() - time.monotonic()  # Request.at is time.time()
    slack_times = [r.at - wall for r in slack.calls("chat.postMessage") if r.answered == 200][2:]
    mail_times = smtp.inbox.accepted_at[2:]
    slack_tally, email_tally = tally(got.slack, transitions), tally(got.email, transitions)
    figure(
        f"slack-outage: {slack_tally.transitions} transitions, {slack_tally.once} delivered "
        f"once, {slack_tally.lost} lost, {slack_tally.twice} twice, "
        f"{'in order' if slack_tally.in_order else 'OUT OF ORDER'}; outage "
        f"{SLACK_503_SECONDS + SLACK_429_SECONDS} s (503 for {SLACK_503_SECONDS} s, then 429 "
        f"Retry-After {RETRY_AFTER} s for {SLACK_429_SECONDS} s); {during} transitions came "
        f"during it; {after(slack_times, slack_up_at)}; "
        f"{failed.get(SLACK_KEY, 0):.0f} failed attempts"
    )
    figure(
        f"smtp-outage: {email_tally.transitions} transitions, {email_tally.once} delivered "
        f"once, {email_tally.lost} lost, {email_tally.twice} twice, "
        f"{'in order' if email_tally.in_order else 'OUT OF ORDER'}; relay down "
        f"{SMTP_DOWN_SECONDS} s, restarted on its port; {during} transitions came during it; "
        f"{after(mail_times, smtp_up_at)}; "
        f"{failed.get(EMAIL_KEY, 0):.0f} failed attempts"
    )
    for name, result in (("slack", slack_tally), ("email", email_tally)):
        assert result.lost == 0 and result.twice == 0 and result.unknown == 0, (name, result)
        assert result.once == len(transitions), (name, result)
        assert result.in_order, (name, got)
    assert slack_threads_ok(slack, transitions), "a resolution outside its firing's thread"
    # The outages did cost failed attempts: the figure is about an outage, not a quiet run.
    assert failed.get(SLACK_KEY, 0) >= 1 and failed.get(EMAIL_KEY, 0) >= 1, failed


# --- SIGKILL with a notification in flight ---------------------------------------------------

KILLS = 5
KILL_DOMAINS = 8
#: Seconds the Slack stand-in and the SMTP server hold back their answer after a message
#: took effect: the window in which the worker dies with the message delivered but not
#: acknowledged.
HOLD = 1.0
#: Duplicates README's "Notifications" allows per SIGKILL (all receivers together): the one
#: message in flight when the worker died.
DUPLICATES_PER_KILL = 1


@pytest.mark.long(80)
def test_sigkill_with_a_notification_in_flight_loses_nothing_and_repeats_at_most_one_per_kill(
    env: dict[str, str],
    kafka_bootstrap: str,
    slack: SlackStandIn,
    smtp: SmtpServer,
    workers: Callable[[dict[str, str], str], WorkerProcess],
) -> None:
    scenario = incident(KILL_DOMAINS)
    topic = env["BOUNCEWATCH_TOPIC_INPUT"]
    slack.hold = smtp.inbox.hold = HOLD
    rng = random.Random(15)  # the kill points, reproducible from the seed
    began = time.monotonic()
    worker = workers(env, "worker0")

    # The feed arrives in its own thread, slice by slice, whatever the kills do.
    first_firing = FIRST + 20
    produce_batches(kafka_bootstrap, topic, scenario.events(0, first_firing))
    feeding_error: list[BaseException] = []

    def feed() -> None:
        try:
            for since in range(first_firing, scenario.end, SLICE):
                until = min(since + SLICE, scenario.end)
                produce_batches(kafka_bootstrap, topic, scenario.events(since, until))
                time.sleep(SLICE_WALL)
        except BaseException as exc:  # reported by the test, not lost in the thread
            feeding_error.append(exc)

    feeder = threading.Thread(target=feed, name="feed", daemon=True)
    feeder.start()

    def in_flight() -> str | None:
        if slack.in_flight:
            return "slack"
        if smtp.inbox.in_flight:
            return "email"
        return None

    kills: list[str] = []
    deadline = time.monotonic() + 600
    while len(kills) < KILLS and time.monotonic() < deadline:
        what = in_flight()
        if what is None:
            time.sleep(0.02)
            continue
        # A random point from just after the request took effect to past its answer: the
        # worker dies before it heard back, or after, with its record on the way or not.
        delay = rng.uniform(0.0, HOLD * 1.5)
        time.sleep(delay)
        worker.kill()
        kills.append(f"{what}+{delay:.2f}s")
        worker = workers(env, f"worker{len(kills)}")
    assert len(kills) == KILLS, f"only {len(kills)} kills: no notification was in flight"
    feeder.join(timeout=300)
    assert not feeding_error, feeding_error

    alerts = TopicReader(kafka_bootstrap, env["BOUNCEWATCH_TOPIC_ALERTS"])
    try:

        def state() -> str:
            transitions = published(alerts)
            got = delivered(slack, smtp, transitions)
            return (
                f"published {len(transitions)}; slack {tally(got.slack, transitions)}; "
                f"email {tally(got.email, transitions)}; missing: "
                f"slack {missing(got.slack, transitions)}, email {missing(got.email, transitions)}"
                f"\n{topic_dump(kafka_bootstrap, env['BOUNCEWATCH_TOPIC_ALERTS'])}"
                f"\n{topic_dump(kafka_bootstrap, env['BOUNCEWATCH_APP_ID'] + '-notify')}"
            )

        try:
            worker.wait_until(
                "every transition delivered after the kills",
                all_delivered(slack, smtp, alerts, 2 * KILL_DOMAINS),
                timeout=180,
                state=state,
            )
        except AssertionError as exc:
            lost = f"{exc}"
        else:
            lost = ""
            time.sleep(SETTLE)
        transitions = published(alerts)
        got = delivered(slack, smtp, transitions)
    finally:
        alerts.close()

    check_scenario(transitions, KILL_DOMAINS)
    slack_tally, email_tally = tally(got.slack, transitions), tally(got.email, transitions)
    duplicates = slack_tally.extra + email_tally.extra
    bound = DUPLICATES_PER_KILL * KILLS
    figure(
        f"sigkill-in-flight: {KILLS} SIGKILLs with a notification in flight "
        f"({', '.join(kills)}); {len(transitions)} transitions to 2 receivers; "
        f"{slack_tally.lost + email_tally.lost} lost "
        f"(slack {slack_tally.lost}, email {email_tally.lost}); {duplicates} duplicate "
        f"messages (slack {slack_tally.extra}, email {email_tally.extra}; bound "
        f"{DUPLICATES_PER_KILL} per kill = {bound}); "
        f"{'in order' if slack_tally.in_order and email_tally.in_order else 'OUT OF ORDER'}; "
        f"{time.monotonic() - began:.0f} s in all"
    )
    # A transition lost is a failure, with the topics' contents (a lost firing also leaves its
    # resolution outside a thread, asserted below). Faust's recovery lost one in 2 of 7 runs
    # before streams/app.py kept it from fetching stream partitions during their seek
    # (_Recovery, ActivePartitions): their offsets were committed past messages never handled.
    assert not lost, f"a transition lost after the kills: {lost}"
    for name, result in (("slack", slack_tally), ("email", email_tally)):
        assert result.unknown == 0, (name, result)
        assert result.in_order, (name, got)
    assert duplicates <= bound, (slack_tally, email_tally)
    assert slack_threads_ok(slack, transitions), "a resolution outside its firing's thread"

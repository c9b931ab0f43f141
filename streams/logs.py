"""Structured logging: one JSON object per line by default, plain text for people.

The same dictConfig is handed to Faust's worker (which otherwise installs its own handlers),
so the worker's and our own records come out in one format.

The libraries' loggers (``LIBRARY_LOGGERS``) follow ``set_library_logs``: the worker keeps
Faust's INFO lines (the README's monitoring advice reads rebalances from the worker logs),
and ``bouncewatch dev`` holds every library at WARNING unless ``--verbose``, so that the
alerts stand out.

It lives under streams/ because the Faust app (``streams.app``) hands it to Faust's worker,
and the commands (``bouncewatch worker``, ``bouncewatch dev``) configure it the same way:
bouncewatch/ imports streams/, never the reverse.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Literal

# Attributes every LogRecord has; whatever else a record carries came from ``extra=``.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


#: The libraries under the worker. At INFO they narrate every connection, metadata refresh
#: and start-up step of Faust and the Kafka clients (aiokafka for the worker, kafka-python for
#: the topic tools and the demo producer); aiohttp serves the web port.
LIBRARY_LOGGERS: tuple[str, ...] = ("faust", "mode", "aiokafka", "kafka", "aiohttp")

#: "worker": aiokafka at WARNING (it narrates every rebalance step at INFO) unless the level is
#: DEBUG, the other libraries at the configured level. "quiet": every library at WARNING, or
#: at the configured level when that is higher. "verbose": every library at the configured
#: level.
LibraryLogs = Literal["worker", "quiet", "verbose"]

# Process-wide rather than a parameter of each call: the config is built from the settings
# alone by the worker command and by the Faust app (which applies it again when its worker
# starts), out of reach of ``bouncewatch dev``'s command line.
_library_logs: LibraryLogs = "worker"


def set_library_logs(mode: LibraryLogs) -> None:
    """How the libraries log in every config built from now on (see ``LibraryLogs``)."""
    global _library_logs
    _library_logs = mode


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", ...extra}``, one line per record."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str, ensure_ascii=False)


def logging_config(level: str, fmt: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the given level and format (json or text); the
    libraries log as ``set_library_logs`` last said."""
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"}
        if fmt == "json"
        else {"format": "%(asctime)s %(levelname)-7s %(name)s: %(message)s"}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "main",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": _library_loggers(level, _library_logs),
    }


def _library_loggers(level: str, mode: LibraryLogs) -> dict[str, Any]:
    if mode == "worker":
        # aiokafka narrates every rebalance step at INFO; keep it for DEBUG runs.
        return {"aiokafka": {"level": "WARNING" if level != "DEBUG" else "DEBUG"}}
    if mode == "quiet":
        # the higher of the two: a logger set to WARNING would pass its warnings on to the
        # handler even when the configured level is ERROR
        numeric = logging.getLevelNamesMapping()
        level = max(level, "WARNING", key=numeric.__getitem__)
    return {name: {"level": level} for name in LIBRARY_LOGGERS}


def configure(level: str, fmt: str) -> None:
    import logging.config

    logging.config.dictConfig(logging_config(level, fmt))

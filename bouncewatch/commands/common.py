"""What several subcommands share: loading settings with errors a person can act on."""

from __future__ import annotations

import sys

from pydantic import ValidationError

from schemas.settings import ENV_PREFIX, Settings


class SettingsError(SystemExit):
    pass


def load_settings(**overrides: object) -> Settings:
    """The settings from the environment; a wrong one exits with the variable it came from."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = ["bouncewatch: invalid settings:"]
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"]) or "settings"
            variable = f"{ENV_PREFIX}{where.upper()}" if error["loc"] else "settings"
            lines.append(f"  {variable}: {error['msg']}")
        print("\n".join(lines), file=sys.stderr)
        raise SettingsError(2) from None

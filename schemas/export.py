"""Write the JSON Schemas of the edge models to ``schemas/json/`` (``make schemas``).

They are checked in so producers can validate events without Python; a test fails when a
model changes and the files were not regenerated.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from schemas.alert import AlertTransition
from schemas.event import DeliveryEvent

OUT = Path(__file__).resolve().parent / "json"

MODELS: dict[str, type[BaseModel]] = {
    "delivery-event": DeliveryEvent,
    "alert-transition": AlertTransition,
}


def rendered() -> dict[str, str]:
    """File name to content, exactly as written."""
    return {
        f"{name}.schema.json": json.dumps(model.model_json_schema(), indent=2, sort_keys=True)
        + "\n"
        for name, model in MODELS.items()
    }


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, text in rendered().items():
        (OUT / name).write_text(text, encoding="utf-8")
        print(f"wrote {OUT / name}")


if __name__ == "__main__":
    main()

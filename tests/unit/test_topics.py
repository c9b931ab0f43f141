"""The topics created before the worker starts include every changelog Faust would create
for the worker's tables, named and partitioned as Faust names them (bouncewatch/topics.py)."""

from __future__ import annotations

import pytest

from bouncewatch.topics import topic_specs
from schemas.settings import Settings
from streams.topology import build


@pytest.mark.parametrize("hygiene", [False, True])
def test_every_table_changelog_is_created_up_front(hygiene: bool) -> None:
    settings = Settings(app_id="bw-topics-test", topic_partitions=6, hygiene=hygiene)
    app = build(settings).app
    faust_names = {table.changelog_topic.get_topic_name() for table in app.tables.values()}
    specs = {s.name: s for s in topic_specs(settings)}
    changelogs = {name for name in specs if name.endswith("-changelog")}
    assert changelogs == faust_names
    for name in changelogs:
        assert specs[name].partitions == 6
        assert specs[name].config == {"cleanup.policy": "compact"}

"""RocksDB memory is bounded for the whole worker: every table partition's database shares
one block cache and one write-buffer manager (streams.app), instead of Faust's 2 GiB cache
and three 64 MiB write buffers per database."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.settings import Settings
from streams.app import ROCKSDB_CACHE_BYTES, create_app

rocksdict = pytest.importorskip("rocksdict")


def _store(tmp_path: Path, name: str = "buckets") -> object:
    settings = Settings(store="rocksdb://", data_dir=tmp_path / "data", app_id="bw-rocks-test")
    app = create_app(settings)
    table = app.Table(name, default=None, partitions=8, key_type=str)
    return table.data


def test_every_table_partition_shares_one_bounded_cache(tmp_path: Path) -> None:
    store = _store(tmp_path)
    options = store.rocksdb_options  # type: ignore[attr-defined]
    assert options.block_cache_size <= ROCKSDB_CACHE_BYTES <= 128 * 1024**2
    assert options.write_buffer_size * options.max_write_buffer_number <= 16 * 1024**2
    # One cache and one write-buffer manager for all the databases of the process.
    assert options.shared() == _store(tmp_path, "alert-states").rocksdb_options.shared()  # type: ignore[attr-defined]
    _cache, manager = options.shared()
    assert manager.get_buffer_size() <= ROCKSDB_CACHE_BYTES
    # And a database opens and works with them.
    dbs = [options.open(tmp_path / f"p{i}.db") for i in range(3)]
    for i, db in enumerate(dbs):
        db[b"key"] = b"value %d" % i
    assert [db[b"key"] for db in dbs] == [b"value 0", b"value 1", b"value 2"]
    assert 0 < manager.get_usage() <= manager.get_buffer_size()
    for db in dbs:
        db.close()

"""Atomic result files: a failed write keeps the old file, concurrent writers never collide."""
from __future__ import annotations

import json
import threading

import pytest

from h3r.provenance import atomic_path, write_json_atomic


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = write_json_atomic(tmp_path / "results.json", {"nme": 1.0})
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("{half")
        raise RuntimeError("crash")
    assert json.loads(path.read_text()) == {"nme": 1.0}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_concurrent_writers_each_get_their_own_temporary(tmp_path):
    """As DDP ranks rendering the same cache file: every write lands whole, none collides."""
    path = tmp_path / "cache.json"
    temporaries, errors, barrier = [], [], threading.Barrier(4)

    def write(i: int) -> None:
        try:
            with atomic_path(path) as tmp:
                temporaries.append(tmp)
                barrier.wait(timeout=10)  # all four hold a temporary at once
                tmp.write_text(json.dumps({"writer": i}))
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(temporaries)) == 4
    assert json.loads(path.read_text())["writer"] in range(4)
    assert [p.name for p in tmp_path.iterdir()] == ["cache.json"]

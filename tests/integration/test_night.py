"""One night's ingestion (feed.night.ingest_new) on a real landing folder: new files only,
refusals not recorded, conflicts quarantined, and exactly once under SIGKILL at three points."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from builders import ROOT

import sampledata
from feed import ingest_new, open_store
from feed.store import CONFLICT_REASON


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    """3,000 generated raw transactions, in time order."""
    frame = sampledata.generate(rows=3_000, customers=120, seed=5)
    return frame.sort_values("TransactionStartTime", ignore_index=True)


def _land(raw: pd.DataFrame, folder: Path, parts: int = 3) -> list[Path]:
    """``raw`` split in time order into ``parts`` files (CSV and Parquet alternately)."""
    folder.mkdir(parents=True, exist_ok=True)
    size = -(-len(raw) // parts)
    paths = []
    for i in range(parts):
        suffix = ".csv" if i % 2 == 0 else ".parquet"
        path = folder / f"night-{i + 1}{suffix}"
        sampledata.write(raw.iloc[i * size : (i + 1) * size].reset_index(drop=True), path)
        paths.append(path)
    return paths


def _ids(store_url: str) -> pd.Series:
    return open_store(store_url).read()["TransactionId"]


def test_a_night_takes_only_new_files_and_reports_them(raw: pd.DataFrame, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    _land(raw.iloc[:2000], landing, parts=2)
    store = open_store(str(tmp_path / "store"))
    first = ingest_new(landing, store, run_id="n1", out_dir=tmp_path / "out1")
    assert (first.new_files, first.new_rows, first.store_rows) == (2, 2000, 2000)
    entries = store.manifest.entries()
    assert [(Path(e.path).name, e.rows, e.valid, e.new, e.run_id) for e in entries] == [
        ("night-1.csv", 1000, 1000, 1000, "n1"),
        ("night-2.parquet", 1000, 1000, 1000, "n1"),
    ]
    # Nothing new: nothing read. A known name with new content is a new, changed file.
    again = ingest_new(landing, store, run_id="n2", out_dir=tmp_path / "out2")
    assert (again.new_files, again.new_rows, again.already_ingested) == (
        0,
        0,
        ["night-1.csv", "night-2.parquet"],
    )
    sampledata.write(raw.iloc[1500:2500].reset_index(drop=True), landing / "night-2.parquet")
    third = ingest_new(landing, store, run_id="n3", out_dir=tmp_path / "out3")
    (changed,) = third.files
    assert changed.changed and (changed.new, changed.duplicates) == (500, 500)
    assert third.to_dict()["changed"] == [str(landing / "night-2.parquet")]
    assert store.count() == 2500 and _ids(str(tmp_path / "store")).is_unique


def test_a_bad_file_is_refused_unrecorded_and_a_corrected_one_is_taken(
    raw: pd.DataFrame, tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    bad = raw.iloc[:500].astype(str)
    bad.loc[bad.index[:50], "Amount"] = "lots"  # 10 % bad rows, above the 1 % threshold
    sampledata.write(bad, landing / "delivery.csv")
    store = open_store(str(tmp_path / "store"))
    night = ingest_new(landing, store, run_id="n1", out_dir=tmp_path / "out")
    (refused,) = night.refused
    assert "fail validation" in (refused.refused or "") and refused.quarantined == 50
    assert night.new_files == 0 and store.count() == 0 and store.manifest.entries() == []
    assert (tmp_path / "out" / "delivery.csv" / "quarantine.csv").exists()
    # The corrected redelivery (here under the same name) is taken the next night.
    sampledata.write(raw.iloc[:500].reset_index(drop=True), landing / "delivery.csv")
    fixed = ingest_new(landing, store, run_id="n2", out_dir=tmp_path / "out2")
    assert (fixed.new_files, fixed.new_rows, store.count()) == (1, 500, 500)


def test_a_stored_id_with_other_content_is_quarantined_with_its_reason(
    raw: pd.DataFrame, tmp_path: Path
) -> None:
    from registry import Registry, read_quarantine

    landing = tmp_path / "landing"
    landing.mkdir()
    sampledata.write(raw.iloc[:300].reset_index(drop=True), landing / "a.csv")
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}#transactions")
    with Registry(f"sqlite:///{tmp_path / 'reg.db'}") as registry:
        ingest_new(landing, store, run_id="n1", out_dir=tmp_path / "o1", registry=registry)
        other = raw.iloc[:10].copy()
        other["Amount"] = pd.to_numeric(other["Amount"]) + 1.0
        other["Value"] = other["Amount"].abs()
        sampledata.write(other.reset_index(drop=True), landing / "b.csv")
        night = ingest_new(landing, store, run_id="n2", out_dir=tmp_path / "o2", registry=registry)
        quarantine = read_quarantine(registry, "n2")
    (b,) = night.files
    assert (b.new, b.conflicts, b.quarantined) == (0, 10, 10)
    conflicts = pd.read_csv(tmp_path / "o2" / "b.csv" / "conflicts.csv")
    assert set(conflicts["reason"]) == {CONFLICT_REASON}
    assert len(quarantine) == 10 and set(quarantine["check"]) == {"transaction_id_conflict"}
    assert store.count() == 300


def test_a_sql_source_is_read_past_its_watermark(raw: pd.DataFrame, tmp_path: Path) -> None:
    from sqlalchemy import create_engine

    url = f"sqlite:///{tmp_path / 'bank.db'}"
    engine = create_engine(url)
    raw.iloc[:1000].astype(str).to_sql("landed", engine, index=False)
    store = open_store(str(tmp_path / "store"))
    first = ingest_new(f"{url}#landed", store, run_id="n1", out_dir=tmp_path / "o1")
    assert (first.new_files, first.new_rows) == (1, 1000)
    again = ingest_new(f"{url}#landed", store, run_id="n2", out_dir=tmp_path / "o2")
    assert again.new_rows == 0
    raw.iloc[1000:1500].astype(str).to_sql("landed", engine, index=False, if_exists="append")
    third = ingest_new(f"{url}#landed", store, run_id="n3", out_dir=tmp_path / "o3")
    assert third.new_rows == 500 and store.count() == 1500
    engine.dispose()


_KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    sys.path.insert(0, {root!r})
    import feed.night as night
    import feed.store as fs
    from feed.manifest import Manifest

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    point = {point!r}
    if point == "after_validating_file_1":
        real_ingest = night.ingest
        night.ingest = lambda *a, **k: (real_ingest(*a, **k), die())[0]
    elif point == "after_storing_file_1":
        Manifest.record = lambda self, entry, conn=None: die()  # rows stored, no entry
    else:  # during file 2: some of its rows stored, the rest not
        calls = {{"take": 0, "write": 0}}
        real_take, real_write = night._Night.take, fs.pq.write_table
        real_execute = fs.SqlStore._write

        def take(self, *a, **k):
            calls["take"] += 1
            return real_take(self, *a, **k)

        def write_table(*a, **k):
            out = real_write(*a, **k)
            if calls["take"] == 2:
                calls["write"] += 1
                if calls["write"] == 2:
                    die()
            return out

        def sql_write(self, new, entry):
            if calls["take"] == 2:
                from sqlalchemy import insert
                with self.engine.begin() as conn:  # half the rows sent, never committed
                    conn.execute(insert(self.table), new.iloc[: len(new) // 2].to_dict("records"))
                    die()
            return real_execute(self, new, entry)

        night._Night.take = take
        fs.pq.write_table = write_table
        fs.SqlStore._write = sql_write
    night.ingest_new({landing!r}, fs.open_store({url!r}), run_id="killed", out_dir=Path({out!r}))
    """
)


@pytest.mark.parametrize(
    "point", ["after_validating_file_1", "after_storing_file_1", "during_file_2"]
)
@pytest.mark.parametrize("kind", ["parquet", "sqlite"])
def test_sigkill_during_a_night_then_rerun_stores_every_valid_row_once(
    raw: pd.DataFrame, tmp_path: Path, point: str, kind: str
) -> None:
    landing = tmp_path / "landing"
    _land(raw, landing, parts=3)
    url = str(tmp_path / "store") if kind == "parquet" else f"sqlite:///{tmp_path / 's.db'}#tx"
    script = _KILLER.format(
        root=str(ROOT), point=point, landing=str(landing), url=url, out=str(tmp_path / "o1")
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=300)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    store = open_store(url)
    killed_at = store.count()
    assert killed_at < len(raw)
    rerun = ingest_new(landing, store, run_id="rerun", out_dir=tmp_path / "o2")
    ids = _ids(url)
    assert len(ids) == len(raw) and ids.is_unique
    assert set(ids) == set(raw["TransactionId"])
    assert rerun.store_rows == len(raw) and rerun.new_rows == len(raw) - killed_at
    names = sorted(Path(e.path).name for e in store.manifest.entries())
    assert names == ["night-1.csv", "night-2.parquet", "night-3.csv"]
    # A third night finds nothing new.
    assert ingest_new(landing, store, run_id="again", out_dir=tmp_path / "o3").new_files == 0

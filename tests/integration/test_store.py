"""The transaction store and the landing folder: stored once, duplicates and conflicts, kills."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from builders import ROOT
from sqlalchemy import text

import sampledata
from credit.clean import clean_transactions
from credit.ingest import ingest
from feed import LandingFolder, ManifestEntry, StoreError, open_store
from feed.manifest import now
from feed.store import BATCH_CONFLICT_REASON, CONFLICT_REASON, STORE_COLUMNS, canonical


@pytest.fixture(scope="module")
def tx(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """2,000 cleaned transactions over the 90 demo days."""
    path = tmp_path_factory.mktemp("store") / "raw.parquet"
    sampledata.write(sampledata.generate(rows=2_000, customers=80, seed=11), path)
    return clean_transactions(ingest(path).data).data


def _pg_url() -> str | None:
    return os.environ.get("BATI_TEST_PG_URL")


@pytest.fixture(params=["parquet", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "parquet":
        yield str(tmp_path / "store")
        return
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}#transactions"
        return
    url = _pg_url()
    if not url:
        pytest.skip("BATI_TEST_PG_URL is not set")
    table = f"tx_{os.getpid()}_{abs(hash(str(tmp_path))) % 10**8}"
    yield f"{url}#{table}"
    from sqlalchemy import create_engine

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f'DROP TABLE IF EXISTS "{table}", "{table}_manifest"'))
    engine.dispose()


def _entry(path: str, result, run_id: str = "r1") -> ManifestEntry:  # noqa: ANN001
    """``path``'s entry for the append ``result``: every row valid, conflicts quarantined
    (positional, as the other entries of this file)."""
    conflicts = result.n_conflicts
    counts = (result.rows, result.rows, conflicts, result.new, result.duplicates, conflicts)
    return ManifestEntry(path, path.rjust(64, "0"), 1, *counts, run_id, now())


def test_rows_are_stored_once_and_read_back_exactly(store_url: str, tx: pd.DataFrame) -> None:
    store = open_store(store_url)
    first = store.append(tx.iloc[:1500], lambda r: _entry("a", r))
    assert (first.new, first.duplicates, first.n_conflicts) == (1500, 0, 0)
    # Overlapping night: 500 already stored (same content), 500 new.
    second = store.append(tx.iloc[1000:], lambda r: _entry("b", r))
    assert (second.new, second.duplicates, second.n_conflicts) == (500, 500, 0)
    assert store.count() == len(tx)
    back = store.read()
    expected = canonical(tx).sort_values("TransactionStartTime", kind="stable", ignore_index=True)
    pd.testing.assert_frame_equal(back, expected)
    assert store.newest() == tx["TransactionStartTime"].max()
    assert [e.new for e in store.manifest.entries()] == [1500, 500]


def test_window_read_is_half_open(store_url: str, tx: pd.DataFrame) -> None:
    store = open_store(store_url)
    store.append(tx)
    start = tx["TransactionStartTime"].iloc[400]
    end = tx["TransactionStartTime"].iloc[1600]
    got = store.read(start, end)
    times = tx["TransactionStartTime"]
    assert len(got) == int(((times >= start) & (times < end)).sum())
    assert got["TransactionStartTime"].min() >= start
    assert got["TransactionStartTime"].max() < end


def test_repeat_with_other_content_is_refused_with_its_reason(
    store_url: str, tx: pd.DataFrame
) -> None:
    store = open_store(store_url)
    store.append(tx.iloc[:100])
    changed = tx.iloc[90:110].copy()
    changed.loc[changed.index[:3], "Amount"] += 1.0  # three stored ids with other content
    twice = changed.iloc[[15]].assign(Value=changed["Value"].iloc[15] + 7)  # twice in the batch
    result = store.append(pd.concat([changed, twice]))
    assert result.new == 9  # 10 unseen ids, one of them twice with two contents (refused)
    assert result.duplicates == 7
    reasons = result.conflicts["reason"].value_counts().to_dict()
    assert reasons == {CONFLICT_REASON: 3, BATCH_CONFLICT_REASON: 2}
    assert store.count() == 109
    stored = store.read().set_index("TransactionId")
    for tid in changed["TransactionId"].iloc[:3]:  # the stored content is unchanged
        assert stored.loc[tid, "Amount"] == tx.set_index("TransactionId").loc[tid, "Amount"]


def test_bad_store_urls_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="#table"):
        open_store(f"sqlite:///{tmp_path / 'x.db'}")
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="not a folder"):
        open_store(str(tmp_path / "file"))
    with pytest.raises(StoreError, match="lack the store's columns"):
        open_store(str(tmp_path / "s")).append(pd.DataFrame({"TransactionId": ["T"]}))


def test_landing_scan_skips_known_content_links_and_partial_files(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    (landing / "sub").mkdir(parents=True)
    (landing / "night1.csv").write_text("a\n1\n")
    (landing / "sub" / "night2.parquet").write_bytes(b"PAR1")
    (landing / ".night3.csv").write_text("hidden")
    (landing / "night4.csv.part").write_text("partial")
    (landing / "notes.txt").write_text("x")
    (landing / "loop").symlink_to(landing)  # a link back into the folder
    (landing / "elsewhere.csv").symlink_to(tmp_path / "nowhere.csv")
    store = open_store(str(tmp_path / "store"))
    scan = LandingFolder(landing).scan(store.manifest)
    assert [p.path.name for p in scan.pending] == ["night1.csv", "night2.parquet"]
    assert set(scan.skipped) == {
        ".night3.csv",
        "night4.csv.part",
        "notes.txt",
        "loop",
        "elsewhere.csv",
    }
    first = scan.pending[0]
    store.manifest.record(
        ManifestEntry(str(first.path), first.sha256, first.size, 1, 1, 0, 1, 0, 0, "r", now())
    )
    # Same content under a new name: already ingested. Known name, new content: changed.
    (landing / "copy.csv").write_text("a\n1\n")
    (landing / "night1.csv").write_text("a\n2\n")
    again = LandingFolder(landing).scan(store.manifest)
    assert again.already_ingested == ["copy.csv"]
    assert [(p.path.name, p.changed) for p in again.pending] == [
        ("night1.csv", True),
        ("night2.parquet", False),
    ]
    with pytest.raises(FileNotFoundError, match="BATI_LANDING"):
        LandingFolder(tmp_path / "missing")


_KILLER = textwrap.dedent(
    """
    import os, signal, sys
    import pandas as pd
    sys.path.insert(0, {root!r})
    import feed.store as fs
    from sqlalchemy.engine import Connection, Transaction
    from feed.manifest import Manifest

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    def after(owner, name, when=lambda *a: True):
        real = getattr(owner, name)
        def wrapped(*a, **k):
            out = real(*a, **k)
            if when(*a):
                die()
            return out
        setattr(owner, name, wrapped)

    point, kind = {point!r}, {kind!r}
    if point == "during_write" and kind == "parquet":
        after(fs.pq, "write_table")  # a temporary part written, not renamed
    elif point == "during_write":
        after(Connection, "execute", lambda c, stmt, *a: stmt.is_insert)  # rows sent, no commit
    elif point == "after_part" and kind == "parquet":
        after(fs.os, "replace")  # one day's part in place, the others not
    elif point == "after_part":
        after(Transaction, "commit")  # rows and manifest committed, the process dies after
    else:
        Manifest.record = lambda self, entry, conn=None: die()  # before the manifest entry
    from feed.manifest import ManifestEntry, now
    entry = lambda r: ManifestEntry("n", "0" * 64, 1, r.rows, r.rows, 0, r.new, r.duplicates, 0, "k", now())
    tx = pd.read_parquet({batch!r})
    fs.open_store({url!r}).append(tx, entry)
    """
)


@pytest.mark.parametrize("point", ["during_write", "after_part", "before_manifest"])
@pytest.mark.parametrize("kind", ["parquet", "sqlite"])
def test_sigkill_at_any_point_then_rerun_stores_every_row_once(
    tmp_path: Path, tx: pd.DataFrame, point: str, kind: str
) -> None:
    url = str(tmp_path / "store") if kind == "parquet" else f"sqlite:///{tmp_path / 's.db'}#tx"
    batch = tmp_path / "night.parquet"
    tx.to_parquet(batch)
    script = _KILLER.format(root=str(ROOT), point=point, kind=kind, batch=str(batch), url=url)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    store = open_store(url)
    partial = store.count()
    assert partial < len(tx) or (point, kind) in {
        ("before_manifest", "parquet"),
        ("after_part", "sqlite"),
    }
    rerun = store.append(tx)
    assert store.count() == len(tx)
    assert (rerun.new, rerun.duplicates) == (len(tx) - partial, partial)
    back = store.read()
    assert back["TransactionId"].is_unique
    assert list(back.columns) == list(STORE_COLUMNS)


def test_sql_landing_reads_past_the_watermark(tmp_path: Path, sample_head_path: Path) -> None:
    from sqlalchemy import create_engine

    from feed.landing import SqlLanding

    head = pd.read_csv(sample_head_path, dtype=str)  # the real rows as text, like the CSV
    head = head.sort_values("TransactionStartTime", ignore_index=True)
    url = f"sqlite:///{tmp_path / 'bank.db'}"
    engine = create_engine(url)
    head.iloc[:30].to_sql("landed", engine, index=False)
    store = open_store(str(tmp_path / "store"))
    source = SqlLanding(f"{url}#landed")
    first = source.read(store.manifest)
    assert len(first.raw) == 30 and first.since is None
    assert first.watermark == pd.Timestamp(head["TransactionStartTime"].iloc[29]).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    store.manifest.record(
        ManifestEntry(first.source, "1" * 64, 0, 30, 30, 0, 30, 0, 0, "r", now(), first.watermark)
    )
    head.iloc[30:].to_sql("landed", engine, index=False, if_exists="append")
    second = source.read(store.manifest)
    assert second.since == first.watermark
    newer = head["TransactionStartTime"] >= head["TransactionStartTime"].iloc[29]
    assert len(second.raw) == int(newer.sum())  # from the watermark on, inclusive
    assert "password" not in SqlLanding("postgresql://u:password@h/db#t").source
    with pytest.raises(ValueError, match="#"):
        SqlLanding(url)
    engine.dispose()

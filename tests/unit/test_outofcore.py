"""Out-of-core path: partition by partition, the same quarantine, features and labels as in memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from credit import outofcore
from credit.clean import clean_buckets, clean_transactions
from credit.features import build_feature_snapshot
from credit.ingest import IngestError, TooManyBadRowsError, split_valid
from credit.label import build_training_table
from credit.sources import read_transactions

NOW = pd.Timestamp("2019-06-01", tz="UTC")


def _messy(small_raw: pd.DataFrame) -> pd.DataFrame:
    """The small set with problems that cross partitions: bad values, a future date, exact
    duplicates and TransactionIds reused with different content (near and far apart)."""
    df = small_raw.copy()
    n = len(df)
    df.loc[df.index[10:40], "CurrencyCode"] = "USD"  # schema failures
    df.loc[df.index[100], "ChannelId"] = "ChannelId_99"
    df.loc[df.index[200], "TransactionStartTime"] = pd.Timestamp("2030-01-01", tz="UTC")
    dupes = df.iloc[[5, 6, 7, n // 2]]  # exact duplicates, appended far from the originals
    far_conflict = df.iloc[[300]].assign(Amount=df.iloc[300]["Amount"] + 1.0)
    far_conflict["Value"] = far_conflict["Amount"].abs()
    bad_conflict = df.iloc[[400]].assign(CurrencyCode="EUR")  # conflict with a bad row
    near = df.iloc[[n - 3]].assign(Amount=7.0, Value=7.0)  # conflict inside the last chunk
    return pd.concat([df, dupes, far_conflict, bad_conflict, near], ignore_index=True)


@pytest.fixture(scope="module")
def partitioned(tmp_path_factory, small_raw) -> tuple[Path, pd.DataFrame]:
    df = _messy(small_raw)
    folder = tmp_path_factory.mktemp("parts")
    table = pa.Table.from_pandas(df, preserve_index=False)
    bounds = np.linspace(0, len(df), 5).round().astype(int)  # 4 uneven-ish parts
    for i in range(4):
        pq.write_table(table.slice(bounds[i], bounds[i + 1] - bounds[i]), folder / f"p{i}.parquet")
    return folder, df


@pytest.fixture(scope="module")
def in_memory(partitioned):
    folder, _ = partitioned
    raw, fingerprint = read_transactions(folder)
    ingested = split_valid(raw, source=str(folder), fingerprint=fingerprint, now=NOW)
    cleaned = clean_transactions(ingested.data)
    table = build_training_table(cleaned.data, seed=3)
    snapshot = build_feature_snapshot(cleaned.data, window_days=60)
    return ingested, cleaned, table, snapshot


@pytest.fixture(scope="module")
def out_of_core(partitioned, tmp_path_factory):
    folder, _ = partitioned
    work = tmp_path_factory.mktemp("work") / "spill"
    # Small chunks and buckets: many chunks per part and many buckets per run.
    spilled = outofcore.spill_transactions(
        folder, work, now=NOW, chunk_rows=3_000, bucket_rows=4_000
    )
    buckets = clean_buckets(spilled.buckets, sample_rows=5_000, seed=1)
    table = build_training_table(buckets, seed=3)
    snapshot = build_feature_snapshot(buckets, window_days=60)
    return spilled, buckets, table, snapshot


def test_quarantine_is_global_and_identical(in_memory, out_of_core) -> None:
    ingested, spilled = in_memory[0], out_of_core[0]
    assert spilled.report.chunks > 4 and spilled.report.buckets > 4
    # The planted problems are all found, including conflicts across chunks and partitions.
    checks = set(ingested.quarantine["check"])
    assert "transaction_id_conflict" in checks and "not_in_future" in checks
    assert spilled.buckets.drop_rows.size >= 2  # valid in their chunk, quarantined globally
    pd.testing.assert_frame_equal(spilled.quarantine, ingested.quarantine)
    pd.testing.assert_frame_equal(
        spilled.quarantined_rows, ingested.quarantined_rows, check_index_type=False
    )
    streamed = spilled.report.to_dict()
    for key, value in ingested.report.to_dict().items():
        if key != "seconds":
            assert streamed[key] == value, key
    assert streamed["mode"] == "out_of_core" and "mode" not in ingested.report.to_dict()


def test_cleaning_report_matches(in_memory, out_of_core) -> None:
    cleaned, buckets = in_memory[1], out_of_core[1]
    assert cleaned.report.duplicates_removed >= 4
    whole = buckets.report.to_dict()
    for key, value in cleaned.report.to_dict().items():
        if key not in ("buckets", "seconds"):
            assert whole[key] == value, key
    assert buckets.rows == len(cleaned.data)
    # The EDA sample: cleaned rows, sorted by time, about the asked size.
    assert 3_500 < len(buckets.sample) < 6_500
    assert buckets.sample["TransactionStartTime"].is_monotonic_increasing
    assert set(buckets.sample["TransactionId"]) <= set(cleaned.data["TransactionId"])


def test_training_table_is_identical(in_memory, out_of_core) -> None:
    a, b = in_memory[2], out_of_core[2]
    pd.testing.assert_frame_equal(b.X, a.X, check_exact=True)
    pd.testing.assert_series_equal(b.y, a.y, check_exact=True)
    pd.testing.assert_frame_equal(b.rfm, a.rfm, check_exact=True)
    assert b.report == a.report
    assert (b.cutoff, b.as_of) == (a.cutoff, a.as_of)


def test_feature_snapshot_is_identical(in_memory, out_of_core) -> None:
    a, b = in_memory[3], out_of_core[3]
    pd.testing.assert_frame_equal(b, a, check_exact=True)
    assert b.attrs == a.attrs


def test_one_bucket_equals_many(partitioned, in_memory, tmp_path) -> None:
    folder, _ = partitioned
    spilled = outofcore.spill_transactions(folder, tmp_path / "w", now=NOW, bucket_rows=10**9)
    assert spilled.report.buckets == 1
    buckets = clean_buckets(spilled.buckets)
    pd.testing.assert_frame_equal(
        build_feature_snapshot(buckets, window_days=60), in_memory[3], check_exact=True
    )
    buckets.cleanup()
    assert not (tmp_path / "w").exists()


def test_bad_share_over_threshold_fails_with_the_quarantine(partitioned, tmp_path) -> None:
    folder, df = partitioned
    with pytest.raises(TooManyBadRowsError, match=r"fail validation.*above the 0\.01%") as info:
        outofcore.spill_transactions(folder, tmp_path / "w", now=NOW, max_bad_share=0.0001)
    result = info.value.result
    assert len(result.quarantine) > 0
    assert not (tmp_path / "w").exists()  # the spill is removed


def test_reading_stops_early_on_a_hopeless_input(small_raw, tmp_path) -> None:
    bad = small_raw.assign(CurrencyCode="USD")
    folder = tmp_path / "bad"
    folder.mkdir()
    for i in range(3):
        bad.iloc[i * 10_000 : (i + 1) * 10_000].to_parquet(folder / f"p{i}.parquet")
    with pytest.raises(IngestError, match="reading stopped after 2000 rows"):
        outofcore.spill_transactions(folder, tmp_path / "w", now=NOW, chunk_rows=2_000)


def test_missing_column_is_structural(small_raw, tmp_path) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    small_raw.iloc[:100].to_parquet(folder / "a.parquet")
    small_raw.iloc[100:200].drop(columns=["Amount"]).to_parquet(folder / "b.parquet")
    with pytest.raises(IngestError, match=r"b\.parquet.*required column\(s\) missing: Amount"):
        outofcore.spill_transactions(folder, tmp_path / "w", now=NOW)


def test_should_stream(small_path, tmp_path) -> None:
    assert outofcore.should_stream(small_path) is False
    assert outofcore.should_stream(small_path, min_rows=1_000) is True
    assert outofcore.should_stream(tmp_path) is False  # no parquet inside
    pd.DataFrame({"a": [1]}).to_parquet(tmp_path / "x.parquet")
    assert outofcore.should_stream(tmp_path) is True
    assert outofcore.should_stream("postgresql://h/db#t") is False
    assert outofcore.count_rows(small_path) == 30_000


def test_csv_is_not_streamed(tmp_path) -> None:
    with pytest.raises(IngestError, match="reads a Parquet file or a folder"):
        outofcore.spill_transactions(tmp_path / "tx.csv", tmp_path / "w")


def test_symbolic_links_are_not_followed(small_raw, tmp_path, caplog) -> None:
    """Issue 15.11: a link loop (``sub -> .``) made 2,000 rows count as 82,000."""
    import logging
    import os

    from credit.ingest import ingest
    from credit.sources import fingerprint_file

    folder = tmp_path / "parts"
    folder.mkdir()
    small_raw.iloc[:2_000].to_parquet(folder / "p0.parquet")
    plain = fingerprint_file(folder)
    small_raw.iloc[2_000:2_500].to_parquet(tmp_path / "outside.parquet")
    os.symlink(".", folder / "sub")  # back into the folder
    os.symlink(tmp_path / "outside.parquet", folder / "elsewhere.parquet")  # out of it
    os.symlink(tmp_path, folder / "up")
    skipped = ["elsewhere.parquet", "sub", "up"]
    with caplog.at_level(logging.WARNING):
        result = ingest(folder, now=NOW)
    assert result.report.rows == len(result.data) == 2_000
    assert result.report.skipped_links == skipped
    assert "skipped 3 symbolic link(s)" in caplog.text
    assert fingerprint_file(folder) == plain  # links are not content
    spilled = outofcore.spill_transactions(folder, tmp_path / "w", now=NOW)
    assert spilled.report.rows == spilled.report.rows_read == 2_000
    assert spilled.report.skipped_links == skipped
    assert outofcore.count_rows(folder) == 2_000
    spilled.buckets.cleanup()


@pytest.mark.e2e
def test_retrain_flow_streams_a_parquet_folder(prefect_harness, tmp_path, small_raw) -> None:
    """The flow picks the out-of-core path for a folder and stores the in-memory snapshot."""
    import sampledata
    from flows.retrain import RetrainConfig, retrain
    from registry import Registry

    folder = tmp_path / "parts"
    sampledata.write_partitioned(small_raw, folder, 3)
    config = RetrainConfig(
        data=str(folder),
        db_url=f"sqlite:///{tmp_path / 'reg.db'}",
        candidates=["logreg", "hist_gb"],
        grids={"logreg": {"clf__C": [0.1]}, "hist_gb": {"clf__max_iter": [40]}},
        importance_repeats=1,
        out_dir=str(tmp_path / "run"),
        chunk_rows=7_000,
        bucket_rows=8_000,
        eda_sample_rows=5_000,
        search_max_rows=400,  # the searches see a sample; the chosen model is refitted on all
    )
    summary = retrain(config)
    assert summary["data"]["path"] == "out_of_core"
    assert summary["data"]["rows"] == len(small_raw)
    assert summary["sampling"]["grid_search"]["rows"] == 400
    assert summary["sampling"]["final_fit"]["rows"] == summary["sampling"]["final_fit"]["of"]
    out = Path(config.out_dir)
    expected = build_feature_snapshot(clean_transactions(small_raw).data, window_days=60)
    stored = pd.read_parquet(out / "feature_snapshot.parquet")
    pd.testing.assert_frame_equal(stored, expected, check_exact=True, check_like=False)
    assert "uniform sample of" in (out / "eda_report.html").read_text()
    assert "Sampling (large training table)" in (out / "model_card.md").read_text()
    # the mapped validate-parts tasks run in worker threads: no timeout warning either
    from builders import flow_run_logs

    assert [
        log.message[:80] for log in flow_run_logs(summary["flow_run_id"]) if log.level >= 30
    ] == []
    assert not (out / "spill").exists()  # the work folder is removed
    version = Registry(config.db_url).get_version("bati-credit", 1)
    assert version.n_rows == len(small_raw)
    assert version.params["sampling"] == summary["sampling"]


def test_one_implementation_per_stage() -> None:
    """Issue 12.2: tasks take one type (no path switches) and no module imports another
    project module's private names."""
    import ast

    root = Path(__file__).resolve().parents[2]
    own = ("credit", "tasks", "flows", "schemas", "registry", "api")
    switches, private = [], []
    for folder in ("credit", "tasks", "flows"):
        for path in sorted((root / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                where = f"{path.relative_to(root)}:{getattr(node, 'lineno', 0)}"
                if folder == "tasks" and isinstance(node, ast.Name) and node.id == "isinstance":
                    switches.append(where)
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(own):
                    private += [f"{where} {a.name}" for a in node.names if a.name.startswith("_")]
    assert switches == [] and private == []


def test_part_groups_are_contiguous_and_sized(tmp_path) -> None:
    """Issue 16.5: one spill task per group of parts of about ``bucket_rows`` rows."""
    parts = [outofcore.Part(tmp_path / f"p{i}", rows, 0, ()) for i, rows in enumerate([5, 5, 2, 9])]
    groups = outofcore.part_groups(parts, 8)
    assert [[p.path.name for p in g] for g in groups] == [["p0", "p1"], ["p2", "p3"]]
    assert outofcore.part_groups(parts, 1) == [[p] for p in parts]
    assert outofcore.part_groups(parts, 10**9) == [parts]


def test_bucket_groups_carry_their_offset_and_dates(out_of_core) -> None:
    spilled = out_of_core[0]
    assert spilled.report.partitions == 4  # each part its own group at bucket_rows=4,000
    groups = spilled.buckets.groups()
    assert [g.offset for g in groups] == list(range(len(spilled.buckets.buckets)))
    assert all(g.first == spilled.buckets.first for g in groups)

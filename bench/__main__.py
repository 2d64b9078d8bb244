"""``make bench`` (``python -m bench``): the stage benchmarks at every size, as one table.

    python -m bench                      # demo set, 1,000,000 and 10,000,000 rows (~25 min)
    python -m bench --quick              # the demo set only (~1 min)
    python -m bench --sizes 95662,1M     # chosen sizes (K and M suffixes allowed)
    python -m bench --large              # also 50,000,000 rows through ingestion + features
    python -m bench --api                # also bench/api.py (HTTP latency, 60 s phases)
    python -m bench --no-registry        # skip bench/registry.py

Each size runs ``python -m bench.flow`` in its own subprocess, so peak memory is per size: data
generation, every stage of the retrain flow (ingest+validate, clean, label, features, EDA, IV,
each grid search, evaluation, registration), the whole flow and its orchestration overhead, batch
scoring and the score flow. ``--large`` adds the 50,000,000-row out-of-core run of ingestion,
cleaning, features and labels (no training). ``bench/registry.py`` adds the registry figures
(cold champion load, registrations, look-ups). The stage scripts ``bench/generate.py``,
``ingest.py``, ``features.py`` and ``train.py`` print more detail on the same stages and still run
alone. ``bench/monitor.py`` (PSI of 330,000 customers x 80 inputs) and ``bench/registry_io.py``
(feature snapshot write/read and score writes, SQLite and PostgreSQL when reachable) add their
rows too (skipped by ``--quick``; ``--no-registry`` skips both registry scripts). The table goes
to stdout and, as Markdown with the machine it ran on, to ``var/bench/latest.md``
(``latest.json`` beside it).

History: every run also adds ``var/bench/history/<UTC timestamp>-<commit>.json`` (the commit,
whether the tree had uncommitted changes, the machine and every row), and the table's last
column compares each row's wall seconds with the same row of the previous record.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.flow import FLOW_TARGETS, PEAK_TARGETS_MIB  # noqa: E402

DEFAULT_SIZES = (95_662, 1_000_000, 10_000_000)
LARGE = 50_000_000
OUT = ROOT / "var" / "bench"
HISTORY = OUT / "history"


def parse_size(text: str) -> int:
    """``95662``, ``1M``, ``250K``, ``1e6``."""
    t = text.strip().upper().replace("_", "").replace(",", "")
    scale = {"K": 1_000, "M": 1_000_000}.get(t[-1:], 1)
    return int(float(t[:-1] if scale > 1 else t) * scale)


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import psutil

        mem_gib = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:  # pragma: no cover
        mem_gib = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": mem_gib,
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }


def _run(cmd: list[str], timeout: float) -> list[dict[str, Any]]:
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"{' '.join(cmd[2:])} failed: " + " | ".join(tail))
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_size(rows: int, *, data_only: bool = False) -> dict[str, Any]:
    """One size in a fresh subprocess, with the load average before and after."""
    cmd = [sys.executable, "-m", "bench.flow", "--rows", str(rows)]
    if data_only:
        cmd.append("--data-only")
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    stages = _run(cmd, timeout=4 * 3600)
    return {
        "rows": rows,
        "data_only": data_only,
        "stages": stages,
        "seconds": round(time.perf_counter() - t0, 1),
        "load_before": [round(x, 2) for x in load0],
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }


def registry_rows() -> list[dict[str, Any]]:
    """bench/registry.py's figures as table rows (SQLite, and PostgreSQL when reachable)."""
    results = _run([sys.executable, "-m", "bench.registry", "--repeats", "5"], timeout=1800)
    rows = []
    for r in results:
        backend = r["backend"]
        for key, v in r.items():
            if key.startswith("champion_load_"):
                kind = key.removeprefix("champion_load_")
                ms = v["cold_load_ms_median"]
                rows.append(
                    _extra(
                        f"registry {backend}: cold champion load ({kind} forest)",
                        1,
                        "model",
                        ms / 1e3,
                    )
                )
        g, lk = r["registrations"], r["lookups"]
        rows.append(_extra(f"registry {backend}: registrations", g["n"], "versions", g["total_s"]))
        rows.append(
            _extra(f"registry {backend}: champion look-ups", lk["n"], "look-ups", lk["total_s"])
        )
    return rows


def io_rows() -> list[dict[str, Any]]:
    """bench/registry_io.py's figures (feature snapshot write/read, score writes) as rows."""
    results = _run([sys.executable, "-m", "bench.registry_io"], timeout=1800)
    rows = []
    for r in results:
        step = r["step"].replace("-", " ")
        row = _extra(f"registry {r['backend']}: {step}", r["customers"], "customers", r["seconds"])
        rows.append({**row, "peak_mib": r.get("peak_rss_mib")})
    return rows


def monitor_rows() -> list[dict[str, Any]]:
    """bench/monitor.py's figures (references, PSI of every input and the score) as rows."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench.monitor"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if proc.returncode != 0:
        raise RuntimeError("bench.monitor failed: " + proc.stderr.strip()[-300:])
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    label = f"x {r['inputs']} inputs"
    return [
        {
            **_extra(
                f"monitor: references {label}", r["customers"], "customers", r["references_s"]
            ),
            "peak_mib": r["peak_rss_mib"],
        },
        {
            **_extra(f"monitor: PSI {label}", r["customers"], "customers", r["psi_s"]),
            "peak_mib": r["peak_rss_mib"],
        },
    ]


def _extra(stage: str, n: int, unit: str, seconds: float) -> dict[str, Any]:
    return {
        "stage": stage,
        "rows": n,
        "unit": unit,
        "seconds": round(seconds, 3),
        "rows_per_s": round(n / seconds) if seconds > 0 else None,
        "peak_mib": None,
    }


def api_lines() -> list[str]:
    """bench/api.py's own summary (HTTP latency and throughput), printed as it prints it."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench.api"], cwd=ROOT, capture_output=True, text=True, timeout=3600
    )
    return [line for line in proc.stdout.splitlines() if not line.startswith(("{", "["))][-40:]


# -------------------------------------------------------------------------------------------
# The table
# -------------------------------------------------------------------------------------------


def _size_label(rows: int) -> str:
    if rows % 1_000_000 == 0:
        return f"{rows // 1_000_000}M"
    return f"{rows:,}"


def _fmt(v: Any, digits: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}"


def _key(size: str, stage: str) -> str:
    return f"{size} | {stage}"


def previous_seconds(record: dict[str, Any] | None) -> dict[str, float]:
    """``"size | stage" -> wall seconds`` of a history record (empty without one)."""
    if not record:
        return {}
    out = {}
    for run in record.get("runs", []):
        label = _run_label(run)
        for s in run["stages"]:
            out[_key(label, s["stage"])] = float(s["seconds"])
    for s in record.get("extras", []):
        out[_key("-", s["stage"])] = float(s["seconds"])
    return out


def _change(now: float, before: float | None) -> str:
    """``-3.10 s (-12%)`` against the previous run; ``new`` when it had no such row."""
    if before is None:
        return "new"
    diff = now - before
    pct = f" ({100 * diff / before:+.0f}%)" if before else ""
    return f"{diff:+,.2f} s{pct}"


def _run_label(run: dict[str, Any]) -> str:
    return _size_label(run["rows"]) + (" (data only)" if run["data_only"] else "")


def table_lines(
    runs: list[dict[str, Any]],
    extras: list[dict[str, Any]],
    previous: dict[str, float] | None = None,
) -> list[str]:
    """The Markdown table; with ``previous`` (:func:`previous_seconds`) a last column gives
    each row's change in wall seconds against the previous run."""
    compare = previous is not None
    head = "| size | stage | rows | unit | wall s | CPU s | rows/s | peak MiB |"
    rule = "|---|---|---:|---|---:|---:|---:|---:|"
    if compare:
        head, rule = head + " vs previous |", rule + "---:|"
    lines = [head, rule]

    def line(label: str, s: dict[str, Any], digits: int) -> str:
        seconds = float(s["seconds"])
        text = (
            f"| {label} | {s['stage']} | {_fmt(s['rows'])} | {s['unit']} | "
            f"{_fmt(seconds, digits)} | {_fmt(s.get('cpu_s'))} | {_fmt(s['rows_per_s'])} | "
            f"{_fmt(s.get('peak_mib'))} |"
        )
        if compare:
            text += f" {_change(seconds, previous.get(_key(label, s['stage'])))} |"
        return text

    for run in runs:
        for s in run["stages"]:
            lines.append(line(_run_label(run), s, 2))
    for s in extras:
        lines.append(line("-", s, 3))
    return lines


# -------------------------------------------------------------------------------------------
# History
# -------------------------------------------------------------------------------------------


def commit() -> dict[str, Any]:
    """The checked-out commit and whether the tree differs from it (``unknown`` without git)."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    sha = git("rev-parse", "HEAD")
    return {
        "commit": sha or "unknown",
        "short": sha[:10] if sha else "unknown",
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")) if sha else None,
    }


def last_record(folder: Path = HISTORY) -> dict[str, Any] | None:
    """The newest history record (by the time it was written), or None."""
    paths = sorted(folder.glob("*.json"), key=lambda p: (p.stat().st_mtime_ns, p.name))
    for path in reversed(paths):
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            continue
    return None


def save_record(record: dict[str, Any], folder: Path = HISTORY) -> Path:
    """Write ``<UTC timestamp>-<commit>.json`` (never overwriting an earlier record)."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(record.get("time", time.time())))
    path = folder / f"{stamp}-{record['git']['short']}.json"
    n = 1
    while path.exists():
        n += 1
        path = folder / f"{stamp}-{record['git']['short']}-{n}.json"
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def growth_lines(runs: list[dict[str, Any]], small: int, large: int) -> list[str]:
    """Time and peak-memory ratios of every stage between two sizes (x10 rows: linear = 10)."""
    by = {(r["rows"], r["data_only"]): {s["stage"]: s for s in r["stages"]} for r in runs}
    a, b = by.get((small, False)), by.get((large, False))
    if not a or not b:
        return []
    factor = large / small
    lines = [
        f"| stage | wall s {_size_label(small)} | wall s {_size_label(large)} | time x | "
        f"peak MiB x | rows x | verdict |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for stage, s1 in a.items():
        s2 = b.get(stage)
        if s2 is None or not s1["seconds"]:
            continue
        t = s2["seconds"] / s1["seconds"]
        m = (s2["peak_mib"] / s1["peak_mib"]) if s1.get("peak_mib") and s2.get("peak_mib") else None
        r = s2["rows"] / s1["rows"] if s1["rows"] else None
        verdict = (
            "sub-linear"
            if t < 0.9 * factor
            else ("linear" if t <= 1.15 * factor else "SUPER-LINEAR")
        )
        if r is not None and r < factor * 0.9:
            verdict = f"input x{r:.1f} (sampled/capped)"
        lines.append(
            f"| {stage} | {s1['seconds']:,.2f} | {s2['seconds']:,.2f} | {t:.1f} | "
            f"{_fmt(m, 1) if m else '-'} | {_fmt(r, 1) if r else '-'} | {verdict} |"
        )
    return lines


def target_lines(runs: list[dict[str, Any]]) -> list[str]:
    """The issue's figures, reached or not."""
    out = []
    for run in runs:
        st = {s["stage"]: s for s in run["stages"]}
        n, label = run["rows"], _size_label(run["rows"])
        flow = st.get("retrain flow (whole)")
        target_s = (flow or {}).get("target_s") or FLOW_TARGETS.get(n)
        if flow and n <= 100_000:
            ov = st["orchestration overhead"]
            out.append(
                f"- demo set: whole retrain flow {flow['seconds']:.1f} s, "
                f"{flow.get('cpu_s', '-')} CPU s (target < {target_s:.0f} s: "
                f"{_ok(flow['seconds'] < target_s)}); orchestration overhead {ov['seconds']:.2f} s = "
                f"{100 * ov['share_of_flow']:.1f}% of the flow (target < 15%: "
                f"{_ok(ov['share_of_flow'] < 0.15)})"
            )
        peak_mib = PEAK_TARGETS_MIB[10_000_000]
        if flow and n == 10_000_000:
            out.append(
                f"- 10M rows: whole retrain flow {flow['seconds']:.0f} s (target < {target_s:.0f} s: "
                f"{_ok(flow['seconds'] < target_s)}), peak {flow['peak_mib']:,} MiB (target < "
                f"{peak_mib / 1024:.0f} GiB: {_ok(flow['peak_mib'] < peak_mib)})"
            )
        whole = st.get("ingestion + features (whole, out of core)")
        if whole:
            out.append(
                f"- {label} rows, partitioned Parquet, out of core: ingestion + features "
                f"{whole['seconds']:.0f} s, peak {whole['peak_mib']:,} MiB (target < 4 GiB: "
                f"{_ok(whole['peak_mib'] < 4096)})"
            )
        scoring = st.get("batch scoring (score_frame)")
        if scoring:
            want = scoring.get("target_per_s") or 50_000
            out.append(
                f"- {label}: batch scoring {scoring['rows_per_s']:,} customers/s over "
                f"{scoring['rows']:,} customers (target >= {want:,}: "
                f"{_ok(scoring['rows_per_s'] >= want)})"
            )
    return out


def _ok(flag: bool) -> str:
    return "ok" if flag else "MISSED"


def markdown(
    info: dict[str, Any],
    runs: list[dict[str, Any]],
    extras: list[dict[str, Any]],
    api: list[str],
    previous: dict[str, Any] | None = None,
    git: dict[str, Any] | None = None,
) -> str:
    """The report; ``previous`` is the last history record (compared row by row)."""
    lines = [
        "# Benchmark (`make bench`)",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB RAM, "
        f"Python {info['python']}, {info['os']}; {info['date']}.",
        "",
    ]
    if git:
        lines += [f"Commit {git['short']}{' with uncommitted changes' if git['dirty'] else ''}."]
    if previous:
        pg = previous.get("git", {})
        lines += [
            f"Compared with the previous run: {previous.get('machine', {}).get('date', '?')}, "
            f"commit {pg.get('short', '?')}{' (dirty)' if pg.get('dirty') else ''}.",
        ]
    else:
        lines += ["No previous run in var/bench/history: nothing to compare with."]
    lines += [""]
    for run in runs:
        lines.append(
            f"- {_size_label(run['rows'])}{' (data only)' if run['data_only'] else ''}: "
            f"{run['seconds']:,.0f} s in all; load average (1/5/15 min) before "
            f"{'/'.join(map(str, run['load_before']))}, after {'/'.join(map(str, run['load_after']))}"
        )
    lines += ["", *table_lines(runs, extras, previous_seconds(previous)), ""]
    sizes = sorted({r["rows"] for r in runs if not r["data_only"]})
    if 1_000_000 in sizes and 10_000_000 in sizes:
        lines += ["Growth from 1M to 10M rows (linear = 10):", ""]
        lines += [*growth_lines(runs, 1_000_000, 10_000_000), ""]
    targets = target_lines(runs)
    if targets:
        lines += ["Targets:", "", *targets, ""]
    if api:
        lines += ["bench/api.py:", "", "```", *api, "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", help="comma-separated row counts (default 95662,1M,10M)")
    parser.add_argument("--quick", action="store_true", help="the demo set only")
    parser.add_argument("--large", action="store_true", help="add 50M rows, ingestion+features")
    parser.add_argument("--api", action="store_true", help="add bench/api.py (several minutes)")
    parser.add_argument(
        "--no-registry", action="store_true", help="skip bench/registry.py and registry_io.py"
    )
    args = parser.parse_args(argv)
    if args.quick:
        sizes = [DEFAULT_SIZES[0]]
    elif args.sizes:
        sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    else:
        sizes = list(DEFAULT_SIZES)
    info = machine()
    git = commit()
    previous = last_record()
    before = previous_seconds(previous)
    print(f"machine: {json.dumps(info)}; commit {git['short']}", flush=True)
    runs = []
    plan = [(n, False) for n in sizes] + ([(LARGE, True)] if args.large else [])
    for n, data_only in plan:
        print(f"running {_size_label(n)}{' (data only)' if data_only else ''} ...", flush=True)
        runs.append(run_size(n, data_only=data_only))
        for line in table_lines([runs[-1]], [], before)[2:]:
            print(line, flush=True)
    extras = []
    if not args.quick:
        extras += monitor_rows()
        if not args.no_registry:
            extras += registry_rows() + io_rows()
    api = api_lines() if args.api else []
    text = markdown(info, runs, extras, api, previous, git)
    record = {"time": time.time(), "git": git, "machine": info, "runs": runs, "extras": extras}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "latest.md").write_text(text + "\n")
    (OUT / "latest.json").write_text(json.dumps(record, indent=1) + "\n")
    saved = save_record(record)
    print()
    print(text)
    print(f"\nwritten to {OUT / 'latest.md'}; history record {saved.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

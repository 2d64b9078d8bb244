"""What a retrain run reports: its summary (the CLI's JSON line), the model card and the
candidates table (files in the run folder and Prefect artifacts)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from credit.csvsafe import write_csv
from credit.gates import GateResult
from credit.report_links import markdown_page
from credit.training import CandidateOutcome, TrainingData, headline_metrics, points_records
from flows.candidates import TrainedCandidates

if TYPE_CHECKING:
    from registry import PromotionDecision, VersionInfo

CARD_METRICS = (
    "roc_auc",
    "roc_auc_ci_low",
    "roc_auc_ci_high",
    "gini",
    "ks",
    "brier",
    "pr_auc",
    "accuracy",
    "precision",
    "recall",
    "f1",
    "threshold",
)


@dataclass(frozen=True)
class RetrainSummary:
    """The typed parts of a finished run; :meth:`to_dict` is the JSON edge."""

    flow_run_id: str
    registered: VersionInfo
    decision: PromotionDecision
    best: CandidateOutcome
    trained: TrainedCandidates
    training: TrainingData
    out_dir: Path
    gates: GateResult | None  # None: no champion with references to gate against

    def to_dict(self) -> dict[str, Any]:
        """The flow's result and the CLI's last line (keys are a documented contract)."""
        return {
            "flow_run_id": self.flow_run_id,
            "model_name": self.registered.model_name,
            "model_version": self.registered.version,
            "champion": self.decision.champion_version,
            "promoted": bool(self.decision.promoted),
            "promotion_reason": self.decision.reason,
            "candidate": self.best.name,
            "metrics": headline_metrics(self.best.metrics),
            "candidates": {o.name: headline_metrics(o.metrics) for o in self.trained.outcomes},
            "out_dir": str(self.out_dir),
            "data": self.training.data.to_dict(),
            "sampling": self.trained.sampling,
            "held": bool(self.gates is not None and not self.gates.passed),
            "gates": None
            if self.gates is None
            else {"passed": self.gates.passed, "failures": self.gates.failures},
            **self.training.report,
        }


def _sampling_lines(sampling: dict[str, dict[str, Any]]) -> list[str]:
    if not any(v["rows"] < v["of"] for v in sampling.values()):
        return []
    lines = [
        "",
        "## Sampling (large training table)",
        "| step | customers used | of |",
        "|---|---|---|",
    ]
    lines += [
        f"| {step.replace('_', ' ')} | {v['rows']:,} | {v['of']:,} |"
        for step, v in sampling.items()
    ]
    lines.append(
        "Samples are stratified on the label and seeded; held-out metrics use every test customer."
    )
    return lines


def _gate_lines(gates: GateResult | None) -> list[str]:
    if gates is None:
        return ["- promotion gates: not applicable (no other champion with references)"]
    if gates.passed:
        return ["- promotion gates against the champion's references: passed"]
    lines = [
        "- promotion gates: **held for approval** (`python -m registry promote` with an "
        "actor and a reason is the human path)"
    ]
    return lines + [f"  - {failure}" for failure in gates.failures]


def source_label(source: str) -> str:
    """A data source as the card shows it: a file's name (no absolute path, which says where
    the server keeps its data), or a database URL's scheme and table (never its host or
    credentials)."""
    if "://" in source:
        scheme, _, rest = source.partition("://")
        table = rest.rpartition("#")[2] if "#" in rest else ""
        return f"{scheme}://...{'#' + table if table else ''}"
    return Path(source).name or source


REPORT_FILES = (
    ("EDA report", "eda_report.html"),
    ("Model card", "model_card.html"),
    ("Candidates table", "candidates.csv"),
)


def report_links_markdown(out_dir: Path) -> str | None:
    """The ``reports`` artifact: http links (served by the API under /reports) to the run's
    report files, or None when the run folder is not one the API serves (a custom out_dir)."""
    from credit.paths import runs_dir
    from credit.report_links import report_link

    if out_dir.resolve().parent != runs_dir().resolve():
        return None
    run_id = out_dir.name
    lines = ["# Reports of this run", ""]
    lines += [
        f"- [{label}]({report_link(run_id, name)})"
        for label, name in REPORT_FILES
        if (out_dir / name).exists()
    ]
    lines += [
        "",
        "Links open on the API (`BATI_API_URL`); they are signed and expire after a day when "
        "`BATI_ADMIN_TOKEN` is set, else they need the admin bearer token.",
    ]
    return "\n".join(lines)


def render_model_card(summary: RetrainSummary) -> str:
    """The Markdown card: data, sampling, held-out metrics and the champion decision."""
    best, data, decision = summary.best, summary.training.data, summary.decision
    m = best.metrics
    lines = [
        f"# Model card: {summary.registered.model_name} v{summary.registered.version}",
        "",
        f"**Candidate** `{best.name}` chosen by cross-validated ROC-AUC "
        f"({best.search.best_cv_auc:.4f}); calibration: {best.calibration.get('method')}.",
        "",
        "## Data",
        f"- source: `{source_label(data.source)}`",
        f"- fingerprint (sha256): `{data.fingerprint}`",
        f"- rows: {data.rows:,} ({data.quarantined:,} quarantined)",
        f"- customers: {data.customers:,}",
        f"- windows: `{json.dumps(data.windows)}`",
    ]
    if data.path == "out_of_core":
        lines.append("- processed out of core (partition by partition; the EDA shows a sample)")
    lines += _sampling_lines(summary.trained.sampling)
    lines += ["", "## Held-out metrics", "| metric | value |", "|---|---|"]
    lines += [f"| {key} | {m[key]:.4f} |" for key in CARD_METRICS if m.get(key) is not None]
    lines += [
        f"| dummy ROC-AUC | {best.evaluation.baseline_metrics['roc_auc']:.4f} |",
        "",
        "## Champion decision",
        f"- promoted: **{decision.promoted}**",
        f"- champion after this run: v{decision.champion_version}",
        f"- why: {decision.reason}",
        *_gate_lines(summary.gates),
        "",
        f"Best parameters: `{json.dumps(best.summary()['best_params'])}`",
    ]
    return "\n".join(lines)


def readable(records: list[dict[str, Any]], digits: int = 4) -> list[dict[str, Any]]:
    """Records for a table artifact, which people read: floats rounded to ``digits`` decimals
    (a WoE of -3.3e-16 shows as 0.0). The run folder's CSV files keep full precision."""

    def cell(value: Any) -> Any:
        if isinstance(value, float) and value == value:  # NaN stays as is
            return round(value, digits) + 0.0  # + 0.0: no "-0.0"
        return value

    return [{k: cell(v) for k, v in r.items()} for r in records]


def publish(summary: RetrainSummary) -> None:
    """Candidate table and model card, as Prefect artifacts and files in the run folder."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    rows = [o.summary() for o in summary.trained.outcomes]
    write_csv(pd.DataFrame(rows), summary.out_dir / "candidates.csv")
    table = [{k: v for k, v in r.items() if k != "best_params"} for r in rows]
    create_table_artifact(
        readable(table), key="candidate-metrics", description="Held-out metrics of every candidate"
    )
    card = render_model_card(summary)
    (summary.out_dir / "model_card.md").write_text(card)
    title = f"Model card: {summary.registered.model_name} v{summary.registered.version}"
    (summary.out_dir / "model_card.html").write_text(markdown_page(card, title), encoding="utf-8")
    create_markdown_artifact(card, key="model-card", description="Registered model card")
    links = report_links_markdown(summary.out_dir)
    if links is not None:
        create_markdown_artifact(links, key="reports", description="Run reports over http")
    publish_scorecard(summary)


def scorecard_outcome(summary: RetrainSummary) -> CandidateOutcome | None:
    """The candidate whose points table the run publishes: the chosen one when it is a WoE
    scorecard, else the first scorecard candidate (None when there is none)."""
    for outcome in (summary.best, *summary.trained.outcomes):
        if outcome.model.points_table() is not None:
            return outcome
    return None


def publish_scorecard(summary: RetrainSummary) -> None:
    """The scorecard's points table as ``scorecard.csv`` in the run folder and the ``scorecard``
    table artifact (the registered version stores it too when it is the chosen candidate)."""
    from prefect.artifacts import create_table_artifact

    outcome = scorecard_outcome(summary)
    records = None if outcome is None else points_records(outcome.model)
    if not records:
        return
    write_csv(pd.DataFrame(records), summary.out_dir / "scorecard.csv")
    chosen = "registered" if outcome is summary.best else "not chosen"
    create_table_artifact(
        readable(records),
        key="scorecard",
        description=f"Points table of the `{outcome.name}` candidate ({chosen}): a customer's "
        "score is the sum of its bins' points",
    )

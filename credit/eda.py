"""Exploratory data analysis report: one self-contained HTML file per run.

Figures are drawn with matplotlib's Agg backend and embedded as base64 PNG, so the file opens
anywhere without its neighbours. Counts, rates and daily series are computed on all rows (cheap
group-bys); histograms, box plots and correlations use a seeded sample of at most
``max_plot_rows`` rows, so ten million transactions still render in seconds.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402

from credit.report_links import PAGE_CSS  # noqa: E402
from schemas import vocab  # noqa: E402

MAX_PLOT_ROWS = 200_000
#: Figure width (inches) at which a PNG (at ``_DPI``) fits the page's content column unscaled.
FIGURE_WIDTH = 12.5
_DPI = 90
_ROW_IDS = ("TransactionId", "BatchId")
_CORE_FEATURES = (
    "n_tx",
    "recency_days",
    "tenure_days",
    "active_days",
    "n_tx_30d",
    "gap_mean_days",
    "amount_sum",
    "value_median",
    "debit_sum",
    "credit_sum",
    "share_credit_tx",
    "cashback_sum",
    "fee_sum",
    "fraud_count",
    "n_products",
    "share_category_airtime",
    "share_category_financial_services",
    "share_channel_3",
)
_DISTINCT_ID_LIMIT = 2_000_000
_REQUIRED = (
    "CustomerId",
    "ProductCategory",
    "Amount",
    "Value",
    "TransactionStartTime",
    "PricingStrategy",
    "FraudResult",
)
_CATEGORICAL = ("ProductCategory", "ChannelId", "ProviderId", "PricingStrategy")
_LOG_SPAN = 1e3  # positive values spanning more than this ratio are drawn on a log scale
_COLORS = ("#2b6cb0", "#38a169", "#d69e2e", "#e53e3e", "#805ad5", "#319795")
_CSS = (
    PAGE_CSS
    + """
th,td{text-align:right;white-space:nowrap}
td:first-child,th:first-child{text-align:left}
img{max-width:100%;height:auto;display:block;margin:.6rem 0}
.note{color:#4a5568;font-size:.92rem}
.warn{color:#c53030;font-weight:600}
nav a{margin-right:.8rem}
"""
)


def _png(fig: plt.Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="figure" src="data:image/png;base64,{data}">'


def _table(df: pd.DataFrame, *, index: bool = True, floatfmt: str = "{:,.4g}") -> str:
    """An HTML table in a container that scrolls sideways when it is wider than the page."""
    table = df.to_html(
        index=index,
        escape=True,
        border=0,
        float_format=lambda v: floatfmt.format(v),
        na_rep="",
    )
    return f'<div class="scroll">{table}</div>'


def _count_axis(ax: plt.Axes) -> None:
    """At most five thousands-separated ticks on a horizontal count axis (no crowding)."""
    ax.xaxis.set_major_locator(MaxNLocator(5, integer=True))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))


def _p(text: str, cls: str = "note") -> str:
    return f'<p class="{cls}">{html.escape(text)}</p>'


def _spans_orders(values: np.ndarray) -> bool:
    pos = values[np.isfinite(values) & (values > 0)]
    return pos.size > 0 and pos.max() / pos.min() > _LOG_SPAN


def _sample(tx: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    if len(tx) <= max_rows:
        return tx
    rng = np.random.default_rng(seed)
    return tx.iloc[np.sort(rng.choice(len(tx), size=max_rows, replace=False))]


def _is_cashback(tx: pd.DataFrame) -> np.ndarray:
    if "AccountId" not in tx:
        return np.zeros(len(tx), dtype=bool)
    return (tx["AccountId"] == vocab.CASHBACK_ACCOUNT).to_numpy(dtype=bool, na_value=False)


def _distinct(tx: pd.DataFrame) -> pd.Series:
    """Distinct values per column; unique-per-row ids are only counted up to 2M rows (costly)."""
    skip = _ROW_IDS if len(tx) > _DISTINCT_ID_LIMIT else ()
    return pd.Series(
        {c: (pd.NA if c in skip else int(tx[c].nunique())) for c in tx.columns}, dtype="Int64"
    )


def _overview(tx: pd.DataFrame) -> str:
    ts = tx["TransactionStartTime"]
    first, last = ts.min(), ts.max()
    amount = tx["Amount"].to_numpy(dtype=np.float64)
    distinct = _distinct(tx)
    rows = [
        ("Transactions", f"{len(tx):,}"),
        ("Columns", f"{tx.shape[1]}"),
        ("First transaction", str(first)),
        ("Last transaction", str(last)),
        ("Days covered", f"{(last - first) / pd.Timedelta(days=1):,.1f}"),
    ]
    for col in ("CustomerId", "AccountId", "ProductId", "BatchId"):
        if col in tx and not pd.isna(distinct[col]):
            rows.append((f"Distinct {col}", f"{distinct[col]:,}"))
    cashback = _is_cashback(tx)
    fraud = tx["FraudResult"].to_numpy(dtype=np.float64)
    rows += [
        ("Debits (Amount > 0)", f"{(amount > 0).mean():.1%}"),
        ("Credits (Amount < 0)", f"{(amount < 0).mean():.1%}"),
        ("Platform cash-back rows", f"{cashback.sum():,} ({cashback.mean():.1%})"),
        ("Fraud-flagged rows", f"{int(fraud.sum()):,} ({fraud.mean():.2%})"),
    ]
    dtypes = pd.DataFrame({"dtype": tx.dtypes.astype(str), "distinct": distinct})
    note = ""
    if distinct.isna().any():
        note = _p(
            f"Row ids are not counted above {_DISTINCT_ID_LIMIT:,} rows (unique by contract)."
        )
    return (
        _table(pd.DataFrame(rows, columns=["Measure", "Value"]), index=False)
        + "<h3>Columns</h3>"
        + _table(dtypes)
        + note
        + "<h3>First five rows</h3>"
        + _table(tx.head(5).astype("str"), index=False)
    )


def _missing(tx: pd.DataFrame) -> str:
    counts = tx.isna().sum()
    table = pd.DataFrame({"missing": counts, "share": counts / max(len(tx), 1)})
    out = _table(table, floatfmt="{:.3%}")
    if counts.sum() == 0:
        return _p("No missing values in any column.") + out
    fig, ax = plt.subplots(figsize=(9, 3), layout="constrained")
    counts[counts > 0].sort_values().plot.barh(ax=ax, color=_COLORS[3])
    _count_axis(ax)
    ax.set_xlabel("missing rows")
    return out + _png(fig)


def _numeric(sample: pd.DataFrame) -> str:
    amount = sample["Amount"].to_numpy(dtype=np.float64)
    value = sample["Value"].to_numpy(dtype=np.float64)
    fig, axes = plt.subplots(1, 3, figsize=(FIGURE_WIDTH, 3.8), layout="constrained")
    if _spans_orders(np.abs(amount)):
        bins = np.logspace(0, np.log10(max(np.abs(amount).max(), 10)), 50)
        axes[0].hist(amount[amount > 0], bins=bins, alpha=0.7, label="debits", color=_COLORS[0])
        axes[0].hist(-amount[amount < 0], bins=bins, alpha=0.7, label="credits", color=_COLORS[2])
        axes[0].set_xscale("log")
        axes[0].set_xlabel("|Amount| (UGX, log scale)")
        axes[0].legend()
    else:
        axes[0].hist(amount, bins=50, color=_COLORS[0])
        axes[0].set_xlabel("Amount (UGX)")
    if _spans_orders(value):
        vpos = value[value > 0]
        axes[1].hist(vpos, bins=np.logspace(np.log10(vpos.min()), np.log10(vpos.max()), 50))
        axes[1].set_xscale("log")
        axes[1].set_xlabel("Value (UGX, log scale)")
    else:
        axes[1].hist(value, bins=50)
        axes[1].set_xlabel("Value (UGX)")
    fee = value - np.abs(amount)
    fee = fee[fee > vocab.VALUE_ROUNDING_TOLERANCE]
    axes[2].hist(fee if fee.size else [0], bins=40, color=_COLORS[4])
    axes[2].xaxis.set_major_locator(MaxNLocator(5))
    axes[2].set_xlabel("fee: Value - |Amount| (UGX), where > 1")
    for ax in axes:
        ax.set_ylabel("transactions")
    desc = sample[["Amount", "Value"]].describe(percentiles=[0.01, 0.25, 0.5, 0.75, 0.99]).T
    pos = value[np.isfinite(value) & (value > 0)]
    orders = np.log10(pos.max() / pos.min()) if pos.size else 0.0
    note = _p(
        f"Value spans {orders:.1f} orders of magnitude, so amounts are drawn on a log scale "
        "(debits and credits separately)."
        if _spans_orders(value) or _spans_orders(np.abs(amount))
        else "Amounts span less than three orders of magnitude: linear scale."
    )
    return note + _png(fig) + _table(desc, floatfmt="{:,.0f}")


def _categorical(tx: pd.DataFrame) -> str:
    cols = [c for c in (*_CATEGORICAL, "ProductId") if c in tx]
    # two panels a row, each bar at least ~0.3 inch tall: bar labels and level names never touch
    fig, axes = plt.subplots(3, 2, figsize=(FIGURE_WIDTH, 13), layout="constrained")
    flat = axes.ravel()
    for ax, col in zip(flat, cols, strict=False):
        counts = tx[col].astype("str").value_counts().head(15).sort_values()
        bars = ax.barh(counts.index, counts.to_numpy(), color=_COLORS[0])
        ax.bar_label(bars, labels=[f"{v:,}" for v in counts.to_numpy()], fontsize=8, padding=3)
        ax.set_title(col + (" (15 most frequent)" if col == "ProductId" else ""))
        ax.set_xlabel("rows")
        ax.tick_params(axis="y", labelsize=8)
        ax.margins(x=0.2)
        _count_axis(ax)
    for ax in flat[len(cols) :]:
        ax.set_visible(False)
    return _png(fig)


def _correlation(sample: pd.DataFrame, features: pd.DataFrame | None) -> str:
    local = sample["TransactionStartTime"] + pd.Timedelta(hours=3)
    amount = sample["Amount"].to_numpy(dtype=np.float64)
    num = pd.DataFrame(
        {
            "Amount": amount,
            "Value": sample["Value"].to_numpy(dtype=np.float64),
            "log|Amount|": np.log1p(np.abs(amount)),
            "is_debit": (amount > 0).astype(float),
            "is_cashback": _is_cashback(sample).astype(float),
            "hour (EAT)": local.dt.hour.to_numpy(dtype=np.float64),
            "weekday": local.dt.dayofweek.to_numpy(dtype=np.float64),
            "PricingStrategy": sample["PricingStrategy"].to_numpy(dtype=np.float64),
            "FraudResult": sample["FraudResult"].to_numpy(dtype=np.float64),
        }
    )
    out = _heatmap(num.corr(), "Transactions (Pearson)", 7)
    if features is not None and len(features) > 2:
        numeric = features.select_dtypes("number")
        numeric = numeric.loc[:, numeric.std() > 0]
        core = [c for c in _CORE_FEATURES if c in numeric]
        # then the most variable (coefficient of variation) others, up to 20 columns
        rest = numeric.drop(columns=core)
        cv = (rest.std() / rest.abs().mean().replace(0, np.nan)).fillna(0)
        chosen = numeric[core + list(cv.sort_values(ascending=False).index[: 20 - len(core)])]
        out += _heatmap(chosen.corr(method="spearman"), "Customer features (Spearman)", 10)
    return out


def _heatmap(corr: pd.DataFrame, title: str, size: float) -> str:
    fig, ax = plt.subplots(figsize=(size + 1.5, size), layout="constrained")
    im = ax.imshow(corr.to_numpy(), vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_xticks(range(len(corr)), corr.columns, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(corr)), corr.index, fontsize=8)
    if len(corr) <= 12:
        for (i, j), v in np.ndenumerate(corr.to_numpy()):
            if np.isfinite(v):
                color = "white" if abs(v) > 0.6 else "black"
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color=color)
    ax.set_title(title)
    fig.colorbar(im, ax=ax, shrink=0.8)
    return _png(fig)


def _outliers(tx: pd.DataFrame, sample: pd.DataFrame) -> str:
    rows = []
    for col in ("Amount", "Value"):
        x = tx[col].to_numpy(dtype=np.float64)
        q1, q3 = np.quantile(x, [0.25, 0.75])
        iqr = q3 - q1
        lo, hi = q1 - 1.5 * iqr, q3 + 1.5 * iqr
        logx = np.log10(np.abs(x) + 1)
        l1, l3 = np.quantile(logx, [0.25, 0.75])
        log_out = (logx > l3 + 1.5 * (l3 - l1)) | (logx < l1 - 1.5 * (l3 - l1))
        rows.append(
            {
                "column": col,
                "Q1": q1,
                "Q3": q3,
                "IQR fences": f"[{lo:,.0f}, {hi:,.0f}]",
                "outside fences": f"{((x < lo) | (x > hi)).mean():.2%}",
                "outside fences of log10(|x|+1)": f"{log_out.mean():.2%}",
                "max": x.max(),
            }
        )
    fig, ax = plt.subplots(figsize=(10, 3.5), layout="constrained")
    groups = [
        np.abs(sample.loc[sample["ProductCategory"] == c, "Value"].to_numpy(dtype=np.float64)) + 1
        for c in sorted(sample["ProductCategory"].astype("str").unique())
    ]
    labels = sorted(sample["ProductCategory"].astype("str").unique())
    ax.boxplot(groups, tick_labels=labels, vert=False, flierprops={"markersize": 2})
    ax.set_xscale("log")
    ax.set_xlabel("Value + 1 (UGX, log scale) by ProductCategory")
    top_cols = [
        c
        for c in (
            "TransactionId",
            "CustomerId",
            "ProductCategory",
            "Amount",
            "Value",
            "TransactionStartTime",
            "FraudResult",
        )
        if c in tx
    ]
    top = tx.nlargest(10, "Value")[top_cols]
    note = _p(
        "Amounts are heavy-tailed: the plain IQR rule flags many legitimate large payments, "
        "the rule on log10 amounts flags the extremes. Outliers are kept (they are real "
        "customer behaviour); features use robust statistics and log scaling."
    )
    return (
        _table(pd.DataFrame(rows), index=False)
        + note
        + _png(fig)
        + "<h3>Ten largest transactions</h3>"
        + _table(top.astype({"TransactionStartTime": "str"}), index=False)
    )


def _over_time(tx: pd.DataFrame) -> str:
    # integer UTC day numbers: group-bys on int64 are far cheaper than on timestamps or strings
    day_no = tx["TransactionStartTime"].array.as_unit("ns").asi8 // (86_400 * 10**9)
    first = int(day_no.min())
    d = day_no - first
    n_days = int(d.max()) + 1
    codes, uniques = pd.factorize(tx["CustomerId"])
    known = codes >= 0
    active = pd.unique(d[known] * len(uniques) + codes[known]) // max(len(uniques), 1)
    index = pd.to_datetime(np.arange(first, first + n_days), unit="D", utc=True)
    daily = pd.DataFrame(
        {
            "transactions": np.bincount(d, minlength=n_days),
            "value": np.bincount(d, weights=tx["Value"].to_numpy(np.float64), minlength=n_days),
            "fraud": np.bincount(
                d, weights=tx["FraudResult"].to_numpy(np.float64), minlength=n_days
            ),
            "customers": np.bincount(active, minlength=n_days),
        },
        index=index,
    )
    fig, axes = plt.subplots(3, 1, figsize=(FIGURE_WIDTH, 8), sharex=True, layout="constrained")
    axes[0].plot(daily.index, daily["transactions"], color=_COLORS[0])
    axes[0].set_ylabel("transactions / day")
    axes[0].plot(daily.index, daily["customers"], color=_COLORS[1], label="active customers")
    axes[0].legend(["transactions", "active customers"])
    axes[1].plot(daily.index, daily["value"].where(daily["value"] > 0), color=_COLORS[2])
    axes[1].set_yscale("log")
    axes[1].set_ylabel("Value / day (log)")
    axes[2].bar(daily.index, daily["fraud"], color=_COLORS[3])
    axes[2].set_ylabel("fraud rows / day")
    note = _p("UTC calendar days; the first and last day of the data may be partial.")
    monthly = daily["transactions"].groupby(daily.index.strftime("%Y-%m")).sum()
    return note + _png(fig) + _table(monthly.rename("transactions").to_frame())


def _fraud(tx: pd.DataFrame) -> str:
    cols = [c for c in _CATEGORICAL if c in tx]
    n_rows = (len(cols) + 1) // 2
    fig, axes = plt.subplots(
        n_rows, 2, figsize=(FIGURE_WIDTH, 3.4 * n_rows), layout="constrained", squeeze=False
    )
    for ax in axes.ravel()[len(cols) :]:
        ax.set_visible(False)
    tables = []
    for ax, col in zip(axes.ravel(), cols, strict=False):
        codes, levels = pd.factorize(tx[col])
        size = np.bincount(codes[codes >= 0], minlength=len(levels))
        frauds = np.bincount(
            codes[codes >= 0],
            weights=tx["FraudResult"].to_numpy(np.float64)[codes >= 0],
            minlength=len(levels),
        )
        g = pd.DataFrame(
            {"mean": frauds / np.maximum(size, 1), "sum": frauds.astype(np.int64), "size": size},
            index=pd.Index([str(v) for v in levels], name=col),
        )
        g = g.sort_values("mean")
        ax.barh(g.index, g["mean"] * 100, color=_COLORS[3])
        ax.set_title(col)
        ax.set_xlabel("fraud rate (%)")
        tables.append(
            g.rename(columns={"mean": "fraud_rate", "sum": "fraud_rows", "size": "rows"})
            .assign(feature=col)
            .reset_index(names="level")
        )
    table = pd.concat(tables, ignore_index=True)[
        ["feature", "level", "rows", "fraud_rows", "fraud_rate"]
    ]
    table = table.sort_values("fraud_rate", ascending=False).head(12)
    return (
        _png(fig) + "<h3>Highest fraud rates</h3>" + _table(table, index=False, floatfmt="{:.4f}")
    )


def _rfm(rfm: pd.DataFrame, labels: pd.Series | None, seed: int) -> str:
    data = rfm.copy()
    if labels is not None:
        data["is_high_risk"] = labels.reindex(data.index)
    if len(data) > 20_000:
        data = data.sample(20_000, random_state=seed)
    seg = data["segment"] if "segment" in data else pd.Series(0, index=data.index)
    fig, axes = plt.subplots(1, 2, figsize=(FIGURE_WIDTH, 5), layout="constrained")
    for k in sorted(seg.unique()):
        part = data[seg == k]
        label = f"segment {k}"
        if "is_high_risk" in part and len(part) and part["is_high_risk"].mean() > 0.5:
            label += " (high risk)"
        color = _COLORS[int(k) % len(_COLORS)]
        jitter = np.random.default_rng(seed).normal(0, 0.15, len(part))
        axes[0].scatter(
            part["recency_days"] + jitter,
            np.log1p(part["monetary"]),
            s=6,
            alpha=0.5,
            color=color,
            label=label,
        )
        axes[1].scatter(
            np.log1p(part["frequency"]) + jitter / 5,
            np.log1p(part["monetary"]),
            s=6,
            alpha=0.5,
            color=color,
            label=label,
        )
    axes[0].set_xlabel("recency (days)")
    axes[1].set_xlabel("log1p(frequency)")
    for ax in axes:
        ax.set_ylabel("log1p(monetary, UGX)")
        ax.legend(markerscale=3)
    summary = data.groupby(seg)[["recency_days", "frequency", "monetary"]].agg(["mean", "median"])
    summary.columns = [f"{a} {b}" for a, b in summary.columns]
    summary.insert(0, "customers", data.groupby(seg).size())
    idle = int((data["frequency"] == 0).sum())
    note = _p(
        "Each point is a customer (recency jittered slightly). Segments come from KMeans on "
        "standardised recency, log1p(frequency) and log1p(monetary); the least engaged segment is "
        f"the high-risk label. {idle:,} plotted customers made no own transaction in the RFM "
        "window and overlap at (window length, 0)."
    )
    return note + _png(fig) + _table(summary)


def _label_balance(labels: pd.Series) -> str:
    counts = labels.value_counts().sort_index()
    fig, ax = plt.subplots(figsize=(6, 3), layout="constrained")
    names = {0: "0 (not high risk)", 1: "1 (high risk)"}
    ax.bar(
        [names.get(int(k), str(k)) for k in counts.index],
        counts.to_numpy(),
        color=[_COLORS[1], _COLORS[3]][: len(counts)],
    )
    ax.set_ylabel("customers")
    share = float(labels.mean()) if len(labels) else float("nan")
    text = f"High-risk share: {share:.1%} of {len(labels):,} customers."
    warn = ""
    if not 0.05 <= share <= 0.60:
        warn = _p("The high-risk share is outside 5%-60%: check the segmentation.", "warn")
    return _p(text) + warn + _png(fig)


def _quarantine(quarantine: dict) -> str:
    rows = []
    for key, value in quarantine.items():
        if isinstance(value, dict):
            rows += [(f"{key}: {k}", str(v)) for k, v in value.items()]
        else:
            rows.append((str(key), str(value)))
    return _table(pd.DataFrame(rows, columns=["item", "value"]), index=False)


def build_eda_report(
    tx: pd.DataFrame,
    out_path: Path,
    *,
    rfm: pd.DataFrame | None = None,
    labels: pd.Series | None = None,
    quarantine: dict | None = None,
    features: pd.DataFrame | None = None,
    title: str = "Bati Bank credit scoring - exploratory data analysis",
    max_plot_rows: int = MAX_PLOT_ROWS,
    seed: int = 0,
) -> Path:
    """Write the HTML report for transactions ``tx`` to ``out_path`` and return the path.

    ``rfm`` (recency_days, frequency, monetary and optionally segment) adds the segment scatter,
    ``labels`` the label balance, ``quarantine`` the rows set aside by ingestion/cleaning and
    ``features`` a correlation map of customer features.
    """
    missing = [c for c in _REQUIRED if c not in tx.columns]
    if missing:
        raise KeyError(f"transactions lack columns {missing}")
    out_path = Path(out_path)
    sample = _sample(tx, max_plot_rows, seed)
    sampled = _p(
        f"Distributions, box plots and correlations use a random sample of {len(sample):,} of "
        f"{len(tx):,} rows."
        if len(sample) < len(tx)
        else "All rows are plotted."
    )
    sections: list[tuple[str, str]] = [
        ("Dataset overview", _overview(tx)),
        ("Missing values", _missing(tx)),
        ("Numeric distributions", sampled + _numeric(sample)),
        ("Categorical counts", _categorical(tx)),
        ("Correlations", _correlation(sample, features)),
        ("Outliers", _outliers(tx, sample)),
        ("Transactions over time", _over_time(tx)),
        ("Fraud rate by category", _fraud(tx)),
    ]
    if rfm is not None:
        sections.append(("RFM segments", _rfm(rfm, labels, seed)))
    else:
        sections.append(("RFM segments", _p("No RFM table was given for this run.")))
    if labels is not None:
        sections.append(("Label balance", _label_balance(labels)))
    else:
        sections.append(("Label balance", _p("No labels were given for this run.")))
    if quarantine:
        sections.append(("Quarantined rows", _quarantine(quarantine)))

    anchors = [(f"s{i}", name) for i, (name, _) in enumerate(sections)]
    nav = " ".join(f'<a href="#{a}">{html.escape(n)}</a>' for a, n in anchors)
    body = "".join(
        f'<section id="{a}"><h2>{html.escape(name)}</h2>{content}</section>'
        for (a, _), (name, content) in zip(anchors, sections, strict=True)
    )
    doc = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><nav>{nav}</nav>{body}</body></html>"
    )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(doc, encoding="utf-8")
    return out_path

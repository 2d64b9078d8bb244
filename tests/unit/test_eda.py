"""EDA report: one self-contained HTML file with every section and embedded PNG figures."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from builders import random_clean as _random_clean

from credit.eda import build_eda_report
from credit.label import build_training_table

SECTIONS = (
    "Dataset overview",
    "Missing values",
    "Numeric distributions",
    "Categorical counts",
    "Correlations",
    "Outliers",
    "Transactions over time",
    "Fraud rate by category",
    "RFM segments",
    "Label balance",
)


def _images(doc: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', doc)]


def test_report_has_every_section_and_embedded_images(tmp_path: Path) -> None:
    tx = _random_clean()
    table = build_training_table(tx)
    out = build_eda_report(
        tx,
        tmp_path / "nested" / "eda.html",
        rfm=table.rfm,
        labels=table.y,
        quarantine={"duplicate_rows": 4, "reasons": {"unparseable_amount": 2}},
        features=table.X,
        title="Run <42> & friends",
    )
    doc = out.read_text(encoding="utf-8")
    for section in (*SECTIONS, "Quarantined rows"):
        assert f"<h2>{section}</h2>" in doc
    images = _images(doc)
    for section in SECTIONS[2:]:  # every section from the distributions on has a figure
        assert _images(doc.split(f"<h2>{section}</h2>")[1].split("<h2>")[0]), section
    assert len(_images(doc.split("<h2>Correlations</h2>")[1].split("<h2>")[0])) == 2
    assert all(img.startswith(b"\x89PNG\r\n\x1a\n") for img in images)
    # self-contained: nothing is fetched from elsewhere, the title is escaped
    assert not re.search(r'(src|href)="(?!data:|#)', doc)
    assert "Run &lt;42&gt; &amp; friends" in doc and "<42>" not in doc
    assert "log scale" in doc  # amounts spanning orders of magnitude are drawn on a log axis
    assert "unparseable_amount" in doc and "High-risk share" in doc


def test_report_without_labels_and_with_sampling(tmp_path: Path) -> None:
    tx = _random_clean(seed=1)
    out = build_eda_report(tx, tmp_path / "eda.html", max_plot_rows=500)
    doc = out.read_text(encoding="utf-8")
    assert "random sample of 500 of 3,000 rows" in doc
    assert "No labels were given" in doc and "No RFM table" in doc
    assert "Quarantined rows" not in doc
    for section in SECTIONS:
        assert f"<h2>{section}</h2>" in doc


def test_missing_values_are_reported(tmp_path: Path) -> None:
    tx = _random_clean(seed=2, n_rows=400)
    tx.loc[:9, "ProviderId"] = None
    doc = build_eda_report(tx, tmp_path / "eda.html").read_text(encoding="utf-8")
    section = doc.split("<h2>Missing values</h2>")[1].split("<h2>")[0]
    assert "ProviderId" in section and "2.500%" in section
    assert len(_images(section)) == 1


@pytest.mark.parametrize("bad", ["Amount", "TransactionStartTime"])
def test_required_columns(tmp_path: Path, bad: str) -> None:
    with pytest.raises(KeyError):
        build_eda_report(_random_clean(n_rows=50).drop(columns=bad), tmp_path / "x.html")


#: The report's content column: max-width 1200px less 2 x 1rem padding.
CONTENT_PX = 1200 - 32


def _png_width(img: bytes) -> int:
    return int.from_bytes(img[16:20], "big")  # IHDR width


def test_tables_scroll_and_figures_fit_the_page(tmp_path: Path) -> None:
    """A wide table (the raw rows: 14 columns of ids) scrolls inside its own box instead of
    widening the page, and no figure is wider than the content column (a wider PNG is shrunk
    by the browser, with its text)."""
    tx = _random_clean(seed=3)
    table = build_training_table(tx)
    doc = build_eda_report(
        tx, tmp_path / "eda.html", rfm=table.rfm, labels=table.y, features=table.X
    ).read_text(encoding="utf-8")
    tables = doc.count("<table")
    assert tables >= 8 and doc.count('<div class="scroll"><table') == tables
    assert ".scroll{overflow-x:auto" in doc and "<h3>First five rows</h3>" in doc
    widths = [_png_width(img) for img in _images(doc)]
    assert max(widths) <= CONTENT_PX, widths


def test_figure_text_is_readable_and_never_overlaps(tmp_path: Path, monkeypatch) -> None:
    """Every text of every EDA figure is at least 7 pt as the page shows it (font size times
    the browser's shrink factor), and no two upright texts of one panel (tick labels, bar
    value labels) overlap, nor does a bar label leave its panel."""
    import itertools

    import credit.eda as eda

    problems: list[str] = []
    original = eda._png

    def checked(fig):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        shrink = min(1.0, CONTENT_PX / (fig.get_size_inches()[0] * eda._DPI))
        for ax in (a for a in fig.axes if a.get_visible()):
            texts = [*ax.get_xticklabels(), *ax.get_yticklabels(), *ax.texts]
            texts = [t for t in texts if t.get_text() and t.get_visible()]
            problems.extend(
                f"{ax.get_title()}: {t.get_text()!r} is {t.get_fontsize() * shrink:.1f} pt"
                for t in texts
                if t.get_fontsize() * shrink < 7
            )
            upright = [t for t in texts if t.get_rotation() == 0]
            for a, b in itertools.combinations(upright, 2):
                if a.get_window_extent(renderer).overlaps(b.get_window_extent(renderer)):
                    problems.append(f"{ax.get_title()}: {a.get_text()!r} on {b.get_text()!r}")
            panel = ax.get_window_extent(renderer)
            problems.extend(
                f"{ax.get_title()}: bar label {t.get_text()!r} leaves its panel"
                for t in ax.texts
                if t.get_window_extent(renderer).x1 > panel.x1 + 1
            )
        return original(fig)

    monkeypatch.setattr(eda, "_png", checked)
    tx = _random_clean(seed=4)
    table = build_training_table(tx)
    build_eda_report(tx, tmp_path / "eda.html", rfm=table.rfm, labels=table.y, features=table.X)
    assert problems == []

import pytest

from agrec.run.htmlreport import missing_static_assets
from agrec.run.pipeline import build_report

from browser import needs_chromium, open_page
from conftest import CI_PROFILE


@pytest.fixture(scope="module")
def data_report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    overrides = {"pipeline.runs_dir": str(tmp / "runs"), "pipeline.reports_dir": str(tmp / "reports")}
    prof = build_report(CI_PROFILE, overrides=overrides, stages=["data"], log=lambda s: None)
    return prof


def test_report_has_html_index_and_offline_assets(data_report):
    rep = data_report.report_dir
    assert (rep / "01_data.html").is_file()
    assert missing_static_assets(data_report.reports_root) == []
    index = (rep / "index.md").read_text()
    assert "[01_data.html](01_data.html)" in index and "figures/item_popularity.png" in index
    html = (rep / "01_data.html").read_text()
    assert "cdnjs.cloudflare.com" not in html and "unpkg.com" not in html  # renders offline


@pytest.mark.browser
@needs_chromium
def test_html_report_renders_in_chromium_without_errors(data_report):
    page = open_page(data_report.report_dir / "01_data.html",
                     {"images": "img", "tables": "table", "code_cells": ".jp-CodeCell"})
    assert page.console_errors == []
    assert page.failed_requests == []
    assert page.counts["images"] >= 2       # sequence-length histogram, popularity plot
    assert page.counts["tables"] >= 3       # statistics, split sizes, example items

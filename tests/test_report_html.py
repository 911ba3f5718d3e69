"""Reports at a glance: headlines, law figures, report.html, and the atomic swap of ``--out``."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from pytest import MonkeyPatch
from test_report import result, vmf_like_grid

from thermocheck import laws, report
from thermocheck.errors import InvalidParameterError
from thermocheck.headline import headline
from thermocheck.report import write_error_report, write_report
from thermocheck.results import LawResult

pytestmark = pytest.mark.fast

PNG = b"\x89PNG\r\n\x1a\n"


def point(**kw: object) -> dict[str, object]:
    """A check record as :meth:`Check.record` writes it (a passing point by default)."""
    base: dict[str, object] = {"at": "lr=0.1, wd=0.01", "lr": 0.1, "wd": 0.01, "quantity": "E‖w‖²",
                               "observed": 1.0, "expected": 1.0, "stderr": 0.01, "allowance": 0.0,
                               "tolerance": 0.04, "residual": 0.0, "scale": 1.0, "ok": True,
                               "decided": True, "one_sided": False}
    return {**base, **kw}


# -- headlines ------------------------------------------------------------------------------------
def test_headline_is_a_relative_deviation_whatever_the_scale_of_the_points() -> None:
    """The same relative deviations at scales 1e-3 and 1e3 give the same headline: the quantity is
    fixed by the law, not the absolute number of whichever check was worst."""
    def at(scale: float) -> LawResult:
        return result(details=[point(observed=1.02 * scale, expected=scale, residual=0.02 * scale,
                                     stderr=0.005 * scale, tolerance=0.03 * scale, scale=scale),
                               point(at="lr=0.2, wd=0.01", lr=0.2, observed=0.99 * scale,
                                     expected=scale, residual=-0.01 * scale,
                                     stderr=0.001 * scale, tolerance=0.01 * scale, scale=scale)])

    small, large = headline(at(1e-3)), headline(at(1e3))
    assert small.units == large.units == "relative"
    assert small.value == pytest.approx(large.value) == pytest.approx(0.02)
    assert small.tolerance == pytest.approx(0.03) and small.stderr == pytest.approx(0.005)
    assert small.measured() == "+2% ± 0.5%" and small.band() == "±3%"
    assert "median +0.5%" in small.reading and "lr=0.1, wd=0.01" in small.reading


def test_allowance_driven_pass_says_so() -> None:
    r = result(details=[point(residual=0.05, stderr=0.001, allowance=0.1, tolerance=0.104)])
    reading = headline(r).reading
    assert "passes through the model allowance: |z| = 50 > z_crit = 4" in reading
    assert "within allowance +10%" not in reading and "within allowance 10%" in reading


def test_pass_inside_the_statistical_band_does_not_mention_the_allowance() -> None:
    r = result(details=[point(residual=0.002, stderr=0.001, allowance=0.1, tolerance=0.104)])
    assert "allowance" not in headline(r).reading


def test_one_sided_pass_says_so() -> None:
    r = result(law="potential_minimum", details=[point(
        quantity="G_*(*) − min G_*", residual=-0.5, tolerance=0.1, one_sided=True,
        method="pointwise")])
    h = headline(r)
    assert "one-sided: only an excess counts" in h.reading and "R T_*" in h.quantity


def test_v2_headline_is_the_fitted_minimiser_in_grid_steps() -> None:
    r = result(law="potential_minimum", details=[
        point(quantity="minimiser offset along lr (steps)", observed=0.3, expected=0.0,
              residual=0.3, stderr=0.1, tolerance=0.6, method="fitted minimiser"),
        point(quantity="G_*(*) − min G_*", residual=5.0, tolerance=9.0, scale=100.0,
              method="pointwise", one_sided=True)])
    h = headline(r)
    assert (h.units, h.measured(), h.band()) == ("grid steps", "+0.3 steps ± 0.1 steps",
                                                 "±0.6 steps")


def test_maxwell_headline_is_the_main_fitted_ratio_with_its_standard_error() -> None:
    r = laws.maxwell(vmf_like_grid("fixed_lr", n=5))
    h = headline(r)
    main = r.details[0]
    assert h.units == "ratio" and main["quantity"] in h.quantity and "Eq. 23" in h.quantity
    assert h.value == main["observed"] and h.stderr == main["stderr"]
    assert h.tolerance == main["tolerance"] and h.expected == 1.0
    assert "(expected 1)" in h.measured() and "3 of 3 fitted ratios" in h.reading


def test_failed_headline_counts_the_points_outside() -> None:
    r = result("failed", details=[point(residual=0.2, ok=False), point(), point()])
    assert headline(r).reading.startswith("FAILED at 1 of 3 checks; largest +20%")


# -- report.md ------------------------------------------------------------------------------------
def test_markdown_has_a_headline_per_result_and_named_point_columns(tmp_path: Path) -> None:
    r = result(details=[point(residual=0.02, observed=1.02) for _ in range(8)])
    md = (write_report([r], tmp_path) / "report.md").read_text(encoding="utf-8")
    glance = md.split("## At a glance")[1].split("## Summary")[0]
    assert "| ideal_gas | fixed_lr | ✓ passed |" in glance and "| +2% ± 1% | ±4% |" in glance
    assert "- **measured:** +2% ± 1%; band ±4% (at lr=0.1, wd=0.01)" in md
    header = next(line for line in md.splitlines() if line.startswith("| point |"))
    assert header == ("| point | quantity | measured ± s.e. | predicted | deviation | band | "
                      "inside band |")
    assert "*deviation*: measured − predicted" in md  # the legend under the table
    # every table's header row either names its columns or is followed by a legend
    assert "| observed | expected | tolerance | residual |" not in md


# -- law figures and report.html ------------------------------------------------------------------
class _Page(HTMLParser):
    """Collects ids, anchors' hrefs, images' sources and the tag structure of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.hrefs: list[str] = []
        self.images: list[str] = []
        self.open: list[str] = []
        self.links: list[str] = []  # <link>/<script src>: external resources

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(str(a["id"]))
        if tag == "a" and a.get("href"):
            self.hrefs.append(str(a["href"]))
        if tag == "img":
            self.images.append(str(a.get("src")))
        if tag in ("link", "script", "iframe") or (tag != "img" and a.get("src")):
            self.links.append(tag)
        if tag not in ("img", "meta", "br", "link"):
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, f"</{tag}> closes <{self.open[-1:]}>"
        self.open.pop()


def _full_report(tmp_path: Path) -> Path:
    grid = vmf_like_grid("fixed_lr", n=5)
    results = [law(grid) for law in laws.ALL.values()]
    return write_report(results, tmp_path / "r", grids={"fixed_lr": grid}, seed=0)


def test_report_html_is_self_contained_with_every_figure_embedded(tmp_path: Path) -> None:
    out = _full_report(tmp_path)
    md = (out / "report.md").read_text(encoding="utf-8")
    page = _Page()
    page.feed((out / "report.html").read_text(encoding="utf-8"))
    page.close()
    assert page.open == [], f"unclosed tags {page.open}"
    referenced = re.findall(r"^!\[[^\]]*\]\((figures/[^)]+)\)$", md, flags=re.MULTILINE)
    assert len(referenced) >= 8 and len(page.images) == len(referenced)
    for src, name in zip(page.images, referenced, strict=True):
        assert src.startswith("data:image/png;base64,"), src[:40]
        assert base64.b64decode(src.split(",", 1)[1]) == (out / name).read_bytes()
    assert page.hrefs, "the law sections link to their grid's figures"
    broken = [h for h in page.hrefs if not (h.startswith("#") and h[1:] in page.ids)]
    assert broken == [] and page.links == []


def test_each_result_gets_a_figure_of_what_its_law_compares(tmp_path: Path) -> None:
    out = _full_report(tmp_path)
    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    kinds = {r["law"]: r["figure"] for r in data["results"]}
    assert kinds["norm_balance"] is None  # inconclusive: nothing compared
    for name in ("ideal_gas", "potential_minimum", "maxwell", "heat_capacity"):
        assert (out / kinds[name]).read_bytes()[:8] == PNG
        assert f"]({kinds[name]})" in (out / "report.md").read_text(encoding="utf-8")


def _browser() -> str | None:
    return next((b for b in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(b)), None)


@pytest.mark.skipif(_browser() is None, reason="no headless Chromium on PATH (apt-get install "
                                                "chromium to run this test)")
def test_report_html_renders_in_a_headless_browser(tmp_path: Path) -> None:
    out = _full_report(tmp_path)
    browser = _browser()
    assert browser is not None
    done = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
         (out / "report.html").as_uri()], capture_output=True, text=True, timeout=120,
        check=False, env={**os.environ, "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "At a glance" in done.stdout and done.stdout.count("data:image/png;base64,") >= 8


# -- replacing --out ------------------------------------------------------------------------------
def test_rewriting_out_replaces_the_whole_report_and_keeps_foreign_files(tmp_path: Path) -> None:
    out = _full_report(tmp_path)
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    assert any((out / "figures").iterdir())
    write_report([result()], out)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "report.html", "report.json",
                                                    "report.md"], "no stale figure stays"
    assert (out / "notes.txt").read_text(encoding="utf-8") == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"], "no staging folder left"


def test_a_failed_rewrite_leaves_the_previous_report_whole(tmp_path: Path,
                                                           monkeypatch: MonkeyPatch) -> None:
    out = _full_report(tmp_path)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def broken(*args: object, **kwargs: object) -> str:
        raise OSError("disk full")

    monkeypatch.setattr(report, "to_html", broken)
    with pytest.raises(OSError, match="disk full"):
        write_report([result()], out)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"], "no staging folder left"


def test_error_report_replaces_a_complete_report(tmp_path: Path) -> None:
    out = _full_report(tmp_path)
    write_error_report(out, "Traceback: boom", command="thermocheck verify")
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.md"]
    assert "boom" in (out / "report.html").read_text(encoding="utf-8")


def test_out_holding_the_working_directory_is_refused(tmp_path: Path,
                                                      monkeypatch: MonkeyPatch) -> None:
    (tmp_path / "r" / "sub").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "r" / "sub")
    with pytest.raises(InvalidParameterError, match=r"out=.*working directory"):
        write_report([result()], tmp_path / "r")
    assert (tmp_path / "r" / "sub").is_dir()

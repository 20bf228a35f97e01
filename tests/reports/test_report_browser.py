"""The HTML report in a real browser: Playwright driving Debian's Chromium on the file as
it would be opened from a mail attachment (``file://``), on screen and printed, with
screenshots (and a PDF, where this Chromium prints one) kept in
``test-artifacts/reports/``.

It must fetch nothing and run nothing: any request but the file itself, any console
error, fails the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page

from standby.reports.html import render_html
from standby.reports.markdown import SECTIONS
from standby.reports.model import Report
from tests.reports import sample
from tests.statuspage.browser_support import (
    Browsing,
    chromium,
    needs_chromium,
    serious_violations,
)

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "reports"
REPORTS = {
    "outage": sample.outage,
    "unpublished": sample.unpublished,
    "quiet": sample.quiet,
}


@pytest.fixture
async def browser() -> AsyncIterator[Browsing]:
    async with chromium() as browsing:
        yield browsing
        browsing.assert_clean()  # every page each test opened


def written(report: Report, tmp_path: Path, name: str) -> str:
    """``report`` rendered into a file of ``tmp_path``, as a ``file://`` address."""
    path = tmp_path / f"{name}.html"
    path.write_text(render_html(report), encoding="utf-8")
    return path.as_uri()


async def opened(browser: Browsing, url: str, **options: object) -> tuple[Page, list[str]]:
    """``url`` in a new watched context, and every address the page asked for."""
    visit = await browser.visit(**options)
    asked: list[str] = []
    visit.page.on("request", lambda request: asked.append(request.url))
    response = await visit.page.goto(url)
    assert response is not None and response.ok, url
    return visit.page, asked


async def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


# --- the document itself, without a browser ------------------------------------------------


def test_the_document_is_standalone_and_forbids_scripts() -> None:
    document = render_html(sample.outage())
    assert document.startswith('<!doctype html>\n<html lang="en">')
    assert (
        '<meta http-equiv="Content-Security-Policy" content="default-src &#39;none&#39;; '
        "style-src &#39;unsafe-inline&#39;; base-uri &#39;none&#39;; "
        'form-action &#39;none&#39;">'
    ) in document
    for external in ("<script", "<link", "src=", "@import", "url(http", "<iframe"):
        assert external not in document, external
    # the one address in it is the provider's incident, a link to follow by hand
    assert document.count("href=") == 1
    assert 'href="https://status.openai.com/incidents/01JDXK4V6M2Q"' in document
    assert document.count("<svg ") == 3


def test_outside_text_is_text() -> None:
    document = render_html(sample.hostile())
    assert "<script>" not in document and "<b>bold</b>" not in document
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in document
    assert "<title>Outage | &lt;b&gt;bold&lt;/b&gt;</title>" in document
    assert "javascript:" not in document.replace("[click](javascript:alert(1))", "")


# --- in the browser ------------------------------------------------------------------------


@needs_chromium
@pytest.mark.parametrize("name", REPORTS)
async def test_every_section_and_chart_is_shown(
    browser: Browsing, tmp_path: Path, name: str
) -> None:
    report = REPORTS[name]()
    url = written(report, tmp_path, name)
    page, asked = await opened(browser, url, viewport={"width": 1280, "height": 900})
    assert await page.title() == report.title
    assert await page.locator("h1").inner_text() == report.title
    headings = page.locator("main section > h2")
    assert await headings.all_inner_texts() == list(SECTIONS)
    for heading in await headings.all():
        assert await heading.is_visible()
        labelled = await heading.get_attribute("id")
        assert await page.locator(f"section[aria-labelledby={labelled}]").count() == 1
    svgs = page.locator("svg.chart[role=img]")
    assert await svgs.count() == 3
    for svg in await svgs.all():
        box = await svg.bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 100, box
    for table in await page.locator("table").all():
        assert await table.locator("caption").count() == 1
        assert await table.locator("th[scope=col]").count() >= 2
    await screenshot(page, f"{name}-screen")
    await page.emulate_media(media="print")
    await screenshot(page, f"{name}-print")
    assert asked == [url]  # nothing but the file itself


@needs_chromium
async def test_printed_it_needs_no_colour_and_shows_the_links(
    browser: Browsing, tmp_path: Path
) -> None:
    page, _ = await opened(browser, written(sample.outage(), tmp_path, "print"))
    await page.emulate_media(media="print")
    colours = await page.evaluate(
        """() => {
            const body = getComputedStyle(document.body);
            const head = getComputedStyle(document.querySelector('thead th'));
            const link = getComputedStyle(document.querySelector('a[href]'), '::after');
            return [body.backgroundColor, body.color, head.backgroundColor, link.content];
        }"""
    )
    assert colours == [
        "rgb(255, 255, 255)",
        "rgb(0, 0, 0)",
        "rgb(255, 255, 255)",
        '" (https://status.openai.com/incidents/01JDXK4V6M2Q)"',
    ]
    avoid = await page.evaluate(
        """() => ['table', 'figure'].map(
            tag => getComputedStyle(document.querySelector(tag)).breakInside)"""
    )
    assert avoid == ["avoid", "avoid"]


@needs_chromium
async def test_a_pdf_where_this_chromium_prints_one(browser: Browsing, tmp_path: Path) -> None:
    page, _ = await opened(browser, written(sample.outage(), tmp_path, "pdf"))
    try:
        pdf = await page.pdf(format="A4", print_background=False)
    except PlaywrightError as exc:  # a headed or older Chromium: the PDF is a bonus
        pytest.skip(f"this Chromium prints no PDF: {exc}")
    assert pdf.startswith(b"%PDF-") and len(pdf) > 10_000
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "outage.pdf").write_bytes(pdf)


@needs_chromium
@pytest.mark.parametrize("width", [1280, 360])  # a desktop, and a small phone
async def test_nothing_spills_out_sideways(browser: Browsing, tmp_path: Path, width: int) -> None:
    url = written(sample.outage(), tmp_path, f"width-{width}")
    page, _ = await opened(browser, url, viewport={"width": width, "height": 800})
    assert await page.evaluate("document.documentElement.scrollWidth") <= width
    await screenshot(page, f"outage-{width}px")


@needs_chromium
@pytest.mark.parametrize("name", ["outage", "quiet"])
async def test_no_serious_accessibility_violations(
    browser: Browsing, tmp_path: Path, name: str
) -> None:
    pytest.importorskip("axe_playwright_python", reason="axe-core comes with it (dev extra)")
    for scheme in ("light", "dark"):
        page, _ = await opened(
            browser, written(REPORTS[name](), tmp_path, f"{name}-{scheme}"), color_scheme=scheme
        )
        assert await serious_violations(page) == [], scheme


@needs_chromium
async def test_a_script_slipped_in_does_not_run(browser: Browsing, tmp_path: Path) -> None:
    """The Content-Security-Policy holds even against markup added after the fact (in a
    context of its own: the browser's complaint about it is the expected one)."""
    context = await browser.browser.new_context()
    page = await context.new_page()
    refused: list[str] = []
    page.on("console", lambda message: refused.append(message.text))
    await page.goto(written(sample.outage(), tmp_path, "csp"))
    await page.evaluate(
        """() => {
            const script = document.createElement('script');
            script.textContent = 'window.ran = true';
            document.body.append(script);
        }"""
    )
    assert await page.evaluate("() => window.ran === undefined")
    assert any("Content Security Policy" in text for text in refused), refused
    await context.close()


def test_code_spans_of_derived_sentences_are_code_and_the_rest_escaped() -> None:
    from standby.reports.html import inline

    assert str(inline("Lower `timeouts.first_token` <now>")) == (
        "Lower <code>timeouts.first_token</code> &lt;now&gt;"
    )
    assert str(inline("`<b>`")) == "<code>&lt;b&gt;</code>"

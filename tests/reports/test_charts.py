"""The report's charts: well-formed SVG that describes itself (role, title, description),
scales (a ``viewBox``, no fixed size), fetches and runs nothing, draws one band per
target that tells them apart without colour, and says so when there is nothing to draw."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence

import pytest

from standby.reports import charts
from standby.reports.model import Bucket
from tests.reports import sample

SVG = "{http://www.w3.org/2000/svg}"
TARGETS = [sample.PRIMARY, sample.FALLBACK]

Chart = Callable[[Sequence[Bucket], float], str]


def served_by(series: Sequence[Bucket], bucket_seconds: float) -> str:
    return charts.served_by_chart(series, bucket_seconds, TARGETS)


CHARTS: list[Chart] = [charts.latency_chart, charts.error_rate_chart, served_by]


def parsed(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


def texts(root: ET.Element, tag: str) -> list[str]:
    return ["".join(e.itertext()) for e in root.iter(f"{SVG}{tag}")]


def assert_self_describing(root: ET.Element) -> None:
    """An image for assistive technology, named by its own title and description; a
    viewBox and no fixed size; nothing that runs or fetches."""
    assert root.get("role") == "img"
    title, desc = root.find(f"{SVG}title"), root.find(f"{SVG}desc")
    assert title is not None and title.text and desc is not None and desc.text
    assert root.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"
    x, y, width, height = (float(n) for n in (root.get("viewBox") or "").split())
    assert (x, y) == (0, 0) and width > 0 and height > 0
    assert root.get("width") is None and root.get("height") is None
    for element in root.iter():
        assert element.tag.removeprefix(SVG) not in ("script", "image", "foreignObject", "a")
        for name, value in element.attrib.items():
            assert not name.startswith("on"), (element.tag, name)
            assert "href" not in name, (element.tag, name)
            if "url(" in value:  # only this document's own patterns
                assert value.startswith("url(#"), value


@pytest.mark.parametrize("chart", CHARTS)
def test_every_chart_describes_itself(chart: Chart) -> None:
    report = sample.outage()
    assert_self_describing(parsed(chart(report.series, report.bucket_seconds)))


@pytest.mark.parametrize(
    ("chart", "words"),
    [
        (charts.latency_chart, "Highest p99: 30,050 ms at 14:00. Highest p50: 1,410 ms at 14:01."),
        (charts.error_rate_chart, "158 of 12,060 requests failed. Highest: 61.8 % at 14:00."),
        (served_by, "openai/gpt-4o-mini: 4,271; anthropic/claude-3-5-haiku: 7,621."),
    ],
)
def test_the_description_says_what_the_chart_shows(chart: Chart, words: str) -> None:
    report = sample.outage()
    [desc] = texts(parsed(chart(report.series, report.bucket_seconds)), "desc")
    assert "per minute" in desc and "13:50 to 14:50 UTC" in desc
    assert desc.endswith(words), desc


def test_the_time_axis_is_in_utc() -> None:
    report = sample.outage()
    labels = texts(parsed(charts.latency_chart(report.series, 60.0)), "text")
    assert ["13:50", "14:00", "14:10", "14:20", "14:30", "14:40", "14:50", "UTC"] == [
        label for label in labels if ":" in label or label == "UTC"
    ]


def test_latency_has_a_p50_line_and_a_dashed_p99_line_with_a_key() -> None:
    report = sample.outage()
    root = parsed(charts.latency_chart(report.series, 60.0))
    lines = {path.get("class"): path for path in root.iter(f"{SVG}path")}
    assert set(lines) == {"line p50", "line p99"}
    assert lines["line p50"].get("stroke-dasharray") is None
    assert lines["line p99"].get("stroke-dasharray")  # told apart without colour
    assert {"p50 (median)", "p99 (dashed)", "ms"} <= set(texts(root, "text"))


def test_one_band_per_target_each_with_its_own_hatching_and_a_legend() -> None:
    series = [
        Bucket(sample.START + i * 60, 30, 0, 500.0, 900.0, {"a/x": 10, "b/y": 10, "c/z": 10})
        for i in range(3)
    ]
    root = parsed(charts.served_by_chart(series, 60.0, ["c/z", "a/x"]))
    bands = [path for path in root.iter(f"{SVG}path") if path.get("class") == "band"]
    # the order asked for, then the others alphabetically
    assert [band.get("data-target") for band in bands] == ["c/z", "a/x", "b/y"]
    fills = [band.get("fill") for band in bands]
    assert len(set(fills)) == 3
    patterns = {p.get("id"): p for p in root.iter(f"{SVG}pattern")}
    drawings = [
        ET.tostring(patterns[fill.removeprefix("url(#").removesuffix(")")])
        for fill in fills
        if fill
    ]
    assert len({d.split(b">", 1)[1] for d in drawings}) == 3  # differ beyond their ids
    legend = root.find(f"{SVG}g[@class='legend']")
    assert legend is not None
    assert texts(legend, "text") == ["c/z: 30 answers", "a/x: 30 answers", "b/y: 30 answers"]
    assert [r.get("fill") for r in legend.iter(f"{SVG}rect")] == fills


def test_the_bands_stack_up_to_the_answers_of_each_bucket() -> None:
    series = [Bucket(sample.START, 100, 0, None, None, {"a/x": 25, "b/y": 75})]
    root = parsed(charts.served_by_chart(series, 60.0))
    tops = {}
    for band in root.iter(f"{SVG}path"):
        if band.get("class") == "band":
            d = band.get("d") or ""
            tops[band.get("data-target")] = min(float(p.split(",")[1]) for p in d[1:-2].split(" L"))
    frame = charts.Frame(sample.START, sample.START + 60, 100.0)
    assert tops == {"a/x": frame.y(25), "b/y": frame.y(100)}


def test_the_band_of_the_outage_sample_count_equals_its_targets() -> None:
    report = sample.outage()
    root = parsed(served_by(report.series, 60.0))
    bands = [p for p in root.iter(f"{SVG}path") if p.get("class") == "band"]
    assert len(bands) == len(report.impact.targets) == 2


def test_a_line_breaks_where_nothing_is_known() -> None:
    series = [
        Bucket(sample.START + i * 60, 10, 0, None if i == 2 else 100.0 + i, 200.0, {"a/x": 10})
        for i in range(5)
    ]
    series.append(Bucket(sample.START + 9 * 60, 10, 0, 150.0, 250.0, {"a/x": 10}))  # a gap
    root = parsed(charts.latency_chart(series, 60.0))
    [p50] = [p for p in root.iter(f"{SVG}path") if p.get("class") == "line p50"]
    [p99] = [p for p in root.iter(f"{SVG}path") if p.get("class") == "line p99"]
    assert (p50.get("d") or "").count("M") == 2  # buckets 0-1 and 3-4; bucket 9 alone
    assert (p99.get("d") or "").count("M") == 1  # buckets 0-4; bucket 9 alone
    lone = [c.get("class") or "" for c in root.iter(f"{SVG}circle")]
    assert sorted(lone) == ["point p50", "point p99"]


def _bucket(requests: int, failed: int, p50: float | None, served: dict[str, int]) -> Bucket:
    return Bucket(sample.START, requests, failed, p50, None if p50 is None else p50 * 3, served)


EDGES = {
    "empty series": [],
    "a single bucket": [_bucket(10, 2, 400.0, {"a/x": 8})],
    "all latencies unknown": [_bucket(10, 10, None, {}), _bucket(5, 5, None, {})],
    "zero requests": [_bucket(0, 0, None, {}), _bucket(0, 0, None, {})],
    "served nothing but asked": [_bucket(4, 4, None, {"a/x": 0})],
    "a name to escape": [_bucket(3, 0, 10.0, {'<a&b> "quoted"': 3})],
}


@pytest.mark.parametrize("chart", CHARTS)
@pytest.mark.parametrize("series", EDGES.values(), ids=EDGES.keys())
def test_edge_cases_still_make_a_chart(chart: Chart, series: list[Bucket]) -> None:
    root = parsed(chart(series, 60.0))
    assert_self_describing(root)


@pytest.mark.parametrize(
    ("chart", "series", "words"),
    [
        (charts.latency_chart, [], "No requests in the window: no latency to show."),
        (
            charts.latency_chart,
            EDGES["all latencies unknown"],
            "No request was answered: no latency to show.",
        ),
        (charts.error_rate_chart, [], "No requests in the window: no error rate to show."),
        (
            charts.error_rate_chart,
            EDGES["zero requests"],
            "No requests in the window: no error rate to show.",
        ),
        (served_by, [], "No request was answered in the window."),
        (served_by, EDGES["served nothing but asked"], "No request was answered in the window."),
    ],
)
def test_nothing_to_draw_is_said_in_words(chart: Chart, series: list[Bucket], words: str) -> None:
    root = parsed(chart(series, 60.0))
    assert texts(root, "desc") == [words]
    assert words in texts(root, "text")


def test_a_single_bucket_is_drawn_as_points_and_a_full_width_band() -> None:
    series = EDGES["a single bucket"]
    latency = parsed(charts.latency_chart(series, 60.0))
    assert sorted(c.get("class") or "" for c in latency.iter(f"{SVG}circle")) == [
        "point p50",
        "point p99",
    ]
    error = parsed(charts.error_rate_chart(series, 60.0))
    assert "Highest: 20.0 % at 13:50." in texts(error, "desc")[0]
    served = parsed(charts.served_by_chart(series, 60.0))
    [band] = [p for p in served.iter(f"{SVG}path") if p.get("class") == "band"]
    xs = [float(p.split(",")[0]) for p in (band.get("d") or "")[1:-2].split(" L")]
    assert (min(xs), max(xs)) == (charts.LEFT, charts.WIDTH - charts.RIGHT)


def test_a_zero_request_bucket_has_no_error_rate_point() -> None:
    series = [
        Bucket(sample.START + i * 60, 0 if i == 1 else 10, 5 if i == 0 else 0, None, None, {})
        for i in range(3)
    ]
    root = parsed(charts.error_rate_chart(series, 60.0))
    # bucket 1 had no requests: no rate there, so buckets 0 and 2 stand alone
    assert sorted(c.get("class") or "" for c in root.iter(f"{SVG}circle")) == [
        "point error-rate",
        "point error-rate",
    ]
    assert [p for p in root.iter(f"{SVG}path") if p.get("class") == "area"] == []


def test_a_chart_id_must_be_a_plain_id() -> None:
    report = sample.outage()
    assert 'id="other-latency"' in charts.latency_chart(
        report.series, 60.0, chart_id="other-latency"
    )
    with pytest.raises(ValueError, match="letters, digits and hyphens"):
        charts.served_by_chart(report.series, 60.0, chart_id='x" onload="')


@pytest.mark.parametrize(
    ("maximum", "top", "ticks"),
    [
        (30050.0, 40000.0, [0.0, 10000.0, 20000.0, 30000.0, 40000.0]),
        (212.0, 300.0, [0.0, 100.0, 200.0, 300.0]),
        (7.0, 8.0, [0.0, 2.0, 4.0, 6.0, 8.0]),
        (0.3, 0.3, [0.0, 0.1, 0.2, 0.3]),
        (0.0, 1.0, [0.0, 0.5, 1.0]),
    ],
)
def test_value_axes_end_on_a_round_number(maximum: float, top: float, ticks: list[float]) -> None:
    assert charts.nice_top(maximum) == (top, ticks)


@pytest.mark.parametrize(
    ("span", "labels"),
    [
        (3600.0, ["13:50", "14:00", "14:10", "14:20", "14:30", "14:40", "14:50"]),
        (
            60.0,
            ["13:50:00", "13:50:10", "13:50:20", "13:50:30", "13:50:40", "13:50:50", "13:51:00"],
        ),
        (
            3 * 86400.0,
            [
                "Nov 19 00:00",
                "Nov 19 12:00",
                "Nov 20 00:00",
                "Nov 20 12:00",
                "Nov 21 00:00",
                "Nov 21 12:00",
            ],
        ),
        (30 * 86400.0, ["Nov 23", "Nov 28", "Dec 03", "Dec 08", "Dec 13", "Dec 18"]),
    ],
)
def test_time_ticks_are_round_utc_times(span: float, labels: list[str]) -> None:
    ticks = charts.time_ticks(sample.START, sample.START + span)
    assert [label for _, label in ticks] == labels
    assert all(sample.START <= at <= sample.START + span for at, _ in ticks)

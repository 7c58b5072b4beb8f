"""`costsim report`: one self-contained HTML page, plotly.js once, every figure, every shipped scenario; opened
in headless Chromium (skipped without a `chromium` binary): the screenshot is not blank, every figure draws,
and the console stays quiet."""
from __future__ import annotations

import html
import os
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
from plotly.offline import get_plotlyjs
from typer.testing import CliRunner

from costsim.cli import app
from costsim.report_page import FIGURE_IDS, write_report

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))
V3 = ROOT / "scenarios" / "deepseek-v3.yaml"
PLOTLY_BANNER = get_plotlyjs()[:40]          # "/**\n* plotly.js vX.Y.Z\n* Copyright …"


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:
        return CliRunner()


@pytest.fixture(scope="module")
def v3_cli(tmp_path_factory):
    """`costsim report deepseek-v3.yaml -o report.html` through the CLI, once for the module."""
    out = tmp_path_factory.mktemp("report") / "report.html"
    res = _runner().invoke(app, ["report", str(V3), "-o", str(out)])
    assert res.exit_code == 0, res.output
    return out, res


@pytest.fixture(scope="module")
def v3_page(v3_cli) -> Path:
    return v3_cli[0]


def _check_page(text: str) -> None:
    assert text.startswith("<!DOCTYPE html>")
    assert text.count(PLOTLY_BANNER) == 1, "plotly.js must be inlined exactly once"
    assert text.count(get_plotlyjs()) == 1
    rest = text.replace(get_plotlyjs(), "")
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=|<img[^>]+src=|https?://", rest), "loads something"
    for fid in FIGURE_IDS:
        assert f'id="{fid}"' in text, fid
        if fid != "fig-timeline":           # the timeline may be "not drawn" (a note says why)
            assert re.search(rf'Plotly\.newPlot\(\s*"{fid}"', text), fid


def test_page_is_one_file_with_plotly_once_and_every_figure(v3_page: Path):
    assert [p.name for p in v3_page.parent.iterdir()] == ["report.html"]   # no side files, no temp leftovers
    text = v3_page.read_text(encoding="utf-8")
    _check_page(text)
    assert re.search(r'Plotly\.newPlot\(\s*"fig-timeline"', text)
    for needle in ("exposed EP all-to-all", "capacity (h800-sxm)", "p10–p90", "Left out:", "b200", "h100-sxm"):
        assert needle in text, needle


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_every_shipped_scenario(scenario: Path, tmp_path: Path):
    if scenario == V3:
        pytest.skip("built by the module fixture (test above)")
    out = tmp_path / "r.html"
    _, data = write_report(scenario, out)
    _check_page(out.read_text(encoding="utf-8"))
    assert any(v.est is not None for v in data.by_gpu) and any(v.est is not None for v in data.by_count)
    assert all(v.est is not None or v.skipped for v in data.by_gpu + data.by_count)
    text = out.read_text(encoding="utf-8")
    from costsim.scenario import load_scenario
    ranges = load_scenario(scenario).ranges
    assert ("The inputs it is not sure of" in text) == bool(ranges)
    for r in ranges:                      # each range's key, source and the span over all of them
        assert html.escape(r.label) in text and html.escape(r.source or "no source given") in text
    if ranges:
        lo, hi = data.est.ranges.total["cost_usd"]
        assert lo <= data.est.cost_usd <= hi


def test_cli_progress_and_errors(v3_cli, tmp_path: Path):
    out, res = v3_cli
    assert "[1/" in res.stderr and "estimating on b200" in res.stderr and "wrote" in res.stderr
    assert res.stdout == ""
    runner = _runner()
    bad = runner.invoke(app, ["report", str(V3), "-o", str(out), "--set", "parallelism.tp=3"])
    assert bad.exit_code == 2
    errors = [line for line in bad.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "tp=3" in errors[0]
    missing = runner.invoke(app, ["report", str(V3), "-o", str(tmp_path / "no" / "r.html")])
    assert missing.exit_code == 2 and missing.stderr.strip().startswith("error: --output")
    assert missing.stderr.count("\n") == 1       # failed before any estimate: no progress lines


# ---- headless Chromium ----

def _chromium() -> str | None:
    return next((b for b in (shutil.which(n) for n in ("chromium", "chromium-browser")) if b), None)


def read_png(path: Path) -> np.ndarray:
    """Decode an 8-bit non-interlaced PNG (what Chromium writes) to an array of pixels × channels."""
    d = path.read_bytes()
    assert d[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, [], None
    while pos < len(d):
        n, = struct.unpack(">I", d[pos:pos + 4])
        kind, body = d[pos + 4:pos + 8], d[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
    w, h, depth, ctype, _, _, interlace = header
    assert depth == 8 and interlace == 0 and ctype in (0, 2, 4, 6), header
    bpp = {0: 1, 2: 3, 4: 2, 6: 4}[ctype]
    raw, stride = zlib.decompress(b"".join(idat)), w * bpp
    out = np.zeros((h, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.int32)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = np.frombuffer(raw, dtype=np.uint8, count=stride, offset=y * (stride + 1) + 1).astype(np.int32)
        if f == 0:
            cur = line
        elif f == 1:
            cur = np.cumsum(line.reshape(w, bpp), axis=0).reshape(-1) & 255
        elif f == 2:
            cur = (line + prev) & 255
        else:                               # average (3) and Paeth (4) run left to right
            cur, up = line.tolist(), prev.tolist()
            for i in range(stride):
                a = cur[i - bpp] if i >= bpp else 0
                b = up[i]
                if f == 3:
                    cur[i] = (cur[i] + ((a + b) >> 1)) & 255
                else:
                    c = up[i - bpp] if i >= bpp else 0
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    cur[i] = (cur[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
            cur = np.array(cur, dtype=np.int32)
        out[y] = cur
        prev = cur
    return out.reshape(h * w, bpp)


def distinct_colours(pixels: np.ndarray) -> int:
    rgb = pixels[:, :3].astype(np.uint32) if pixels.shape[1] >= 3 else pixels[:, :1].astype(np.uint32)
    packed = rgb[:, 0] << 16 | (rgb[:, 1] << 8 if rgb.shape[1] > 1 else 0) | (rgb[:, 2] if rgb.shape[1] > 2 else 0)
    return len(np.unique(packed))


def _run_chromium(binary: str, *args: str) -> subprocess.CompletedProcess:
    env = os.environ | {"DBUS_SESSION_BUS_ADDRESS": "disabled:"}      # no session bus in CI: don't wait for one
    return subprocess.run([binary, "--headless", "--disable-gpu", "--no-sandbox", *args], capture_output=True,
                          text=True, timeout=90, env=env)


def test_headless_chromium_renders_the_page(v3_page: Path, tmp_path: Path):
    binary = _chromium()
    if binary is None:
        pytest.skip("no chromium binary on PATH (.ci/run installs Debian's chromium where it can)")
    probe, probe_shot = tmp_path / "probe.html", tmp_path / "probe.png"     # can this chromium run here at all?
    probe.write_text("<!DOCTYPE html><html><body><p>probe</p></body></html>")
    try:
        _run_chromium(binary, f"--screenshot={probe_shot}", "--window-size=200,100", probe.as_uri())
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"{binary} cannot run here: {exc}")
    if not probe_shot.is_file():
        pytest.skip(f"{binary} cannot take a screenshot of a plain page here (sandbox, /dev/shm, display?)")
    shot = tmp_path / "shot.png"
    res = _run_chromium(binary, f"--screenshot={shot}", "--dump-dom", "--window-size=1400,3000",
                        "--enable-logging=stderr", "--v=0", v3_page.as_uri())   # one load: the page is heavy
    assert shot.is_file(), res.stderr[-2000:]
    console = [line for line in res.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, "console messages:\n" + "\n".join(console)
    pixels = read_png(shot)
    colours = distinct_colours(pixels)
    assert colours > 50, f"screenshot looks blank: {colours} distinct colours"
    # Every figure drew: plotly puts its <svg class="main-svg"> inside each figure's div.
    dom = res.stdout
    starts = sorted((dom.find(f'id="{fid}"'), fid) for fid in FIGURE_IDS)
    assert all(i >= 0 for i, _ in starts), [f for i, f in starts if i < 0]
    for (i, fid), (j, _) in zip(starts, starts[1:] + [(len(dom), "")]):
        assert "main-svg" in dom[i:j], f"{fid} did not render"


def _encode_png(pixels: np.ndarray) -> bytes:
    """A tiny RGB PNG encoder using every filter type in turn, to check read_png against known pixels."""
    h, w, _ = pixels.shape
    raw, prev = b"", np.zeros(w * 3, dtype=np.int32)
    for y in range(h):
        cur, f = pixels[y].reshape(-1).astype(np.int32), y % 5
        left = np.concatenate([np.zeros(3, dtype=np.int32), cur[:-3]])
        upleft = np.concatenate([np.zeros(3, dtype=np.int32), prev[:-3]])
        if f == 4:
            p = left + prev - upleft
            pa, pb, pc = abs(p - left), abs(p - prev), abs(p - upleft)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, upleft))
        else:
            pred = [np.zeros_like(cur), left, prev, (left + prev) >> 1][f]
        raw += bytes([f]) + ((cur - pred) & 255).astype(np.uint8).tobytes()
        prev = cur

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_png_reader_round_trip(tmp_path: Path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(10, 7, 3), dtype=np.uint8)
    path = tmp_path / "t.png"
    path.write_bytes(_encode_png(pixels))
    assert np.array_equal(read_png(path), pixels.reshape(-1, 3))
    path.write_bytes(_encode_png(np.full((10, 7, 3), 255, dtype=np.uint8)))
    assert distinct_colours(read_png(path)) == 1

"""End to end over a running `python -m app` (a subprocess on a free loopback port, fixture model):
Debian's Chromium through Playwright, the gradio_client API, and a small load test."""
import csv
import os
import re
import zipfile
from urllib.parse import urlparse

import pytest

from app.config import AppConfig
from app.loadtest import free_port, run_load, start_server, stop_server, wait_ready
from app.predictor import Predictor
from model.features import FeatureError

pytestmark = pytest.mark.slow  # the browser

CHROMIUM = "/usr/bin/chromium"
TEXT = "I loved this film, it was wonderful."


@pytest.fixture(scope="module")
def media(tmp_path_factory, clip_mp4):
    root = tmp_path_factory.mktemp("browser_media")
    bad = root / "broken.mp4"
    bad.write_bytes(b"\x00\x01 this is not a video " * 40)
    return {"clip": clip_mp4, "bad": bad, "root": root}


@pytest.fixture(scope="module")
def server(clip_model_dir, tmp_path_factory):
    port = free_port()
    root = tmp_path_factory.mktemp("server")
    log, tmp = root / "app.log", root / "tmp"
    tmp.mkdir()
    # Its own temporary folder, so the soak can count what it leaves; and a Gradio port variable
    # the flag must win over.
    env = {"TMPDIR": str(tmp), "GRADIO_TEMP_DIR": str(tmp), "GRADIO_SERVER_PORT": str(free_port())}
    proc = start_server(clip_model_dir, port, "--concurrency", "2", "--threads", "1", "--max-upload-mb", "5", log_path=log,
                        env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_ready(url, proc, timeout_s=90)
        yield {"url": url, "proc": proc, "log": log, "tmp": tmp}
    finally:
        stop_server(proc)


@pytest.fixture(scope="module")
def expected(clip_model_dir, media):
    """What the predictor says in-process about the same inputs: the browser must show the same."""
    predictor = Predictor(clip_model_dir, AppConfig(threads=1))
    with pytest.raises(FeatureError) as error:
        predictor.predict(video=media["bad"])
    return {"result": predictor.predict(text=TEXT, video=media["clip"]), "error": str(error.value)}


def _analyse(page, url, video, text=None):
    page.goto(url)
    if text:
        page.fill("#text_input textarea", text)
    page.set_input_files("#video_input input[type=file]", str(video))
    # The upload finishes before the click is honoured: wait for the player to appear.
    page.wait_for_selector("#video_input video", timeout=20_000)
    page.click("#analyse_button")


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium missing: apt-get install -y chromium")
def test_browser_clip_error_and_recovery(server, media, expected):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1400})
            hosts = set()
            page.on("request", lambda r: hosts.add(urlparse(r.url).hostname) if r.url.startswith("http") else None)

            # 1. A clip with text: the score and the diagnostics.
            _analyse(page, server["url"], media["clip"], TEXT)
            page.wait_for_selector("#score_output h2", timeout=30_000)
            headline = page.inner_text("#score_output h2")
            shown = float(re.search(r"Score ([+-]\d+\.\d+)", headline).group(1))
            want = expected["result"]
            assert shown == pytest.approx(want["score"], abs=0.006) and want["label"] in headline
            table = page.inner_text("#diagnostics_output")
            for m in ("text", "audio", "visual"):
                assert m in table
            assert f"{want['diagnostics']['audio']['contribution']:+.3f}" in table
            assert page.input_value("#summary_output textarea") == want["summary"]
            page.screenshot(path=str(media["root"] / "ui.png"), full_page=True)

            # 2. An invalid file: the front end's message, as a Gradio error.
            _analyse(page, server["url"], media["bad"])
            # (The browser may add its own "Video not playable" toast; ours must be there too.)
            page.locator(".toast-body", has_text=expected["error"][:60]).first.wait_for(timeout=30_000)

            # 3. The server is still there and the next request works.
            _analyse(page, server["url"], media["clip"], TEXT)
            page.wait_for_selector("#score_output h2", timeout=30_000)
            assert f"{want['score']:+.2f}" in page.inner_text("#score_output h2")
        finally:
            browser.close()
    assert server["proc"].poll() is None
    assert hosts == {"127.0.0.1"}, f"requests left loopback: {hosts}"


def test_gradio_client_predict_and_batch(server, media, expected, tmp_path):
    from gradio_client import Client, handle_file

    client = Client(server["url"], verbose=False)
    *_, result = client.predict(TEXT, None, handle_file(str(media["clip"])), api_name="/predict")
    assert result["score"] == pytest.approx(expected["result"]["score"], abs=1e-4)

    archive = tmp_path / "clips.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(media["clip"], "a.mp4")
        z.write(media["bad"], "b.mp4")
    csv_path, preview = client.predict([handle_file(str(archive))], None, False, api_name="/batch")
    rows = open(csv_path, encoding="utf-8").read().splitlines()
    assert rows[0].startswith("file,segment_start,segment_end,score") and len(rows) == 3
    assert [r[0] for r in preview["data"]] == ["a.mp4", "b.mp4"]


def test_small_load_has_no_failures(server, media):
    report = run_load(server["url"], clients=4, requests=2, clip=media["clip"], text=TEXT, timeout_s=60)
    assert report["failures"] == 0 and report["ok"] == 8, report
    assert report["p95_s"] < 60


@pytest.fixture(scope="module")
def talk(media):
    from model.features.bench.media import make_long_clip, spoken_sentences

    signal, truth = spoken_sentences(["I loved this film, it was wonderful.", "This was a terrible and boring movie.",
                                      "What a great and happy day this is."], pause_s=2.0)
    return make_long_clip(media["root"] / "talk.mp4", signal, fps=5, size=(320, 240)), truth


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium missing: apt-get install -y chromium")
def test_browser_timeline_renders_the_plot_and_the_segment_table(server, talk):
    from playwright.sync_api import sync_playwright

    clip, truth = talk
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            page.goto(server["url"])
            page.get_by_role("tab", name="Timeline").click()
            page.set_input_files("#timeline_input input[type=file]", str(clip))
            page.wait_for_timeout(1500)
            page.click("#timeline_button")
            page.wait_for_selector("#timeline_summary h2", timeout=60_000)
            assert "Overall" in page.inner_text("#timeline_summary h2")
            page.wait_for_selector("#timeline_plot canvas, #timeline_plot svg", timeout=30_000)
            table = page.inner_text("#timeline_table")
            assert "wonderful" in table and "terrible" in table
            page.screenshot(path=str(clip.parent / "timeline.png"), full_page=True)
        finally:
            browser.close()
    assert server["proc"].poll() is None


def test_gradio_client_timeline(server, talk):
    from gradio_client import Client, handle_file

    clip, truth = talk
    client = Client(server["url"], verbose=False)
    summary, _, _, result = client.predict(handle_file(str(clip)), api_name="/timeline")
    assert len(result["segments"]) == len(truth) and "Overall" in summary
    for seg, (start, end) in zip(result["segments"], truth):
        assert abs(seg["start"] - start) <= 0.5 and abs(seg["end"] - end) <= 0.5
    # The batch tab writes the same segments, one row each.
    csv_path, preview = client.predict([handle_file(str(clip))], None, True, api_name="/batch")
    rows = list(csv.DictReader(open(csv_path, encoding="utf-8")))
    assert [(float(r["segment_start"]), float(r["segment_end"])) for r in rows] == [(s["start"], s["end"]) for s in result["segments"]]
    assert all(r["file"] == clip.name and r["score"] for r in rows)


def test_a_short_soak_leaks_nothing(server, tmp_path):
    """A few dozen mixed requests from 3 concurrent clients, bad ones included: every good one
    succeeds, every bad one fails with a clear error, and the server's file descriptors,
    threads, memory and temporary files stay put (`python -m app.soak` is the long version)."""
    from app.soak import ProcessProbe, make_inputs, run_soak

    report = run_soak(server["url"], ProcessProbe(server["proc"].pid, [server["tmp"]]), make_inputs(tmp_path),
                      requests=45, clients=3, timeout_s=600)
    assert report["requests"] == 45
    assert all(k["unexpected"] == 0 for k in report["kinds"].values()), report["kinds"]
    growth, batches = report["growth"], report["kinds"].get("batch", {}).get("n", 0)
    assert growth["fds"] <= 8 and growth["threads"] <= 8 and growth["rss_mb"] <= 200, growth
    # Each batch's results CSV stays downloadable (our folder keeps the newest 16; Gradio may copy it to its cache).
    assert growth["temp_files"] <= 2 * batches + 4, (growth, batches)
    assert server["proc"].poll() is None

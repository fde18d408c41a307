"""The web page end to end in headless Chromium (Debian's /usr/bin/chromium) with Playwright.

Flow: a machine reports a faulty snippet through the page (API key entered in the page),
the verdict is shown, the alert appears, a human confirms the anomaly; "try a sound" scores
an uploaded file and a recording from Chromium's fake microphone. Every request the page
makes goes to the server itself (no CDN, no network).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
sync_api = pytest.importorskip("playwright.sync_api")

from helpers.service import Server, tiny_model, wav_bytes  # noqa: E402
from helpers.signals import hum  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run",
        # a fake microphone (a beep) that needs no permission prompt
        "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
KEY = "pl4ywright"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    model = tiny_model(tmp_path_factory)
    data = tmp_path_factory.mktemp("browser-data")
    srv = Server("--models", str(model), "--data", str(data), "--alert-open-after", "1", "--api-key", KEY).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail("chromium is not installed: apt-get install chromium (it is in apt-packages.txt)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    ctx = browser.new_context(viewport={"width": 1100, "height": 900})
    pg = ctx.new_page()
    pg.set_default_timeout(15000)
    pg.requests = []  # type: ignore[attr-defined]
    pg.errors = []  # type: ignore[attr-defined]
    pg.on("request", lambda r: pg.requests.append(r.url))
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    yield pg
    ctx.close()
    outside = [u for u in pg.requests if not (u.startswith(server.url) or u.startswith("data:"))]
    assert not outside, f"the page reached outside the server: {outside}"
    assert not pg.errors, pg.errors


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("browser-clips")
    rng = np.random.default_rng(11)
    (d / "fault.wav").write_bytes(wav_bytes(hum(rng, fault=True)))
    (d / "normal.wav").write_bytes(wav_bytes(hum(rng, seconds=3.0)))
    return d


def test_report_a_snippet_see_the_verdict_and_the_alert_then_label_it(page, server, clips):
    page.goto(server.url + "/#/machine/press-4")
    page.wait_for_selector(".snippet-form")
    page.fill("#api-key", KEY)
    page.dispatch_event("#api-key", "change")
    page.set_input_files(".snippet-file", str(clips / "fault.wav"))
    page.click(".snippet-form button[type=submit]")
    verdict = page.wait_for_selector("#snippet-verdict")
    assert verdict.text_content() == "anomalous"
    # the page reloads the machine: status, the open alert, the snippet with its spectrogram
    row = page.wait_for_selector(".machine-alerts .alert-row")
    assert "open" in row.text_content()
    assert page.text_content("#machine-status") == "alert"
    img = page.wait_for_selector(".snippet-row img.spec")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=img)
    page.click(".snippet-row .label-anomaly")
    page.wait_for_selector(".snippet-row .label-anomaly.on")
    assert page.text_content(".snippet-row .current-label") == "anomaly"
    # the overview lists the machine in alert and the alert as confirmed
    page.goto(server.url + "/#/")
    card = page.wait_for_selector('.card.machine[data-machine="press-4"]')
    assert "alert" in card.text_content()
    assert card.query_selector("svg.spark") is not None
    page.wait_for_selector(".alerts .alert-row .badge.confirmed")
    page.click("nav a[data-nav=alerts]")
    page.wait_for_selector("h1:text('Alerts')")
    assert "confirmed" in page.text_content(".alert-row")


def test_writes_without_the_key_show_a_clear_message(page, server, clips):
    page.goto(server.url + "/#/machine/press-5")
    page.evaluate("localStorage.removeItem('earshot.apiKey')")
    page.reload()
    page.wait_for_selector(".snippet-form")
    page.set_input_files(".snippet-file", str(clips / "normal.wav"))
    page.click(".snippet-form button[type=submit]")
    err = page.wait_for_selector(".upload-result .error")
    assert "API key" in err.text_content()


@pytest.mark.slow
def test_try_a_sound_upload_and_microphone(page, server, clips):
    page.goto(server.url + "/")
    page.fill("#api-key", KEY)
    page.dispatch_event("#api-key", "change")
    page.click("nav a[data-nav=try]")
    page.wait_for_selector(".try-form select option", state="attached")
    page.set_input_files(".try-file", str(clips / "normal.wav"))
    page.click(".try-form button[type=submit]")
    verdict = page.wait_for_selector("#try-verdict")
    assert verdict.text_content() in ("normal", "anomalous")
    assert "threshold" in page.text_content(".try-result")
    page.wait_for_function("() => { const i = document.querySelector('#try-spectrogram'); return i && i.complete && i.naturalWidth > 0 }")
    assert len(page.query_selector_all(".try-result svg.timeline rect.bin")) == 3  # 3 s in 1 s bins
    page.set_input_files(".try-file", str(clips / "fault.wav"))
    page.click(".try-form button[type=submit]")
    page.wait_for_function("() => document.querySelector('#try-verdict')?.textContent === 'anomalous'")
    # record 1.5 s from the fake microphone: MediaRecorder -> WAV in the page -> /score
    page.evaluate("document.querySelector('.try-result').replaceChildren()")
    page.click(".try-form button.record")
    page.wait_for_selector(".try-form button.record.rec")
    page.wait_for_timeout(1500)
    page.click(".try-form button.record")
    page.wait_for_selector("#try-verdict")
    text = page.text_content(".try-result")
    duration = float(text.split(" s at ")[0].split("·")[-1])
    assert 0.8 < duration < 3.0, text  # the recording, not the uploaded 2 s / 3 s files
    page.wait_for_selector(".try-result svg.timeline rect.bin")


@pytest.mark.slow
def test_fault_field_saves_and_the_alert_shows_the_closest_fault(page, server):
    import httpx  # the test's own API calls (with the key), beside the page's

    rng = np.random.default_rng(12)
    api = httpx.Client(base_url=server.url, headers={"X-API-Key": KEY}, timeout=30)

    def post(y):
        r = api.post("/machines/press-9/snippets", files={"file": ("c.wav", wav_bytes(y), "audio/wav")})
        assert r.status_code == 201, r.text
        return r.json()

    def calm():  # normal hums until the machine's alert is closed (the tiny model has a few false alarms)
        for _ in range(8):
            r = post(hum(rng))
            if not r["is_anomalous"] and (r["alert_event"] == "close" or r["alert_id"] is None):
                return
        raise AssertionError("press-9 kept its alert open")

    first = post(hum(rng, fault="clicks"))
    assert api.post(f"/snippets/{first['id']}/label", json={"label": "anomaly", "fault": "bearing"}).status_code == 200
    calm()
    second = post(hum(rng, fault="clicks"))
    # the page: type the fault in the snippet's label form, confirm it
    page.goto(server.url + "/#/machine/press-9")
    page.fill("#api-key", KEY)
    page.dispatch_event("#api-key", "change")
    row = f'.snippet-row[data-id="{second["id"]}"]'
    page.fill(f"{row} .fault-input", "bearing")
    page.click(f"{row} .label-anomaly")
    page.wait_for_selector(f"{row} .label-anomaly.on")
    assert page.input_value(f"{row} .fault-input") == "bearing"
    assert api.get(f"/snippets/{second['id']}").json()["fault"] == "bearing"
    # a saved fault can be changed on a confirmed snippet ("Save fault"); a too long one shows the 422
    page.evaluate(f"document.querySelector('{row} .fault-input').removeAttribute('maxlength')")
    page.fill(f"{row} .fault-input", "x" * 65)
    page.click(f"{row} .fault-save")
    assert "at most 64" in page.wait_for_selector(f"{row} .error").text_content()
    assert api.get(f"/snippets/{second['id']}").json()["fault"] == "bearing"
    calm()
    third = post(hum(rng, fault="clicks"))
    assert third["alert_event"] == "open"
    page.goto(server.url + "/#/alerts")
    cell = page.wait_for_selector(f'.alert-row[data-alert="{third["alert_id"]}"] .alert-fault')
    assert cell.text_content().startswith("sounds like bearing (distance "), cell.text_content()
    api.close()


@pytest.mark.slow
def test_a_label_trained_model_and_its_held_out_comparison_show_on_the_machine_page(page, server):
    """The team's labels train a CNN from the machine page ("supervised"); the held-out comparison
    with the machine's model shows when the job ends, and again after a reload (GET /jobs)."""
    import httpx  # the test's own API calls (with the key), beside the page's

    rng = np.random.default_rng(13)
    api = httpx.Client(base_url=server.url, headers={"X-API-Key": KEY}, timeout=30)
    # this machine's normal sound is hum + whine (the hum model hears it as anomalous), its fault plain hum
    for i, kind in enumerate(["normal", "anomaly"] * 8 + ["normal", "normal"]):
        y = hum(rng, fault="whine") if kind == "normal" else hum(rng)
        r = api.post("/machines/press-12/snippets", files={"file": ("c.wav", wav_bytes(y), "audio/wav")},
                     data={"recorded_at": f"2026-03-02T08:{i:02d}:00Z"})
        assert r.status_code == 201, r.text
        assert api.post(f"/snippets/{r.json()['id']}/label", json={"label": kind}).status_code == 200
    page.goto(server.url + "/#/machine/press-12")
    page.fill("#api-key", KEY)
    page.dispatch_event("#api-key", "change")
    form = page.wait_for_selector("form:has(.train-model)")
    assert page.query_selector(".comparison-box .comparison") is None  # no label-trained job yet
    page.select_option(".train-model", "supervised")
    form.query_selector("input[type=number]").fill("8")
    form.query_selector("button[type=submit]").click()
    verdict = page.wait_for_selector("#comparison-verdict", timeout=90000)
    assert verdict.text_content() == "swapped in"
    text = page.text_content(".comparison-box")
    assert "held-out AUC" in text and "candidate" in text and "fan_id_00 (dense-ae)" in text
    assert "held out: 3 confirmed anomalies, 3 normal" in text, text
    job = api.get("/jobs?machine=press-12").json()["jobs"][0]
    assert job["result"]["comparison"]["swapped"] is True
    page.reload()
    assert page.wait_for_selector("#comparison-verdict").text_content() == "swapped in"
    assert "press-12 (cnn)" in page.text_content(".comparison-box tbody tr")  # the candidate row
    api.close()


@pytest.mark.slow
def test_drift_panel_plots_the_checks_and_retrains_on_recent_snippets(page, server):
    """Two stored drift checks (steady, then a noisier room) show as the drift plot, the last
    verdict and its moved bands; "Retrain on recent normal snippets" starts a training job
    restricted to recent snippets and shows its progress."""
    import httpx  # the test's own API calls (with the key), beside the page's

    rng = np.random.default_rng(14)
    api = httpx.Client(base_url=server.url, headers={"X-API-Key": KEY}, timeout=30)

    def post(y):
        r = api.post("/machines/press-20/snippets", files={"file": ("c.wav", wav_bytes(y), "audio/wav")})
        assert r.status_code == 201, r.text
        return r.json()["id"]

    for _ in range(16):  # labelled normal: all of them are training snippets whatever the tiny model said
        assert api.post(f"/snippets/{post(hum(rng))}/label", json={"label": "normal"}).status_code == 200
    steady = api.get("/machines/press-20/drift?n=16&record=true").json()
    for _ in range(12):
        post(hum(rng) + 0.05 * rng.standard_normal(2 * 16000).astype(np.float32))
    moved = api.get("/machines/press-20/drift?n=12&record=true").json()
    assert steady["drifted"] is False and moved["drifted"] is True, (steady, moved)
    page.goto(server.url + "/#/machine/press-20")
    page.fill("#api-key", KEY)
    page.dispatch_event("#api-key", "change")
    page.wait_for_selector(".drift-panel svg.drift-plot")
    assert len(page.query_selector_all(".drift-plot circle.drift-point")) == 2
    assert len(page.query_selector_all(".drift-plot circle.drifted")) == 1
    assert page.text_content("#drift-verdict") == "drifted"
    assert len(page.query_selector_all(".drift-bands tbody tr")) == len(moved["bands"]) > 0
    assert "Hz" in page.text_content(".drift-bands tbody tr") and page.query_selector(".drift-suggest") is not None
    page.fill(".retrain-days", "1")
    page.fill(".retrain-epochs", "1")
    page.click("button.retrain")
    page.wait_for_selector(".retrain-progress progress")
    page.wait_for_function("() => /job (succeeded|failed)/.test(document.querySelector('.retrain-progress').textContent)",
                           timeout=120000)
    assert "job succeeded" in page.text_content(".retrain-progress"), page.text_content(".retrain-progress")
    job = next(j for j in api.get("/jobs?machine=press-20").json()["jobs"] if j["kind"] == "train")
    assert job["params"]["since_days"] == 1 and job["result"]["n_snippets"] >= 16
    api.close()

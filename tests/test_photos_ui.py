"""Photos in the browser: a citizen sends one from the widget on a phone (button, preview,
progress, a network cut mid-way), the gendarme sees its thumbnail in the console, opens it and
answers with a photo of their own. Real Chromium, real chatd and Redis, real files."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from harness import Chatd
from test_console import ARTIFACTS, accept_in_console, c, console_agent
from test_widget import open_widget, start_from_widget, w

pytestmark = [pytest.mark.asyncio, pytest.mark.browser]


def phone_photo(path: Path, size: tuple[int, int] = (1600, 1200)) -> Path:
    """A JPEG as a phone writes it: with GPS coordinates and the device in its EXIF."""
    img = Image.radial_gradient("L").resize(size).convert("RGB")
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x0110] = "Phone 15"  # Model
    gps = {1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)}
    exif[0x8825] = gps  # GPSInfo
    img.save(path, "JPEG", exif=exif.tobytes(), quality=90)
    assert b"PhoneMaker" in path.read_bytes()
    return path


async def loaded(img: Any) -> None:
    await img.wait_for()
    await img.page.wait_for_function("(e) => e.complete && e.naturalWidth > 0", arg=await img.element_handle())


async def test_a_citizen_sends_a_photo_from_a_phone_and_the_gendarme_answers_with_one(
        browser: Any, server: Chatd, redis_server: Any, tmp_path: Path) -> None:
    console, _ = await console_agent(browser, server, redis_server.url)
    page = await open_widget(browser, server, width=375, height=667)
    await start_from_widget(page, "theft", "On a forcé la porte de mon garage")
    sid = await console.locator("[data-chatd=offer]").first.get_attribute("data-session")
    await accept_in_console(console, sid)
    await w(page, "status").filter(has_text="vous répond").wait_for()

    # choose, see the preview, cancel; choose again and send it, the network cut on the way
    photo = phone_photo(tmp_path / "garage.jpg")
    chooser = page.locator("#chatd-widget input[type=file]")
    await chooser.set_input_files(str(photo))
    await w(page, "attach-preview").wait_for()
    await w(page, "attach-cancel").click()
    await w(page, "attach-preview").wait_for(state="hidden")
    await chooser.set_input_files(str(photo))
    await w(page, "input").fill("La serrure est cassée")
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "widget-375-photo-preview.png"))
    await page.context.set_offline(True)
    await w(page, "attach-send").click()
    await w(page, "attach-preview").filter(has_text="Réseau perdu").wait_for()
    await page.context.set_offline(False)
    sent = w(page, "message", data_from="visitor").filter(has_text="La serrure est cassée")
    await sent.locator("[data-chatd=photo] img").wait_for()
    await sent.and_(page.locator("[data-seq]")).wait_for(timeout=20000)  # acknowledged

    # the gendarme: one thumbnail (sent once), opened full size, without its metadata
    thumb = c(console, "photo")
    await thumb.first.wait_for(timeout=20000)
    await loaded(thumb.first.locator("img"))
    assert await thumb.count() == 1
    await console.screenshot(path=str(ARTIFACTS / "console-photo.png"))
    await thumb.first.click()
    await loaded(c(console, "photo-full"))
    size = await c(console, "photo-full").evaluate("(e) => [e.naturalWidth, e.naturalHeight]")
    assert size == [1600, 1200]
    href = await c(console, "photo-download").get_attribute("href")
    assert href and href.endswith("download=1")
    body = await console.evaluate(
        "(u) => fetch(u).then(r => r.arrayBuffer()).then(b => Array.from(new Uint8Array(b)))",
        href.split("?")[0])
    served = bytes(body)
    assert b"PhoneMaker" not in served and b"Exif" not in served
    assert Image.open(io.BytesIO(served)).getexif() == {}
    await console.keyboard.press("Escape")

    # the gendarme answers with a photo (a diagram); the citizen sees it and can enlarge it
    diagram = tmp_path / "plan.png"
    Image.new("RGB", (800, 600), "white").save(diagram)
    await console.locator("#photo-input").set_input_files(str(diagram))
    await c(console, "attach-preview").wait_for()
    await c(console, "input").fill("Voici où déposer plainte")
    await c(console, "send").click()
    answer = w(page, "message", data_from="agent").filter(has_text="Voici où déposer plainte")
    await loaded(answer.locator("[data-chatd=photo] img"))
    await page.screenshot(path=str(ARTIFACTS / "widget-375-photos.png"))
    await answer.locator("[data-chatd=photo]").click()
    await loaded(w(page, "photo-full").locator("img"))
    await w(page, "photo-close").click()
    await w(page, "photo-full").wait_for(state="hidden")
    assert page.errors == [] and console.errors == []


async def test_a_file_that_is_not_a_photo_is_refused_with_a_clear_word(
        browser: Any, server: Chatd, redis_server: Any, tmp_path: Path) -> None:
    console, _ = await console_agent(browser, server, redis_server.url)
    page = await open_widget(browser, server)
    await start_from_widget(page, "scam", "Un SMS bizarre")
    sid = await console.locator("[data-chatd=offer]").first.get_attribute("data-session")
    await accept_in_console(console, sid)
    svg = tmp_path / "dessin.svg"
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')
    await page.locator("#chatd-widget input[type=file]").set_input_files(
        {"name": "photo.jpg", "mimeType": "image/jpeg", "buffer": svg.read_bytes()})
    await w(page, "attach-send").click()
    await w(page, "attach-preview").filter(has_text="pas une photo acceptée").wait_for()
    assert await c(console, "photo").count() == 0
    assert page.errors == []


async def test_on_a_desktop_a_photo_is_pasted_or_dropped(
        browser: Any, server: Chatd, redis_server: Any) -> None:
    """At 1280 px: a screenshot pasted into the message box, or a file dropped on the panel,
    comes up in the preview like a chosen one; the dropped one is sent."""
    console, _ = await console_agent(browser, server, redis_server.url)
    page = await open_widget(browser, server, width=1280, height=800)
    await start_from_widget(page, "scam", "Voici la capture du faux SMS")
    sid = await console.locator("[data-chatd=offer]").first.get_attribute("data-session")
    await accept_in_console(console, sid)
    make_file = """
        const c = document.createElement('canvas'); c.width = 300; c.height = 200;
        const g = c.getContext('2d'); g.fillStyle = '#c00'; g.fillRect(20, 20, 120, 80);
        const blob = await new Promise(ok => c.toBlob(ok, 'image/png'));
        const dt = new DataTransfer(); dt.items.add(new File([blob], name, {type: 'image/png'}));
        const root = document.getElementById('chatd-widget').shadowRoot;"""
    await w(page, "input").focus()
    await page.evaluate("async (name) => {" + make_file + """
        root.querySelector('[data-chatd=input]').dispatchEvent(
            new ClipboardEvent('paste', {clipboardData: dt, bubbles: true, cancelable: true})); }""",
                        "capture.png")
    await w(page, "attach-preview").wait_for()
    await w(page, "attach-cancel").click()
    await w(page, "attach-preview").wait_for(state="hidden")
    await page.evaluate("async (name) => {" + make_file + """
        root.querySelector('[data-chatd=panel]').dispatchEvent(
            new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true})); }""",
                        "dropped.png")
    await w(page, "attach-preview").wait_for()
    await w(page, "attach-send").click()
    await loaded(c(console, "photo").first.locator("img"))
    assert await c(console, "photo").count() == 1
    assert page.errors == []

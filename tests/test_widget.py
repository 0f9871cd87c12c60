"""The citizen widget in a real headless Chromium, against real chatd processes and Redis, with a
real agent on the other side (the protocol test client)."""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from conftest import create_account, make_agent, make_visitor, start_chat
from harness import ROOT, Chatd, Client, free_port

pytestmark = [pytest.mark.asyncio, pytest.mark.browser]

ARTIFACTS = ROOT / "test-artifacts"
EXIT_URL = "https://meteofrance.com/"


async def open_widget(browser: Any, server: Chatd, width: int = 1280, height: int = 800,
                      locale: str = "fr-FR", bypass_csp: bool = False) -> Any:
    context = await browser.new_context(viewport={"width": width, "height": height}, locale=locale,
                                        accept_downloads=True, bypass_csp=bypass_csp)
    page = await context.new_page()
    page.errors = []  # type: ignore[attr-defined]
    page.on("pageerror", lambda e: page.errors.append(str(e)))  # type: ignore[attr-defined]
    # the neutral page quick exit goes to, served without a network
    await context.route(EXIT_URL + "**", lambda route: route.fulfill(
        body="<!doctype html><title>Météo</title><p>Météo du jour</p>", content_type="text/html"))
    await page.goto(server.http + "/")
    return page


async def host_attributes(context: Any, **attrs: str) -> None:
    """The host page's options on the widget's script tag (data-lang…), set as the page is
    parsed, before the deferred widget runs. (Serving a changed page through route.fulfill
    would make Chromium treat it as a public page and block its connections to 127.0.0.1.)"""
    await context.add_init_script(
        "new MutationObserver((m, obs) => {"
        "  const s = document.querySelector(\"script[src*='widget.js']\");"
        "  if (s) { Object.assign(s.dataset, " + json.dumps(attrs) + "); obs.disconnect(); }"
        "}).observe(document, {childList: true, subtree: true});")


def w(page: Any, name: str, **attrs: str) -> Any:
    """A working part of the widget by its data-chatd name (Playwright pierces the shadow root)."""
    sel = f"[data-chatd={name}]" + "".join(f"[{k.replace('_', '-')}='{v}']" for k, v in attrs.items())
    return page.locator(sel)


async def start_from_widget(page: Any, topic: str = "scam", text: str = "On m'a volé ma carte") -> None:
    await w(page, "launcher").click()
    await w(page, "topic", data_topic=topic).click()
    await w(page, "input").fill(text)
    await w(page, "send").click()
    # waiting: with an estimate, or told plainly that nobody can answer now
    await w(page, "status").filter(has_text=re.compile("Attente estimée|Aucun gendarme")).wait_for()


async def accept_next(agent: Client) -> str:
    offer = await agent.recv("offer", timeout=10)
    await agent.send({"type": "accept", "session": offer["session"]})
    await agent.recv("assigned", session=offer["session"])
    return str(offer["session"])


async def test_the_whole_citizen_flow(browser: Any, server: Chatd, redis_server: Any) -> None:
    agent = await make_agent(server, redis_server.url)
    page = await open_widget(browser, server)
    await start_from_widget(page, "scam", "Bonjour, j'ai reçu un SMS frauduleux")
    assert await page.title() == "Informations pratiques"  # neutral while chatting
    sid = await accept_next(agent)
    await w(page, "status").filter(has_text="vous répond").wait_for()
    first = w(page, "message", data_from="visitor").filter(has_text="SMS frauduleux")
    assert await first.count() == 1  # the first message is shown, once
    await agent.send({"type": "typing", "session": sid, "on": True})
    await page.get_by_text("Le gendarme écrit").wait_for()
    await agent.send({"type": "send", "session": sid, "cid": "a1",
                      "text": "Bonjour. Ne cliquez pas sur le lien. Voir https://www.cybermalveillance.gouv.fr"})
    reply = w(page, "message", data_from="agent")
    await reply.filter(has_text="Ne cliquez pas").wait_for()
    link = reply.locator("a")
    assert await link.get_attribute("href") == "https://www.cybermalveillance.gouv.fr"
    assert await link.get_attribute("rel") == "noopener noreferrer"
    await w(page, "input").fill("Merci, je l'ai supprimé")
    await w(page, "input").press("Enter")
    got = await agent.recv("msg", session=sid, text="Merci, je l'ai supprimé")
    assert got["from"] == "visitor" and got["seq"] == 3
    await agent.recv("read", session=sid)  # the widget says what it has shown
    await agent.send({"type": "read", "session": sid, "seq": 3})
    await w(page, "message", data_from="visitor").filter(has_text="supprimé").filter(has_text="lu").wait_for()
    await agent.send({"type": "close", "session": sid, "disposition": "answered"})
    await w(page, "status").filter(has_text="La conversation est terminée").wait_for()
    await page.locator("label[for=chatd-star-5]").click()
    await page.get_by_role("button", name="Envoyer mon avis").click()
    await page.get_by_text("Merci pour votre avis").wait_for()
    await page.get_by_role("button", name="Télécharger la conversation").click()
    # saving a file on this device is said first: nothing is written before the yes
    await page.get_by_text("sera enregistrée dans un fichier sur cet appareil").wait_for()
    async with page.expect_download() as info:
        await page.get_by_role("button", name="Enregistrer sur cet appareil").click()
    path = await (await info.value).path()
    text = Path(path).read_text(encoding="utf-8")
    assert "Bonjour, j'ai reçu un SMS frauduleux" in text and "Ne cliquez pas" in text
    assert await page.title() != "Informations pratiques"
    assert page.errors == []


async def test_user_text_is_never_html(browser: Any, server: Chatd, redis_server: Any) -> None:
    agent = await make_agent(server, redis_server.url)
    page = await open_widget(browser, server)
    await start_from_widget(page, "general", "<b>gras</b>")
    sid = await accept_next(agent)
    await agent.send({"type": "send", "session": sid, "cid": "x",
                      "text": '<img src=x onerror="window.pwned=1">javascript:alert(1)'})
    await w(page, "message", data_from="agent").filter(has_text="<img src=x").wait_for()
    root = "document.getElementById('chatd-widget').shadowRoot"
    # (the widget's own <img> for photo previews are outside messages)
    assert await page.evaluate(
        f"{root}.querySelectorAll('[data-chatd=message] img, [data-chatd=message] b').length") == 0
    # the widget's own links (17, 112, 114 in the notice) are not in messages
    assert await page.evaluate(f"{root}.querySelectorAll('[data-chatd=message] a').length") == 0
    assert await page.evaluate("window.pwned === undefined")


async def test_queue_position_moves_as_people_ahead_are_served(chatd_factory: Any, redis_server: Any,
                                                              browser: Any) -> None:
    server = await chatd_factory(env={"CHATD_TICK": "0.2"})
    busy = await make_agent(server, redis_server.url, capacity=1)  # available, and busy
    await busy.recv("offer", session=await start_chat(await make_visitor(server), "general"))
    ahead = [await make_visitor(server) for _ in range(2)]
    for v in ahead:
        await start_chat(v, "general")
    page = await open_widget(browser, server)
    await start_from_widget(page, "general", "Question sur une amende")
    await w(page, "status").filter(has_text="Il y a 2 personnes avant vous").wait_for()
    agent = await make_agent(server, redis_server.url, capacity=1)
    await agent.recv("offer", timeout=10)  # the first is being offered: one fewer ahead
    await w(page, "status").filter(has_text="Il y a 1 personne avant vous").wait_for(timeout=5000)


async def test_messages_typed_while_the_server_is_down_arrive_once(chatd_factory: Any, redis_server: Any,
                                                                   browser: Any) -> None:
    server = await chatd_factory()
    agent_server = await chatd_factory()
    agent = await make_agent(agent_server, redis_server.url)
    page = await open_widget(browser, server)
    await start_from_widget(page, "theft", "Mon vélo a été volé")
    sid = await accept_next(agent)
    await w(page, "status").filter(has_text="vous répond").wait_for()
    await server.kill()  # the citizen's server process dies
    await w(page, "status").filter(has_text="Connexion perdue").wait_for()
    for text in ("C'était devant la gare", "Il est bleu"):
        await w(page, "input").fill(text)
        await w(page, "input").press("Enter")
    await w(page, "message", data_from="visitor").filter(has_text="en attente").first.wait_for()
    # the same address comes back (another process, same Redis): the widget reconnects
    again = Chatd(redis_url=redis_server.url, prefix=server.prefix, port=server.port, env=server.env)
    await again.start()
    try:
        for text in ("C'était devant la gare", "Il est bleu"):
            await agent.recv("msg", session=sid, text=text, timeout=20)
        await agent.no_frame("msg", within=2.0, text="Il est bleu")
        texts = [f["text"] for f in agent.frames if f.get("type") == "msg"]
        assert texts.count("C'était devant la gare") == 1 and texts.count("Il est bleu") == 1
        await w(page, "message", data_from="visitor").filter(has_text="Il est bleu").filter(has_text="envoyé").wait_for()
        assert await w(page, "message").filter(has_text="en attente").count() == 0
    finally:
        await again.stop()


async def test_a_reload_in_the_same_tab_continues_the_chat(browser: Any, server: Chatd, redis_server: Any) -> None:
    agent = await make_agent(server, redis_server.url)
    page = await open_widget(browser, server)
    await start_from_widget(page, "road", "Question sur le permis")
    sid = await accept_next(agent)
    await agent.send({"type": "send", "session": sid, "cid": "a1", "text": "Je vous écoute"})
    await w(page, "message", data_from="agent").filter(has_text="Je vous écoute").wait_for()
    await page.reload()
    await w(page, "message", data_from="agent").filter(has_text="Je vous écoute").wait_for()
    assert await w(page, "message").count() == 2  # replayed once, not doubled
    await agent.send({"type": "send", "session": sid, "cid": "a2", "text": "Toujours là ?"})
    await w(page, "message", data_from="agent").filter(has_text="Toujours là").wait_for()
    await w(page, "input").fill("Oui")
    await w(page, "input").press("Enter")
    await agent.recv("msg", session=sid, text="Oui")


async def test_quick_exit_clears_everything_and_the_agent_sees_it(browser: Any, server: Chatd,
                                                                   redis_server: Any) -> None:
    agent = await make_agent(server, redis_server.url)
    page = await open_widget(browser, server)
    await start_from_widget(page, "violence", "J'ai besoin d'aide")
    sid = await accept_next(agent)
    await w(page, "status").filter(has_text="vous répond").wait_for()
    await w(page, "quick-exit").click()
    await page.wait_for_url(EXIT_URL + "**")
    closed = await agent.recv("closed", session=sid)
    assert closed["reason"] == "quick_exit" and closed["by"] == "visitor"
    await page.go_back()  # the chat page was replaced in history: back does not return to it
    assert not page.url.startswith(server.http)
    page2 = await page.context.new_page()
    await page2.goto(server.http + "/")
    keys = await page2.evaluate("Object.keys(sessionStorage).filter(k => k.startsWith('chatd.'))")
    assert keys == []


async def test_escape_three_times_is_a_quick_exit(browser: Any, server: Chatd, redis_server: Any) -> None:
    agent = await make_agent(server, redis_server.url)
    page = await open_widget(browser, server)
    await start_from_widget(page, "general", "Bonjour")
    sid = await accept_next(agent)
    for _ in range(3):
        await page.keyboard.press("Escape")
    await page.wait_for_url(EXIT_URL + "**")
    assert (await agent.recv("closed", session=sid))["reason"] == "quick_exit"


async def test_keyboard_only(browser: Any, server: Chatd, redis_server: Any) -> None:
    page = await open_widget(browser, server)
    for _ in range(12):  # tab through the host page to the launcher
        await page.keyboard.press("Tab")
        focused = await page.evaluate(
            "document.activeElement && document.activeElement.id === 'chatd-widget' && "
            "document.activeElement.shadowRoot.activeElement.dataset.chatd")
        if focused == "launcher":
            break
    assert focused == "launcher"
    await page.keyboard.press("Enter")
    for _ in range(50):  # focus moves to the first topic (polled: the page's CSP forbids eval)
        if await page.evaluate("document.getElementById('chatd-widget').shadowRoot"
                               ".activeElement?.dataset.chatd") == "topic":
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the first topic did not get the focus")
    await page.keyboard.press("Enter")  # the first topic
    await page.keyboard.type("Je tape au clavier")
    await page.keyboard.press("Enter")
    # nobody is signed in: said plainly
    await w(page, "status").filter(has_text="Aucun gendarme").wait_for(timeout=5000)


async def axe_serious(page: Any) -> list[Any]:
    result = await page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
            for v in result["violations"] if v["impact"] in ("serious", "critical")]


async def test_accessibility_has_no_serious_violations(browser: Any, server: Chatd, redis_server: Any) -> None:
    """axe-core on the demo page and the widget in each of its states."""
    axe = ROOT / "node_modules" / "axe-core" / "axe.min.js"
    assert axe.exists(), "axe-core is needed: ./scripts/test installs it from npm"
    agent = await make_agent(server, redis_server.url)
    page = await open_widget(browser, server, bypass_csp=True)  # only so that axe can be injected
    await page.add_script_tag(path=str(axe))
    found: dict[str, list[Any]] = {}
    found["demo page"] = await axe_serious(page)
    await w(page, "launcher").click()
    await w(page, "topic").first.wait_for()
    await page.get_by_role("button", name="J'ai un code").click()
    await w(page, "lang").click()  # the language list open
    found["first screen, code entry, languages"] = await axe_serious(page)
    await w(page, "lang-option", data_lang="es").click()
    found["first screen in Spanish"] = await axe_serious(page)
    await w(page, "lang").click()
    await w(page, "lang-option", data_lang="fr").click()
    await w(page, "topic", data_topic="general").click()
    found["compose"] = await axe_serious(page)
    await w(page, "input").fill("Bonjour")
    await w(page, "send").click()
    await w(page, "status").filter(has_text="Attente estimée").wait_for()
    found["waiting"] = await axe_serious(page)
    sid = await accept_next(agent)
    await agent.send({"type": "send", "session": sid, "cid": "a1", "text": "Bonjour, je vous écoute."})
    await agent.send({"type": "typing", "session": sid, "on": True})
    await w(page, "message", data_from="agent").wait_for()
    await w(page, "notice-toggle").click()
    await w(page, "end").click()  # the question before ending
    found["chat, notice open, end asked"] = await axe_serious(page)
    await page.get_by_role("button", name="Non, continuer").click()
    await w(page, "minimize").click()
    await agent.send({"type": "send", "session": sid, "cid": "a2", "text": "Toujours là ?"})
    await w(page, "launcher").filter(has_text="1").wait_for()
    found["minimised with a reply"] = await axe_serious(page)
    await w(page, "launcher").click()
    await agent.send({"type": "close", "session": sid, "disposition": "answered"})
    await w(page, "status").filter(has_text="La conversation est terminée").wait_for()
    await page.get_by_role("button", name="Télécharger la conversation").click()
    found["closed, rating, download asked"] = await axe_serious(page)
    assert {state: v for state, v in found.items() if v} == {}


async def test_screenshots_at_phone_and_desktop_sizes(browser: Any, server: Chatd, redis_server: Any) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    agent = await make_agent(server, redis_server.url, capacity=2)
    for width, height in ((375, 740), (1280, 800)):
        page = await open_widget(browser, server, width, height)
        await page.screenshot(path=str(ARTIFACTS / f"widget-{width}-closed.png"))
        await start_from_widget(page, "scam", "Un faux conseiller bancaire m'a appelé")
        sid = await accept_next(agent)
        await agent.send({"type": "send", "session": sid, "cid": f"s{width}",
                          "text": "Bonjour, avez-vous donné des codes ?"})
        await w(page, "message", data_from="agent").wait_for()
        await page.wait_for_timeout(300)
        await page.screenshot(path=str(ARTIFACTS / f"widget-{width}-chat.png"))
        box = await w(page, "panel").bounding_box()
        assert box and box["width"] <= width and box["x"] >= 0  # fits the screen
        await page.context.close()


async def test_the_browser_language_chooses_english(browser: Any, server: Chatd) -> None:
    page = await open_widget(browser, server, locale="en-GB")
    await w(page, "launcher").filter(has_text="Chat with a gendarme").wait_for()
    await w(page, "launcher").click()
    await page.get_by_text("This chat is not an emergency line").wait_for()
    await w(page, "topic", data_topic="road").filter(has_text="Road safety").wait_for()


async def test_the_host_page_api_and_easy_read_french(browser: Any, server: Chatd) -> None:
    context = await browser.new_context(locale="fr-FR")
    await host_attributes(context, lang="fr-facile")  # the host page asks for easy-to-read French
    page = await context.new_page()
    await page.goto(server.http + "/")
    await w(page, "launcher").wait_for()
    await page.evaluate("window.__events = []; "
                        "['open', 'close'].forEach(e => window.chatd.on(e, () => window.__events.push(e)));"
                        "window.chatd.open()")
    await w(page, "panel").wait_for()
    await page.get_by_text("Ce tchat n'est pas pour les urgences").wait_for()
    await w(page, "quick-exit").filter(has_text="Partir vite").wait_for()
    await page.evaluate("window.chatd.close()")
    await w(page, "launcher").wait_for()
    assert await page.evaluate("window.__events") == ["open", "close"]
    assert await page.evaluate("document.getElementById('chatd-widget').shadowRoot.mode") == "open"
    await context.close()


# ---- small screens, zoom, large text -------------------------------------------------------

SHADOW = "document.getElementById('chatd-widget').shadowRoot"


async def reachable(page: Any, names: list[str]) -> dict[str, str]:
    """Each named part: its box lies inside the viewport and a tap at its centre lands on it
    (nothing covers it). Returns what is wrong, by name."""
    vw, vh = page.viewport_size["width"], page.viewport_size["height"]
    wrong: dict[str, str] = {}
    for name in names:
        part = w(page, name)
        box = await part.bounding_box()
        if box is None:
            wrong[name] = "not shown"
            continue
        if box["x"] < 0 or box["y"] < 0 or box["x"] + box["width"] > vw + 0.5 or box["y"] + box["height"] > vh + 0.5:
            wrong[name] = f"outside the viewport: {box}"
            continue
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        hit = await page.evaluate(
            f"([x, y, n]) => {{ const e = {SHADOW}.elementFromPoint(x, y); "
            "return !!e && !!e.closest('[data-chatd=\"' + n + '\"]'); }", [x, y, name])
        if not hit:
            wrong[name] = "covered"
    return wrong


async def one_line_header(page: Any) -> bool:
    """The header's parts sit on one line and it is no taller than one button and its padding."""
    return bool(await page.evaluate(f"""() => {{
        const h = {SHADOW}.querySelector('header');
        const kids = Array.from(h.children).filter(k => k.getClientRects().length);
        const mids = kids.map(k => {{ const r = k.getBoundingClientRect(); return r.top + r.height / 2; }});
        const tallest = Math.max(...kids.map(k => k.getBoundingClientRect().height));
        return Math.max(...mids) - Math.min(...mids) < 3 && h.getBoundingClientRect().height < tallest * 1.5;
    }}"""))


async def conversation_share(page: Any) -> float:
    panel = await w(page, "panel").bounding_box()
    conv = await w(page, "conversation").bounding_box()
    assert panel and conv
    return conv["height"] / panel["height"]


SMALL = {
    # a phone with its keyboard open: what is left of the screen
    "phone-keyboard": dict(viewport={"width": 375, "height": 420}, has_touch=True, is_mobile=True,
                           device_scale_factor=2),
    # 1280 × 800 at 200 % zoom: half as many CSS pixels, each twice as large
    "zoom-200": dict(viewport={"width": 640, "height": 400}, device_scale_factor=2),
}


@pytest.mark.parametrize("case", sorted(SMALL))
async def test_small_screens_keep_the_conversation_and_every_control(case: str, browser: Any, server: Chatd,
                                                                    redis_server: Any) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    agent = await make_agent(server, redis_server.url)
    # bypass_csp only so that axe can be injected
    # boxes are measured once laid out: no opening animation under way
    context = await browser.new_context(locale="fr-FR", bypass_csp=True, reduced_motion="reduce",
                                        **SMALL[case])
    page = await context.new_page()
    await page.goto(server.http + "/")
    await page.add_script_tag(path=str(ROOT / "node_modules" / "axe-core" / "axe.min.js"))
    assert await axe_serious(page) == []  # the demo page at this size
    await w(page, "launcher").click()
    await w(page, "topic").first.wait_for()
    # the first screen shows the emergency notice in full
    await w(page, "notice").filter(has_text="n'est pas un numéro d'urgence").wait_for()
    assert await w(page, "notice-toggle").is_hidden()
    await page.screenshot(path=str(ARTIFACTS / f"widget-{case}-first.png"))
    await start_from_widget_here(page, "scam", "Un faux conseiller bancaire m'a appelé")
    controls = ["quick-exit", "lang", "minimize", "notice-toggle", "end", "input", "send"]
    # waiting: two lines of queue status
    assert await one_line_header(page)
    assert await w(page, "notice").is_hidden()  # folded once it has been shown…
    assert "17" in await w(page, "notice-toggle").inner_text()  # …to one line that still says 17
    assert await reachable(page, controls) == {}
    assert await conversation_share(page) >= 0.5
    await page.screenshot(path=str(ARTIFACTS / f"widget-{case}-waiting.png"))
    sid = await accept_next(agent)
    for i in range(6):
        await agent.send({"type": "send", "session": sid, "cid": f"a{i}", "text": f"Question {i} : avez-vous donné des codes ?"})
    await w(page, "message", data_from="agent").filter(has_text="Question 5").wait_for()
    assert await one_line_header(page)
    assert await reachable(page, controls) == {}
    assert await conversation_share(page) >= 0.5
    # the latest message is in view, above the compose box
    last = await w(page, "message", data_from="agent").filter(has_text="Question 5").bounding_box()
    compose = await w(page, "input").bounding_box()
    assert last and compose and last["y"] + last["height"] <= compose["y"]
    await page.wait_for_timeout(300)
    await page.screenshot(path=str(ARTIFACTS / f"widget-{case}-chat.png"))
    # the emergency notice is one tap away, and folds again
    await w(page, "notice-toggle").click()
    await w(page, "notice").filter(has_text="n'est pas un numéro d'urgence").wait_for()
    assert await w(page, "notice").locator("a[href='tel:17']").count() == 1
    assert await reachable(page, ["notice", "quick-exit", "input", "send"]) == {}
    await page.screenshot(path=str(ARTIFACTS / f"widget-{case}-notice.png"))
    assert await axe_serious(page) == []
    await w(page, "notice-toggle").click()
    await w(page, "notice").wait_for(state="hidden")
    await context.close()


async def start_from_widget_here(page: Any, topic: str, text: str) -> None:
    """start_from_widget once the panel is open."""
    await w(page, "topic", data_topic=topic).click()
    await w(page, "input").fill(text)
    await w(page, "send").click()
    await w(page, "status").filter(has_text="Attente estimée").wait_for()


async def font_px(page: Any, name: str) -> float:
    return float(await page.evaluate(
        f"n => parseFloat(getComputedStyle({SHADOW}.querySelector('[data-chatd=' + n + ']')).fontSize)", name))


async def test_a_large_browser_font_enlarges_the_widget_and_a_small_page_root_does_not_shrink_it(
        browser: Any, server: Chatd) -> None:
    ARTIFACTS.mkdir(exist_ok=True)

    async def measure(browser_font: int | None = None, page_root: str | None = None) -> tuple[float, float, Any]:
        context = await browser.new_context(viewport={"width": 1280, "height": 800}, locale="fr-FR",
                                            reduced_motion="reduce")  # boxes measured, settled
        page = await context.new_page()
        if browser_font:  # the reader's own setting (chrome://settings/fonts)
            cdp = await context.new_cdp_session(page)
            await cdp.send("Page.setFontSizes", {"fontSizes": {"standard": browser_font}})
        if page_root:  # a host page that sets its own root size, as many sites do
            async def small_root(route: Any) -> None:
                response = await route.fetch()
                await route.fulfill(response=response, body=(await response.text()) + f"html{{font-size:{page_root}}}")
            await page.route("**/demo.css", small_root)
        await page.goto(server.http + "/")
        launcher = await font_px(page, "launcher")
        await w(page, "launcher").click()
        await w(page, "topic").first.wait_for()
        return launcher, await font_px(page, "topic"), page

    base_launcher, base_topic, page = await measure()
    await page.context.close()
    big_launcher, big_topic, page = await measure(browser_font=32)
    assert big_launcher == pytest.approx(2 * base_launcher, rel=0.02)
    assert big_topic == pytest.approx(2 * base_topic, rel=0.02)
    assert big_topic >= 28  # 32 px × .9375
    # with text that large the panel takes the whole screen, and still fits it
    box = await w(page, "panel").bounding_box()
    assert box and box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= 1280 and box["y"] + box["height"] <= 800
    assert await one_line_header(page)
    assert await reachable(page, ["quick-exit", "lang", "minimize"]) == {}
    await page.screenshot(path=str(ARTIFACTS / "widget-font-32px.png"))
    await page.context.close()
    # a page with html{font-size:62.5%} (10 px rem) leaves the widget at the reader's size
    small_launcher, small_topic, page = await measure(page_root="62.5%")
    assert await page.evaluate("parseFloat(getComputedStyle(document.documentElement).fontSize)") == 10
    assert small_launcher == pytest.approx(base_launcher) and small_topic == pytest.approx(base_topic)
    await page.context.close()


# ---- safety on every path ------------------------------------------------------------------

async def test_a_minimised_panel_shows_replies_and_quick_exit_is_one_tap_away_on_a_touch_screen(
        browser: Any, server: Chatd, redis_server: Any) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    agent = await make_agent(server, redis_server.url)
    context = await browser.new_context(viewport={"width": 375, "height": 740}, locale="fr-FR",
                                        reduced_motion="reduce",
                                        has_touch=True, is_mobile=True, device_scale_factor=2)
    await context.route(EXIT_URL + "**", lambda route: route.fulfill(
        body="<!doctype html><title>Météo</title><p>Météo du jour</p>", content_type="text/html"))
    page = await context.new_page()
    await page.goto(server.http + "/")
    # before the widget is used the page shows only the launcher
    assert await w(page, "quick-exit").count() == 0
    await w(page, "launcher").tap()
    await w(page, "topic").first.wait_for()
    await start_from_widget_here(page, "violence", "J'ai besoin d'aide")
    sid = await accept_next(agent)
    await w(page, "minimize").tap()
    await w(page, "launcher").wait_for()
    assert await w(page, "panel").is_hidden()
    exit_box, launcher_box = await w(page, "quick-exit").bounding_box(), await w(page, "launcher").bounding_box()
    assert exit_box and launcher_box and exit_box["height"] >= 44  # a finger's size, by the launcher
    assert await reachable(page, ["quick-exit", "launcher"]) == {}
    assert await w(page, "launcher").get_attribute("aria-label") is None
    await agent.send({"type": "send", "session": sid, "cid": "a1", "text": "Êtes-vous en sécurité ?"})
    await agent.send({"type": "send", "session": sid, "cid": "a2", "text": "Répondez quand vous pouvez."})
    # the launcher counts the replies, for eyes and for screen readers
    await w(page, "launcher").filter(has_text="2").wait_for()
    assert await page.get_by_role("button", name="2 nouveaux messages").count() == 1
    assert await page.title() == "Informations pratiques"  # nothing in the tab's title
    await page.screenshot(path=str(ARTIFACTS / "widget-minimised-badge.png"))
    await w(page, "launcher").tap()
    await w(page, "message", data_from="agent").filter(has_text="Répondez").wait_for()
    await w(page, "minimize").tap()
    assert await page.get_by_role("button", name="nouveaux messages").count() == 0  # read once opened
    await w(page, "quick-exit").tap()
    await page.wait_for_url(EXIT_URL + "**")
    closed = await agent.recv("closed", session=sid)
    assert closed["reason"] == "quick_exit"
    await context.close()


async def test_ending_asks_first(browser: Any, server: Chatd, redis_server: Any) -> None:
    agent = await make_agent(server, redis_server.url)
    page = await open_widget(browser, server)
    await start_from_widget(page, "general", "Bonjour")
    sid = await accept_next(agent)
    await w(page, "end").click()
    await page.get_by_text("Terminer la conversation ? Le gendarme ne pourra plus vous répondre ici.").wait_for()
    # the safe answer has the focus: Enter does not end the chat
    await page.keyboard.press("Enter")
    await agent.no_frame("closed", within=1.0)
    assert await w(page, "input").is_enabled()
    await w(page, "end").click()
    await page.get_by_role("button", name="Oui, terminer").click()
    closed = await agent.recv("closed", session=sid)
    assert closed["by"] == "visitor" and closed["reason"] == "visitor_closed"
    await w(page, "status").filter(has_text="La conversation est terminée").wait_for()


async def test_the_first_screen_says_what_is_kept_and_takes_a_code(browser: Any, server: Chatd) -> None:
    context = await browser.new_context(locale="fr-FR")
    await host_attributes(context, retentionDays="7")  # the host page says how long chats are kept
    page = await context.new_page()
    sent: list[dict[str, Any]] = []
    received: list[dict[str, Any]] = []

    def watch(ws: Any) -> None:
        ws.on("framesent", lambda data: sent.append(json.loads(data)))
        ws.on("framereceived", lambda data: received.append(json.loads(data)))
    page.on("websocket", watch)
    await page.goto(server.http + "/")
    await w(page, "launcher").click()
    privacy = w(page, "privacy")
    await privacy.filter(has_text="conserve cette conversation 7 jours au plus").wait_for()
    assert "« Quitter rapidement » l'efface de cet appareil" in await privacy.inner_text()
    # a returning visitor types the code they were given; today's server knows no such code
    await page.get_by_role("button", name="J'ai un code").click()
    await w(page, "code-input").fill("k7qm-4xpd-9t")
    await page.get_by_role("button", name="Revenir à ma conversation").click()
    await page.get_by_text("Ce code n'est pas reconnu, ou il a expiré.").wait_for()
    hellos = [f for f in sent if f.get("type") == "hello"]
    assert hellos[-1] == {"type": "hello", "lang": "fr", "code": "K7QM-4XPD-9T"}  # no token, no resume
    # said because the server's welcome named no chat, not because a connection failed
    assert received[-1]["type"] == "welcome" and received[-1]["sessions"] == []
    assert len(hellos) == 2  # the first connection's, then the code's own
    assert await w(page, "network").is_hidden()
    assert await w(page, "topic").count() == 6  # still on the first screen
    await context.close()


# ---- who answers, and when ------------------------------------------------------------------

PARIS = ZoneInfo("Europe/Paris")
FAST = 3 * 3600  # this device's clock is 3 hours fast


def hhmm(ts_s: float) -> str:
    return datetime.fromtimestamp(ts_s, PARIS).strftime("%H:%M")


async def test_each_message_shows_its_time_by_the_server_clock(browser: Any, server: Chatd, redis_server: Any) -> None:
    agent = await make_agent(server, redis_server.url)
    context = await browser.new_context(locale="fr-FR", timezone_id="Europe/Paris")
    await context.clock.install(time=time.time() + FAST)
    page = await context.new_page()
    await page.goto(server.http + "/")
    await start_from_widget(page, "road", "Question sur le permis")
    sid = await accept_next(agent)
    await agent.send({"type": "send", "session": sid, "cid": "a1", "text": "Je vous écoute"})
    echo = await agent.recv("msg", session=sid, cid="a1")  # its ts is the server's
    reply = w(page, "message", data_from="agent").filter(has_text="Je vous écoute")
    stamp = reply.locator("time")
    await stamp.wait_for()
    assert await stamp.inner_text() == hhmm(echo["ts"] / 1000)
    iso = datetime.fromtimestamp(echo["ts"] / 1000, ZoneInfo("UTC")).isoformat(timespec="milliseconds")
    assert await stamp.get_attribute("datetime") == iso.replace("+00:00", "Z")
    device = await page.evaluate("new Date().toLocaleTimeString('fr-FR', {hour: '2-digit', minute: '2-digit'})")
    assert device != await stamp.inner_text()  # the device's own clock would have said this
    mine = w(page, "message", data_from="visitor").filter(has_text="permis").locator("time")
    assert await mine.inner_text() in {hhmm(time.time()), hhmm(time.time() - 60)}
    await context.close()


async def test_the_status_names_the_gendarme_and_the_next_one_after_a_transfer(browser: Any, server: Chatd,
                                                                              redis_server: Any) -> None:
    first = await create_account(server, redis_server.url, name="Maréchal des logis Leroy")
    agent = await make_agent(server, redis_server.url, login=first, create=False)
    page = await open_widget(browser, server)
    await start_from_widget(page, "theft", "On a volé mon vélo")
    sid = await accept_next(agent)
    await w(page, "status").filter(has_text="Maréchal des logis Leroy vous répond.").wait_for()
    second = await create_account(server, redis_server.url, name="Adjudante Martin")
    other = await make_agent(server, redis_server.url, login=second, create=False)
    await agent.send({"type": "transfer", "session": sid, "to_agent": second})
    await accept_next(other)
    await w(page, "status").filter(has_text="Adjudante Martin vous répond.").wait_for()
    assert "Leroy" not in await w(page, "status").inner_text()
    # a reload knows the name too (welcome does not carry it)
    await page.reload()
    await w(page, "status").filter(has_text="Adjudante Martin vous répond.").wait_for()


# ---- a lost network is said at once ---------------------------------------------------------

async def test_going_offline_is_said_at_once_and_messages_leave_when_the_network_is_back(
        browser: Any, server: Chatd, redis_server: Any) -> None:
    agent = await make_agent(server, redis_server.url)
    context = await browser.new_context(locale="fr-FR", timezone_id="Europe/Paris")
    await context.clock.install(time=time.time() + FAST)
    page = await context.new_page()
    await page.goto(server.http + "/")
    await start_from_widget(page, "general", "Bonjour")
    sid = await accept_next(agent)
    await w(page, "status").filter(has_text="vous répond").wait_for()
    await context.set_offline(True)  # the browser's offline event
    await w(page, "network").filter(has_text="Connexion perdue. Vos messages sont gardés").wait_for(timeout=1000)
    await w(page, "input").fill("Je suis toujours là")
    await w(page, "input").press("Enter")
    mine = w(page, "message", data_from="visitor").filter(has_text="toujours là")
    await mine.filter(has_text="en attente d'envoi").wait_for()
    # a message not yet on the server is timed by this device's clock, corrected by the server's
    assert await mine.locator("time").inner_text() in {hhmm(time.time()), hhmm(time.time() - 60)}
    await agent.no_frame("msg", within=2.0, text="Je suis toujours là")
    await context.set_offline(False)
    await agent.recv("msg", session=sid, text="Je suis toujours là", timeout=10)
    await mine.filter(has_text="envoyé").wait_for()
    await w(page, "network").wait_for(state="hidden")
    await agent.no_frame("msg", within=1.0, text="Je suis toujours là")  # once
    await context.close()


async def pause_clock(page: Any) -> None:
    """Stops the page's clock where it is. It runs until then, so the time aimed at (read from
    the page, a little ahead) may be past when Playwright gets there on a loaded machine
    ("Cannot fast-forward to the past"): aimed again, a little further."""
    from playwright.async_api import Error as PlaywrightError

    for ahead_ms in (5, 50, 500):
        try:
            await page.clock.pause_at((await page.evaluate("Date.now()") + ahead_ms) / 1000)
            return
        except PlaywrightError as exc:
            if "to the past" not in str(exc):
                raise
    raise AssertionError("the page's clock could not be paused")


async def test_a_silent_connection_is_noticed_after_two_unanswered_pings(browser: Any, server: Chatd,
                                                                       redis_server: Any) -> None:
    from loadtest.proxy import Proxy

    proxy, port = Proxy(), free_port()
    listener = await proxy.listen(port, server.port)  # the citizen's way to the server
    context = await browser.new_context(locale="fr-FR")
    try:
        agent = await make_agent(server, redis_server.url)
        await context.clock.install()  # time flows, and can jump ahead
        page = await context.new_page()
        await page.goto(f"http://127.0.0.1:{port}/")
        await start_from_widget(page, "general", "Bonjour")
        sid = await accept_next(agent)
        await w(page, "status").filter(has_text="vous répond").wait_for()

        async def ping_period() -> None:
            await page.clock.fast_forward(10_000)
            await asyncio.sleep(0.4)  # a live link answers well within this

        for _ in range(3):  # pings are answered: nothing to say
            await ping_period()
        assert await w(page, "network").is_hidden()
        assert proxy.freeze("127.0.0.1") >= 1  # the link goes silent: nothing closes, nothing arrives
        # from here the page's time moves only when told: the reconnect that follows the lost link
        # must not come (and hide the notice) before the notice is seen, however slow the machine
        await pause_clock(page)
        await w(page, "input").fill("Vous m'entendez ?")
        await w(page, "input").press("Enter")
        await ping_period()  # a ping leaves
        await ping_period()  # unanswered; another leaves
        assert await w(page, "network").is_hidden()  # one silent ping is not yet a lost link
        await ping_period()  # the second is unanswered too
        await w(page, "network").filter(has_text="Connexion perdue").wait_for(timeout=1000)
        await page.clock.resume()
        # the widget connects again at once (a new link works) and resends what was not acknowledged
        await agent.recv("msg", session=sid, text="Vous m'entendez ?", timeout=10)
        await w(page, "network").wait_for(state="hidden")
        await w(page, "message", data_from="visitor").filter(has_text="m'entendez").filter(has_text="envoyé").wait_for()
        await agent.no_frame("msg", within=1.0, text="Vous m'entendez ?")
    finally:
        await context.close()
        listener.close()
        for writer in proxy.frozen:
            writer.close()


# ---- languages ------------------------------------------------------------------------------

async def test_spanish_from_the_browser_then_every_language_from_the_picker(browser: Any, server: Chatd,
                                                                           redis_server: Any) -> None:
    agent = await make_agent(server, redis_server.url, langs=("es",))
    context = await browser.new_context(locale="es-ES")
    page = await context.new_page()
    problems: list[str] = []  # a text missing in a language is said on the console
    page.on("console", lambda m: problems.append(m.text) if m.text.startswith("chatd:") else None)
    sent: list[dict[str, Any]] = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda data: sent.append(json.loads(data))))
    await page.goto(server.http + "/")
    await w(page, "launcher").filter(has_text="Chatear con un gendarme").click()
    await w(page, "notice").filter(has_text="Este chat no es un número de emergencia").wait_for()
    await w(page, "topic", data_topic="scam").filter(has_text="Estafa, fraude en internet").click()
    await page.get_by_text("Describa su consulta").wait_for()
    await w(page, "input").fill("Me han estafado")
    await w(page, "send").click()
    await w(page, "status").filter(has_text="Espera estimada").wait_for()
    assert [f["lang"] for f in sent if f["type"] in ("hello", "start")] == ["es", "es"]
    offer = await agent.recv("offer", timeout=10)
    assert offer["lang"] == "es"  # what the server matched on
    await agent.send({"type": "accept", "session": offer["session"]})
    await w(page, "status").filter(has_text="le responde.").wait_for()
    await agent.send({"type": "close", "session": offer["session"], "disposition": "answered"})
    await w(page, "status").filter(has_text="La conversación ha terminado.").wait_for()
    await page.get_by_text("Su opinión sobre esta conversación").wait_for()
    await page.get_by_role("button", name="Descargar la conversación").wait_for()

    expected = {  # what each language says in the same places
        "de": ("Schnell verlassen", "Das Gespräch ist beendet.", "Gespräch herunterladen", "Betrug, Internetbetrug"),
        "it": ("Uscita rapida", "La conversazione è terminata.", "Scarica la conversazione", "Truffa, frode online"),
        "fr-falc": ("Partir vite", "La conversation est finie.", "Enregistrer la conversation",
                    "Une arnaque, sur Internet ou ailleurs"),
        "en": ("Quick exit", "The conversation has ended.", "Download the conversation", "Scams and cybercrime"),
        "fr": ("Quitter rapidement", "La conversation est terminée.", "Télécharger la conversation",
               "Escroquerie, arnaque en ligne"),
    }
    for code, (exit_text, closed, download, scam) in expected.items():
        await w(page, "lang").click()
        await w(page, "lang-option", data_lang=code).click()
        await w(page, "quick-exit").filter(has_text=exit_text).wait_for()
        await w(page, "status").filter(has_text=closed).wait_for()
        await page.get_by_role("button", name=download).wait_for()
        assert await w(page, "lang-option", data_lang=code).get_attribute("aria-pressed") == "true"
        assert await w(page, "panel").get_attribute("lang") == ("fr" if code == "fr-falc" else code)
        assert await w(page, "topic", data_topic="scam").inner_text() == scam
    # the choice holds for the tab, and the next connection says it
    await w(page, "lang").click()
    await w(page, "lang-option", data_lang="fr-falc").click()
    hellos = len([f for f in sent if f["type"] == "hello"])
    await page.reload()  # the tab still holds the (closed) chat: the panel opens again
    await w(page, "panel").filter(has_text="Tchat de la gendarmerie").wait_for()
    await w(page, "status").filter(has_text="La conversation est finie.").wait_for()
    assert [f for f in sent if f["type"] == "hello"][hellos:][-1]["lang"] == "fr-falc"
    assert problems == []
    await context.close()


# ---- when nobody can answer now: answers later, with the server's side --------------------------

async def test_nobody_available_then_an_answer_later_read_on_another_device(
        browser: Any, server: Chatd, redis_server: Any) -> None:
    page = await open_widget(browser, server, width=375, height=700)
    await w(page, "launcher").click()
    await w(page, "topic", data_topic="scam").click()
    await w(page, "input").fill("On a utilisé ma carte bancaire sur internet")
    await w(page, "send").click()
    # nobody signed in: said plainly, other ways to get help, and the answer-later path
    card = w(page, "unavailable")
    await card.wait_for()
    assert "17" in await card.inner_text()
    # shared answers about the topic and the words written, while waiting
    await w(page, "suggestions").filter(has_text="Perceval").wait_for()
    await page.screenshot(path=str(ARTIFACTS / "widget-375-nobody-available.png"), full_page=True)
    await w(page, "leave").click()
    code_el = w(page, "code")
    await code_el.wait_for()
    code = (await code_el.inner_text()).strip()
    assert len(code.replace("-", "")) == 12
    await page.screenshot(path=str(ARTIFACTS / "widget-375-left-code.png"))
    await page.context.close()
    # a gendarme comes on duty and answers the question left for later
    agent = await make_agent(server, redis_server.url)
    offer = await agent.recv("offer", timeout=10)
    assert offer["async"] is True
    await agent.send({"type": "accept", "session": offer["session"]})
    await agent.recv("assigned", session=offer["session"])
    await agent.send({"type": "send", "session": offer["session"], "cid": "r1",
                      "text": "Faites opposition auprès de votre banque dès maintenant."})
    await agent.recv("ack", cid="r1")
    # another device, the code typed from paper
    other = await open_widget(browser, server, width=375, height=700)
    await w(other, "launcher").click()
    await other.get_by_role("button", name="J'ai un code").click()
    await w(other, "code-input").fill(code.lower().replace("-", " "))
    await other.get_by_role("button", name="Revenir à ma conversation").click()
    thread = w(other, "conversation")
    await thread.filter(has_text="Faites opposition auprès de votre banque").wait_for()
    assert "On a utilisé ma carte bancaire sur internet" in await thread.inner_text()
    await other.screenshot(path=str(ARTIFACTS / "widget-375-back-with-code.png"))
    assert not other.errors  # type: ignore[attr-defined]
    await other.context.close()


async def test_accessibility_when_nobody_can_answer_and_after_leaving(browser: Any, server: Chatd) -> None:
    """axe-core on the states the answer-later path adds: nobody available (other ways to get
    help, suggestions) and the code shown once."""
    axe = ROOT / "node_modules" / "axe-core" / "axe.min.js"
    page = await open_widget(browser, server, width=375, height=700, bypass_csp=True)
    await page.add_script_tag(path=str(axe))
    found: dict[str, list[Any]] = {}
    await w(page, "launcher").click()
    await w(page, "topic", data_topic="theft").click()
    await w(page, "input").fill("Ma maison a été cambriolée cette nuit")
    await w(page, "send").click()
    await w(page, "unavailable").wait_for()
    await w(page, "suggestions").filter(has_text="Après un cambriolage").wait_for()
    await w(page, "suggestions").locator("summary").first.click()  # one answer opened
    found["nobody available, suggestions"] = await axe_serious(page)
    await w(page, "leave").click()
    await w(page, "code").wait_for()
    found["code shown"] = await axe_serious(page)
    assert {state: v for state, v in found.items() if v} == {}

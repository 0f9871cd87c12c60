"""The agent console as gendarmes use it in the field: phones and tablets, large text and zoom,
reconnects that keep availability. A real headless Chromium against real chatd processes and
Redis, real citizens on the other side (the protocol test client)."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import create_account, make_agent, make_visitor, start_chat
from harness import Chatd, Client
from test_console import (ARTIFACTS, AXE, accept_in_console, axe_serious, c, console_agent,
                          open_console, session_field, sign_in, wait_status)

pytestmark = [pytest.mark.asyncio, pytest.mark.browser]

BOX = "(sel) => { const e = document.querySelector(sel); if (!e) return null; " \
      "const r = e.getBoundingClientRect(); " \
      "return r.width && r.height ? {x: r.x, y: r.y, w: r.width, h: r.height} : null; }"


async def box(page: Any, sel: str) -> dict[str, float] | None:
    return await page.evaluate(BOX, sel)


async def no_sideways_scroll(page: Any) -> None:
    wide = await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert wide[0] <= wide[1], f"the page scrolls sideways: {wide}"


async def three_chats(browser: Any, server: Chatd, redis_url: str) -> tuple[Any, list[str]]:
    page, _ = await console_agent(browser, server, redis_url, capacity=4)
    sids = []
    for topic, text in (("scam", "Un faux conseiller bancaire m'a appelé"),
                        ("theft", "On a volé mon vélo cette nuit"),
                        ("road", "Puis-je rouler avec un permis étranger ?")):
        v = await make_visitor(server)
        sid = await start_chat(v, topic, text)
        await accept_in_console(page, sid)
        sids.append(sid)
    return page, sids


async def test_the_console_fits_phones_tablets_and_desktops(browser: Any, server: Chatd,
                                                          redis_server: Any) -> None:
    """With three chats open: at 1280 px the list, the chat and the tools stand side by side
    on a header of one row; at 768 and 375 px the open chat's messages get most of the height,
    the list and the tools are drawers, and nothing scrolls sideways."""
    page, sids = await three_chats(browser, server, redis_server.url)
    ARTIFACTS.mkdir(exist_ok=True)
    await page.set_viewport_size({"width": 1280, "height": 800})
    await no_sideways_scroll(page)
    left, chat, right = [await box(page, s) for s in ("#list-panel", "#chat", "#tools-panel")]
    assert left and chat and right
    assert left["x"] + left["w"] <= chat["x"] + 1 and chat["x"] + chat["w"] <= right["x"] + 1
    top = await box(page, ".top")
    signout = await box(page, "#signout")
    assert top and signout and top["h"] < 60, top  # « Se déconnecter » does not wrap
    assert signout["h"] < 45
    await page.screenshot(path=str(ARTIFACTS / "console-1280.png"))

    for width, height in ((768, 1024), (375, 667)):
        await page.set_viewport_size({"width": width, "height": height})
        await page.screenshot(path=str(ARTIFACTS / f"console-{width}.png"))
        await no_sideways_scroll(page)
        messages = await box(page, "#messages")
        assert messages and messages["h"] >= 0.5 * height, (width, messages)
        assert await box(page, "#list-panel") is None  # a drawer, closed
        assert await box(page, "#tools-panel") is None
        composer = await box(page, "#input")
        assert composer and composer["y"] + composer["h"] <= height  # reachable without scrolling
        # the list drawer: open it, pick the first chat, and it gets out of the way
        await page.locator("#open-list").click()
        drawer = await box(page, "#list-panel")
        assert drawer and drawer["x"] >= 0 and drawer["x"] + drawer["w"] <= width
        await page.screenshot(path=str(ARTIFACTS / f"console-{width}-list.png"))
        await c(page, "chat", data_session=sids[0]).click()
        assert await box(page, "#list-panel") is None
        assert sids[0] == await page.locator("#chatlist li.current").get_attribute("data-session")
        # the tools drawer: a canned answer goes into the reply, the drawer closes
        await page.locator("#open-tools").click()
        assert await box(page, "#tools-panel")
        await c(page, "canned").first.locator("button").first.click()
        assert await box(page, "#tools-panel") is None
        assert await c(page, "input").input_value() != ""
        await c(page, "input").fill("")
    # 200 % zoom of a 1280×900 window: the same as a 640×450 one, CSS pixels twice as large
    await page.set_viewport_size({"width": 640, "height": 450})
    await no_sideways_scroll(page)
    messages, composer = await box(page, "#messages"), await box(page, "#input")
    assert messages and messages["h"] >= 0.3 * 450, messages
    assert composer and composer["y"] + composer["h"] <= 450
    await page.screenshot(path=str(ARTIFACTS / "console-zoom-200.png"))
    # a 32 px browser font (sizes are in rem): the narrow layout takes over, still usable
    await page.set_viewport_size({"width": 1280, "height": 900})
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("Page.setFontSizes", {"fontSizes": {"standard": 32}})
    await page.wait_for_function("parseFloat(getComputedStyle(document.documentElement).fontSize) > 25")
    await no_sideways_scroll(page)
    messages, composer = await box(page, "#messages"), await box(page, "#input")
    assert messages and messages["h"] >= 0.3 * 900, messages
    assert composer and composer["y"] + composer["h"] <= 900
    await page.screenshot(path=str(ARTIFACTS / "console-font-32.png"))
    assert page.errors == []


async def test_availability_comes_back_after_a_server_restart(browser: Any, chatd_factory: Any,
                                                              redis_server: Any) -> None:
    """An available gendarme whose server restarts is available again once reconnected (offers
    reach them), and the banner says loudly when the connection is lost."""
    server = await chatd_factory()
    page, login = await console_agent(browser, server, redis_server.url)
    status = c(page, "status")
    await page.locator("[data-chatd=status][data-availability=available]").wait_for()
    await server.kill()
    await page.locator("[data-chatd=status][data-state=offline]").wait_for()
    assert "Connexion perdue" in await status.inner_text()
    again = Chatd(redis_url=redis_server.url, prefix=server.prefix, port=server.port, env=server.env)
    await again.start()
    try:
        await page.locator("[data-chatd=status][data-state=online][data-availability=available]").wait_for(timeout=20000)
        await wait_status(again, redis_server.url, login, "available")
        assert await c(page, "availability").input_value() == "available"
        v = await make_visitor(again)
        sid = await start_chat(v, "general", "Bonjour, après la coupure")
        await accept_in_console(page, sid)  # offers reach the console again
        assert page.errors == []
    finally:
        await again.stop()


async def test_an_unconfirmed_availability_is_said_loudly_with_the_way_back(
        browser: Any, server: Chatd, redis_server: Any) -> None:
    """The gendarme chooses « Disponible » and the server never confirms it (the frame is lost
    on the way): after a few seconds the banner says they receive no offers and offers a button
    that makes them available for real."""
    page, login = await console_agent(browser, server, redis_server.url, available=False)
    lose = {"status": True}

    async def relay(ws: Any) -> None:
        upstream = ws.connect_to_server()

        def outgoing(message: str | bytes) -> None:
            if lose["status"] and isinstance(message, str) and '"status"' in message:
                return  # lost on the way
            upstream.send(message)
        ws.on_message(outgoing)

    await page.route_web_socket("**/ws/agent", relay)
    await page.reload()
    await page.locator("[data-chatd=status][data-state=online]").wait_for()
    await c(page, "availability").select_option("available")
    refused = page.locator("[data-chatd=status][data-availability=refused]")
    await refused.wait_for(timeout=10000)
    assert "Aucune demande" in await refused.inner_text()
    await wait_status(server, redis_server.url, login, "away")
    lose["status"] = False
    await refused.get_by_role("button", name="Redevenir disponible").click()
    await page.locator("[data-chatd=status][data-availability=available]").wait_for()
    await wait_status(server, redis_server.url, login, "available")
    assert page.errors == []


async def test_small_things_seen_at_start_up(browser: Any, server: Chatd,
                                            redis_server: Any) -> None:
    """No red « Demandes 0 » badge; the sound being off (and offers lasting 30 s) is said at
    sign-in, once; one banner tells connection and availability together."""
    page, _ = await console_agent(browser, server, redis_server.url, available=False)
    badge = await page.evaluate("getComputedStyle(document.getElementById('offers-count')).backgroundColor")
    assert badge != "rgb(179, 38, 30)", badge  # not the alarm red when there is nothing
    hint = page.locator("#sound-hint")
    assert "30 s" in await hint.inner_text()
    await hint.get_by_role("button", name="Compris").click()
    assert await hint.is_hidden()
    status = c(page, "status")
    assert "absent·e : aucune demande" in (await status.inner_text()).lower()
    await page.reload()
    await page.locator("[data-chatd=status][data-state=online]").wait_for()
    assert await hint.is_hidden()  # said once
    assert page.errors == []


async def test_transfer_preselects_nothing_names_the_colleague_and_carries_a_note(
        browser: Any, server: Chatd, redis_server: Any) -> None:
    page_a, _ = await console_agent(browser, server, redis_server.url, name="Gendarme Martin")
    page_b, login_b = await console_agent(browser, server, redis_server.url, available=False,
                                          name="Gendarme Durand")
    v = await make_visitor(server)
    sid = await start_chat(v, "scam", "Un faux conseiller bancaire m'a appelé")
    await accept_in_console(page_a, sid)
    await c(page_a, "transfer").click()
    await page_a.locator("#transfer-dialog[open]").wait_for()
    # the colleagues are there as soon as the dialog is, by name, and nothing is chosen
    option = page_a.locator(f"#transfer-target option[value='agent:{login_b}']")
    assert await option.count() == 1
    assert "Gendarme Durand" in await option.inner_text() and login_b not in await option.inner_text()
    assert await c(page_a, "transfer-target").input_value() == ""
    await c(page_a, "transfer-confirm").click()  # nothing chosen: the dialog stays
    assert await page_a.locator("#transfer-dialog[open]").count() == 1
    await c(page_a, "transfer-target").select_option(f"agent:{login_b}")
    await c(page_a, "transfer-note").fill("Victime d'un faux conseiller, a donné ses codes à 14 h")
    await c(page_a, "transfer-confirm").click()
    offer = c(page_b, "offer", data_session=sid)
    await offer.wait_for()
    text = await offer.inner_text()
    assert "Transfert de Gendarme Martin" in text and "a donné ses codes à 14 h" in text
    await offer.locator("[data-chatd=accept]").click()
    await c(page_b, "chat", data_session=sid).wait_for()
    note = c(page_b, "note").filter(has_text="a donné ses codes")
    await note.wait_for()
    assert "Gendarme Martin" in await note.inner_text()
    # the close dialog: no outcome chosen for you, and the main action looks like one
    await c(page_b, "close").click()
    await page_b.locator("#close-dialog[open]").wait_for()
    assert await c(page_b, "disposition").input_value() == ""
    colours = await page_b.evaluate("""[...document.querySelectorAll('#close-dialog menu button')]
        .map(b => [b.textContent.trim(), getComputedStyle(b).backgroundColor])""")
    assert dict(colours)["Annuler"] == "rgb(255, 255, 255)"
    assert dict(colours)["Clôturer"] != "rgb(255, 255, 255)"
    await c(page_b, "close-confirm").click()
    assert await page_b.locator("#close-dialog[open]").count() == 1  # an outcome is required
    await c(page_b, "disposition").select_option("answered")
    await c(page_b, "close-confirm").click()
    await v.recv("closed", session=sid)
    assert page_a.errors == [] and page_b.errors == []


async def test_an_outcome_is_recorded_after_a_quick_exit_and_an_abuser_is_blocked(
        browser: Any, server: Chatd, redis_server: Any) -> None:
    """On a phone (375 px), as gendarmes in the field use it."""
    page, _ = await console_agent(browser, server, redis_server.url)
    await page.set_viewport_size({"width": 375, "height": 667})
    v = await make_visitor(server)
    sid = await start_chat(v, "general", "Bonjour")
    await accept_in_console(page, sid)
    await v.recv("assigned", session=sid)
    await v.send({"type": "close", "session": sid, "reason": "quick_exit"})
    await page.locator("#closed-banner").filter(has_text="sortie rapide").wait_for()
    await c(page, "close").filter(has_text="Indiquer l'issue").click()
    await c(page, "disposition").select_option("no_reply")
    await c(page, "close-confirm").click()
    await page.locator("#toast").filter(has_text="Issue enregistrée").wait_for()
    assert await session_field(server, redis_server.url, sid, "disposition") == "no_reply"
    await c(page, "close").wait_for(state="hidden")  # recorded once

    v2 = await make_visitor(server)
    sid2 = await start_chat(v2, "general", "Espèce de …")
    await accept_in_console(page, sid2)
    await c(page, "block").click()
    await c(page, "block-confirm").click()  # no reason, not confirmed: nothing happens
    assert await page.locator("#block-dialog[open]").count() == 1
    await c(page, "block-reason").fill("Insultes répétées")
    await c(page, "block-hours").select_option("72")
    await c(page, "block-sure").check()
    await no_sideways_scroll(page)
    await page.screenshot(path=str(ARTIFACTS / "console-375-block.png"))
    await c(page, "block-confirm").click()
    assert (await v2.recv("closed", session=sid2))["by"] == "agent"
    await page.locator("#toast").filter(has_text="bloquée pour 72 h").wait_for()
    again = await Client.connect(server.ws, "visitor")
    await again.send({"type": "hello", "token": v2.token})
    assert (await again.recv("error"))["code"] == "forbidden"
    assert page.errors == []


async def test_the_gendarme_sees_whether_the_person_is_still_there(
        browser: Any, server: Chatd, redis_server: Any) -> None:
    page, _ = await console_agent(browser, server, redis_server.url)
    v = await make_visitor(server)
    sid = await start_chat(v, "theft", "On a forcé ma porte")
    await accept_in_console(page, sid)
    presence = c(page, "presence")
    await presence.filter(has_text="connectée").wait_for()
    await v.send({"type": "typing", "session": sid, "on": True})
    await page.locator("[data-chatd=presence][data-state=typing]").filter(has_text="écrit").wait_for()
    await v.send({"type": "typing", "session": sid, "on": False})
    await v.close()  # the tab is closed
    await page.locator("[data-chatd=presence][data-state=gone]").filter(has_text="déconnectée depuis").wait_for()
    assert "déconnectée" in await c(page, "chat", data_session=sid).inner_text()  # in the list too
    back = await make_visitor(server, token=v.token, resume={"session": sid, "after": 0})
    await page.locator("[data-chatd=presence][data-state=connected]").wait_for()
    await back.close()
    assert page.errors == []


async def test_a_question_left_for_later_is_taken_from_the_list_and_answered(
        browser: Any, server: Chatd, redis_server: Any) -> None:
    """Nobody was there: the person left the question with a code. A gendarme finds it in
    « À traiter » (topic, age), takes it, answers; the person comes back with the code and
    reads the answer."""
    page, _ = await console_agent(browser, server, redis_server.url, available=False)
    v = await make_visitor(server)
    sid = await start_chat(v, "road", "Mon permis étranger est-il valable en France ?")
    await v.send({"type": "leave", "session": sid})
    code = (await v.recv("left", session=sid))["code"]
    await v.close()
    item = c(page, "async", data_session=sid)
    await page.locator("#async-list").wait_for(state="attached")
    await page.reload()  # read when the console connects (and every 15 s)
    await item.wait_for()
    text = await item.inner_text()
    assert "Sécurité routière" in text and "laissée il y a" in text and "permis étranger" in text
    await item.locator("[data-chatd=take]").click()
    await c(page, "chat", data_session=sid).wait_for()  # offered as async, accepted at once
    await item.wait_for(state="detached")
    await c(page, "input").fill("Oui, pendant un an après votre installation.")
    await c(page, "send").click()
    await c(page, "message", data_from="agent").filter(has_text="pendant un an").wait_for()
    await c(page, "message", data_from="agent").filter(has_text="en attente").wait_for(state="detached")
    back = await Client.connect(server.ws, "visitor")
    await back.send({"type": "hello", "code": code})
    assert [s["session"] for s in (await back.recv("welcome"))["sessions"]] == [sid]
    await back.recv("msg", session=sid, text="Oui, pendant un an après votre installation.")
    await back.close()
    assert page.errors == []


async def test_a_supervisor_follows_a_chat_live_takes_it_over_and_reassigns_another(
        browser: Any, server: Chatd, redis_server: Any) -> None:
    holder = await make_agent(server, redis_server.url, capacity=3)
    colleague = await make_agent(server, redis_server.url, available=False)
    await create_account(server, redis_server.url, name="Gendarme Absent")  # never signs in
    chats = []
    for text in ("On me harcèle au téléphone", "Une question sur une amende"):
        v = await make_visitor(server)
        sid = await start_chat(v, "general", text)
        await holder.send({"type": "accept", "session": (await holder.recv("offer", session=sid))["session"]})
        await holder.recv("assigned", session=sid)
        chats.append((v, sid))
    page, sup = await console_agent(browser, server, redis_server.url, available=False,
                                    role="supervisor", name="Major Leroy")
    await page.get_by_role("button", name="Supervision").click()
    absent = page.locator("#sv-agents tr[data-status=offline]").filter(has_text="Gendarme Absent")
    await absent.wait_for(timeout=6000)
    assert "hors ligne" in await absent.inner_text() and "0 / 0" not in await absent.inner_text()
    (v1, s1), (v2, s2) = chats
    await page.locator(f"#sv-open tr[data-session='{s1}']").get_by_role("button", name="Lire").click()
    thread = c(page, "sv-thread")
    await thread.get_by_text("On me harcèle").wait_for()
    await v1.send({"type": "send", "session": s1, "cid": "v2", "text": "Il rappelle encore"})
    await thread.get_by_text("Il rappelle encore").wait_for(timeout=8000)  # live
    await page.set_viewport_size({"width": 768, "height": 1024})
    await no_sideways_scroll(page)
    await page.screenshot(path=str(ARTIFACTS / "console-supervision-768.png"))
    await page.set_viewport_size({"width": 1280, "height": 800})
    await no_sideways_scroll(page)
    await page.screenshot(path=str(ARTIFACTS / "console-supervision-1280.png"))
    # take it over: the gendarme is told, the person sees the supervisor's name
    page.once("dialog", lambda d: d.accept())
    await c(page, "take-over").click()
    assert (await holder.recv("released", session=s1))["reason"] == "taken_over"
    await v1.recv("assigned", session=s1, agent_name="Major Leroy")
    await c(page, "chat", data_session=s1).wait_for()
    await c(page, "message").filter(has_text="Il rappelle encore").wait_for()
    await c(page, "input").fill("Je prends le relais, notez les heures des appels.")
    await c(page, "send").click()
    await v1.recv("msg", session=s1, text="Je prends le relais, notez les heures des appels.")
    # reassign the other one to a colleague, with a note
    await page.get_by_role("button", name="Supervision").click()
    await page.locator(f"#sv-open tr[data-session='{s2}']").get_by_role("button", name="Lire").click()
    await thread.get_by_text("une amende").wait_for()
    await c(page, "reassign").click()
    await c(page, "reassign-target").select_option(f"agent:{colleague.login}")
    await c(page, "reassign-note").fill("Amende majorée, voir avec lui")
    await c(page, "reassign-confirm").click()
    assert (await holder.recv("released", session=s2))["reason"] == "reassigned"
    offer = await colleague.recv("offer", session=s2)
    assert (offer["from_agent_name"], offer["note"]) == ("Major Leroy", "Amende majorée, voir avec lui")
    entries = await page.evaluate("fetch('/api/audit').then(r => r.json())")
    mine = sorted((e["session"], e["how"]) for e in entries["entries"] if e["who"] == sup)
    assert ((s1, "take_over") in mine and (s2, "reassign") in mine
            and mine.count((s1, "transcript")) == 1), mine  # polled live, audited once
    assert page.errors == []


async def test_no_serious_accessibility_problem_on_a_phone_or_in_supervision(
        browser: Any, server: Chatd, redis_server: Any) -> None:
    """axe-core on the phone layout (a chat open, then the list drawer open) and on the
    supervision view at 768 px with a live reading open; the page has its <main> and <h1>."""
    assert AXE.exists(), "axe-core is needed: ./scripts/test installs it from npm"
    login = await create_account(server, redis_server.url, role="supervisor", name="Major Leroy")
    page = await open_console(browser, server, width=375, height=667, bypass_csp=True)
    await sign_in(page, login)
    await c(page, "availability").select_option("available")
    await wait_status(server, redis_server.url, login, "available")
    v = await make_visitor(server)
    sid = await start_chat(v, "scam", "Bonjour, une question")
    await accept_in_console(page, sid)
    assert await page.locator("main:visible h1, main:visible ~ * h1, header h1").count() >= 1
    assert await page.locator("main:visible").count() == 1
    assert await axe_serious(page) == []
    await page.locator("#open-list").click()
    assert await axe_serious(page) == []
    await page.keyboard.press("Escape")
    await page.set_viewport_size({"width": 768, "height": 1024})
    await page.get_by_role("button", name="Supervision").click()
    await page.locator(f"#sv-open tr[data-session='{sid}']").get_by_role("button", name="Lire").click()
    await c(page, "sv-thread").get_by_text("une question").wait_for()
    assert await axe_serious(page) == []
    assert page.errors == []

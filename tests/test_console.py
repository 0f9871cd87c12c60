"""The agent console in a real headless Chromium, against real chatd processes and Redis, with
real citizens on the other side (the protocol test client)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from chatd.auth import Auth
from chatd.config import Settings
from chatd.store import open_store

from conftest import PASSWORD, create_account, make_agent, make_visitor, start_chat
from harness import ROOT, Chatd, eventually

pytestmark = [pytest.mark.asyncio, pytest.mark.browser]

ARTIFACTS = ROOT / "test-artifacts"
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"


async def open_console(browser: Any, server: Chatd, width: int = 1400, height: int = 900,
                       bypass_csp: bool = False) -> Any:
    context = await browser.new_context(viewport={"width": width, "height": height},
                                        locale="fr-FR", bypass_csp=bypass_csp)
    page = await context.new_page()
    page.errors = []  # type: ignore[attr-defined]
    page.on("pageerror", lambda e: page.errors.append(str(e)))  # type: ignore[attr-defined]
    page.on("console", lambda m: page.errors.append(m.text)  # type: ignore[attr-defined]
            if "Content Security Policy" in m.text else None)
    await page.goto(server.http + "/console/")
    return page


async def axe_serious(page: Any) -> list[Any]:
    """axe-core's serious and critical violations on the page as it is (injected once)."""
    if not await page.evaluate("typeof axe !== 'undefined'"):
        await page.add_script_tag(path=str(AXE))
    result = await page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
            for v in result["violations"] if v["impact"] in ("serious", "critical")]


def c(page: Any, name: str, **attrs: str) -> Any:
    """A working part of the console by its data-chatd name."""
    sel = f"[data-chatd={name}]" + "".join(f"[{k.replace('_', '-')}='{v}']" for k, v in attrs.items())
    return page.locator(sel)


async def sign_in(page: Any, login: str, password: str = PASSWORD) -> None:
    await c(page, "login").fill(login)
    await c(page, "password").fill(password)
    await c(page, "submit").click()
    await page.locator("#link[data-state=online]").wait_for()


async def console_agent(browser: Any, server: Chatd, redis_url: str, available: bool = True,
                        **kw: Any) -> tuple[Any, str]:
    login = await create_account(server, redis_url, **kw)
    page = await open_console(browser, server)
    await sign_in(page, login)
    if available:
        await c(page, "availability").select_option("available")
        await wait_status(server, redis_url, login, "available")
    return page, login


async def wait_status(server: Chatd, redis_url: str, login: str, status: str) -> None:
    store = open_store(redis_url, Settings(key_prefix=server.prefix))
    try:
        async def reached() -> bool:
            return (await store.agent_states([login]))[0][0] == status
        if not await eventually(reached, 5):
            raise AssertionError(f"{login} never became {status}")
    finally:
        await store.aclose()


async def accept_in_console(page: Any, sid: str) -> None:
    await c(page, "offer", data_session=sid).wait_for()
    await c(page, "offer", data_session=sid).locator("[data-chatd=accept]").click()
    await c(page, "chat", data_session=sid).wait_for(state="attached")  # in a drawer on phones


async def reply(page: Any, sid: str, text: str) -> None:
    await c(page, "chat", data_session=sid).click()
    await c(page, "input").fill(text)
    await c(page, "send").click()


async def route_field(server: Chatd, redis_url: str, sid: str, name: str) -> str | None:
    """A field of a chat's routing record (where it stands: queued, offered to whom…)."""
    store = open_store(redis_url, Settings(key_prefix=server.prefix))
    try:
        route = (await store.routes([sid]))[0]
        return None if route is None else route.get(name)
    finally:
        await store.aclose()


async def session_field(server: Chatd, redis_url: str, sid: str, name: str) -> str | None:
    store = open_store(redis_url, Settings(key_prefix=server.prefix))
    try:
        return (await store.session(sid)).get(name)
    finally:
        await store.aclose()


async def test_sign_in_bad_password_sign_out_and_expiry(browser: Any, server: Chatd,
                                                        redis_server: Any) -> None:
    login = await create_account(server, redis_server.url, name="Adjudant Martin")
    page = await open_console(browser, server)
    assert await page.locator("#signin-info").is_hidden()  # a first visit is not an "expiry"
    await c(page, "login").fill(login)
    await c(page, "password").fill("not the password")
    await c(page, "submit").click()
    await page.get_by_text("Identifiant ou mot de passe incorrect").wait_for()
    assert await page.locator("#app").is_hidden()
    await sign_in(page, login)
    await page.get_by_text("Adjudant Martin").wait_for()
    assert await c(page, "availability").input_value() == "away"  # agents start away
    await page.reload()  # the HttpOnly cookie keeps the agent signed in
    await page.locator("#link[data-state=online]").wait_for()
    assert await page.evaluate("document.cookie") == ""  # not readable by scripts
    await page.get_by_role("button", name="Se déconnecter").click()
    await c(page, "login").wait_for()
    await page.reload()
    await c(page, "login").wait_for()  # signed out for good
    # an account disabled (or signed out elsewhere) ends the console's session at once
    await sign_in(page, login)
    store = open_store(redis_server.url, Settings(key_prefix=server.prefix))
    await Auth(store, "x", 3600).revoke_all(login)
    await store.aclose()
    await page.get_by_text("Votre session a expiré").wait_for()
    assert await c(page, "login").is_visible()
    assert page.errors == []


async def test_offers_accept_decline_and_expiry(browser: Any, chatd_factory: Any,
                                                redis_server: Any) -> None:
    server = await chatd_factory(env={"CHATD_OFFER_TIMEOUT": "3"})
    page, login = await console_agent(browser, server, redis_server.url, capacity=3)
    v1 = await make_visitor(server)
    s1 = await start_chat(v1, "road", "Combien de points me reste-t-il ?")
    offer = c(page, "offer", data_session=s1)
    await offer.wait_for()
    assert "Sécurité routière" in await offer.inner_text()
    assert "s pour accepter" in await offer.inner_text()
    await offer.locator("[data-chatd=decline]").click()
    await offer.wait_for(state="detached")
    assert f" {login}=" in (await route_field(server, redis_server.url, s1, "declined") or "")
    # an offer left alone expires, disappears and the citizen goes back to the queue
    v2 = await make_visitor(server)
    s2 = await start_chat(v2, "theft", "On a cambriolé ma maison")
    await c(page, "offer", data_session=s2).wait_for()
    await c(page, "offer", data_session=s2).wait_for(state="detached", timeout=8000)
    await page.get_by_text("Une demande a expiré").wait_for()
    # it comes back (the agent is still available); Alt+A accepts the oldest offer
    await c(page, "offer", data_session=s2).wait_for(timeout=8000)
    await page.keyboard.press("Alt+a")
    await c(page, "chat", data_session=s2).wait_for()
    await c(page, "message", data_from="visitor").filter(has_text="cambriolé").wait_for()
    await v2.recv("assigned", session=s2)
    assert page.errors == []


async def test_two_chats_at_once_without_cross_talk(browser: Any, server: Chatd,
                                                    redis_server: Any) -> None:
    page, login = await console_agent(browser, server, redis_server.url, capacity=3)
    va, vb = await make_visitor(server), await make_visitor(server)
    sa = await start_chat(va, "scam", "J'ai reçu un SMS bizarre")
    await accept_in_console(page, sa)
    sb = await start_chat(vb, "theft", "On m'a volé mon vélo")
    await accept_in_console(page, sb)
    await va.recv("assigned"), await vb.recv("assigned")
    badges = [await c(page, "chat", data_session=s).locator(".badge").inner_text() for s in (sa, sb)]
    assert badges[0] != badges[1]  # each chat has its own letter
    await reply(page, sa, "Ne cliquez pas sur le lien du SMS.")
    await va.recv("msg", session=sa, text="Ne cliquez pas sur le lien du SMS.")
    await reply(page, sb, "Avez-vous le numéro de série du vélo ?")
    await vb.recv("msg", session=sb, text="Avez-vous le numéro de série du vélo ?")
    await va.no_frame("msg", within=1.0, text="Avez-vous le numéro de série du vélo ?")
    await vb.no_frame("msg", within=0.2, text="Ne cliquez pas sur le lien du SMS.")
    # chat B is open; a message for A counts as unread on A and is not shown in B
    await va.send({"type": "send", "session": sa, "cid": "v1", "text": "D'accord merci"})
    await c(page, "chat", data_session=sa).locator(".unread").filter(has_text="1 non lu").wait_for()
    assert await c(page, "message").filter(has_text="D'accord merci").count() == 0
    # the reply box is bound to the chat shown, and says which one
    label = await page.locator("#reply-label").inner_text()
    assert badges[1] in label
    # a draft stays with its chat
    await c(page, "input").fill("brouillon pour B")
    await c(page, "chat", data_session=sa).click()
    assert await c(page, "input").input_value() == ""
    await c(page, "message").filter(has_text="D'accord merci").wait_for()
    await c(page, "chat", data_session=sb).click()
    assert await c(page, "input").input_value() == "brouillon pour B"
    # the citizen sees "read" once the agent has the chat open; the agent sees typing and reads
    await c(page, "chat", data_session=sa).click()
    await va.recv("read", session=sa)
    await va.send({"type": "typing", "session": sa, "on": True})
    await page.get_by_text("La personne écrit").wait_for()
    await va.send({"type": "read", "session": sa, "seq": 3})
    await c(page, "message", data_from="agent").locator(".meta").filter(has_text=re.compile(r"· lu$")).wait_for()
    # an internal note stays with the agents, shown apart from the conversation
    await page.locator("#note-input").fill("Victime probable d'un smishing")
    await page.get_by_role("button", name="Ajouter la note").click()
    await c(page, "note").filter(has_text="smishing").filter(has_text=login).wait_for()
    assert await c(page, "message").filter(has_text="smishing").count() == 0
    await va.no_frame(within=0.5, text="Victime probable d'un smishing")
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "console-two-chats.png"))
    texts_a = [f["text"] for f in va.frames if f.get("type") == "msg"]
    texts_b = [f["text"] for f in vb.frames if f.get("type") == "msg"]
    assert not set(texts_a) & {"Avez-vous le numéro de série du vélo ?"}
    assert not set(texts_b) & {"Ne cliquez pas sur le lien du SMS.", "D'accord merci"}
    assert page.errors == []


async def test_canned_answers_are_inserted_then_edited(browser: Any, server: Chatd,
                                                       redis_server: Any) -> None:
    page, login = await console_agent(browser, server, redis_server.url)
    v = await make_visitor(server)
    sid = await start_chat(v, "violence", "Mon conjoint me menace")
    await accept_in_console(page, sid)
    await page.keyboard.press("Alt+r")
    await page.locator("#canned-search").fill("3919")
    await c(page, "canned").first.locator("button").first.click()
    inserted = await c(page, "input").input_value()
    assert "3919" in inserted
    await c(page, "input").press("End")
    await c(page, "input").type(" Vous pouvez aussi m'écrire ici.")
    await c(page, "send").click()
    got = await v.recv("msg", session=sid, **{"from": "agent"})
    assert "3919" in got["text"] and got["text"].endswith("Vous pouvez aussi m'écrire ici.")
    # a personal answer, kept on the server for the next shift
    await page.locator("summary").filter(has_text="Ajouter une réponse personnelle").click()
    await page.locator("#canned-new-title").fill("Horaires brigade")
    await page.locator("#canned-new-text").fill("La brigade de Pontivy ouvre à 8 h.")
    await page.get_by_role("button", name="Enregistrer").click()
    await c(page, "canned").filter(has_text="Horaires brigade").wait_for()
    await page.reload()
    await page.locator("#canned-search").fill("pontivy")
    await c(page, "canned").filter(has_text="personnelle").wait_for()
    assert await c(page, "canned").count() == 1
    assert page.errors == []


async def test_transfer_to_a_colleague_and_close_with_a_disposition(
        browser: Any, server: Chatd, redis_server: Any) -> None:
    page_a, login_a = await console_agent(browser, server, redis_server.url)
    page_b, login_b = await console_agent(browser, server, redis_server.url, available=False,
                                          name="Gendarme Durand")
    v = await make_visitor(server)
    sid = await start_chat(v, "scam", "Un faux conseiller bancaire m'a appelé")
    await accept_in_console(page_a, sid)
    await reply(page_a, sid, "A-t-il obtenu vos codes ?")
    await v.recv("msg", session=sid, text="A-t-il obtenu vos codes ?")
    await c(page_a, "transfer").click()
    target = page_a.locator("#transfer-target option[value='agent:" + login_b + "']")
    await target.wait_for(state="attached")
    await page_a.locator("#transfer-target").select_option("agent:" + login_b)
    await c(page_a, "transfer-confirm").click()
    await c(page_a, "chat", data_session=sid).wait_for(state="detached")  # no longer A's
    offer = c(page_b, "offer", data_session=sid)
    await offer.wait_for()
    assert "Transfert de" in await offer.inner_text()
    await offer.locator("[data-chatd=accept]").click()
    await c(page_b, "chat", data_session=sid).wait_for()
    # the colleague has the whole conversation
    await c(page_b, "message").filter(has_text="A-t-il obtenu vos codes ?").wait_for()
    await c(page_b, "message", data_from="visitor").filter(has_text="faux conseiller").wait_for()
    await c(page_b, "close").click()
    await page_b.locator("#disposition").select_option("redirected_pre_plainte")
    await c(page_b, "close-confirm").click()
    closed = await v.recv("closed", session=sid)
    assert closed["by"] == "agent"
    assert await session_field(server, redis_server.url, sid, "disposition") == "redirected_pre_plainte"
    assert await session_field(server, redis_server.url, sid, "agent") == login_b
    await c(page_b, "chat", data_session=sid).filter(has_text="terminée").wait_for()
    assert await c(page_b, "input").is_hidden()  # nothing can be sent to a closed chat
    assert page_a.errors == [] and page_b.errors == []


async def test_supervisor_sees_the_queue_and_agents_live_and_reads_are_audited(
        browser: Any, server: Chatd, redis_server: Any) -> None:
    page, sup = await console_agent(browser, server, redis_server.url, available=False,
                                    role="supervisor", name="Major Leroy")
    await page.get_by_role("button", name="Supervision").click()
    await page.locator("#sv-queues tr[data-topic=road]").filter(has_text="0").wait_for()
    v = await make_visitor(server)
    sid = await start_chat(v, "road", "Puis-je rouler avec un permis étranger ?")
    # nobody is available: the queue shows one waiting, live
    row = page.locator("#sv-queues tr[data-topic=road] td:nth-child(2)")
    await row.filter(has_text="1").wait_for(timeout=6000)
    agent = await make_agent(server, redis_server.url)  # a gendarme comes on shift
    await page.locator(f"#sv-agents tr[data-agent={agent.login}][data-status=available]").wait_for(timeout=6000)
    offer = await agent.recv("offer", session=sid)
    await agent.send({"type": "accept", "session": offer["session"]})
    await agent.recv("assigned", session=sid)
    await row.filter(has_text="0").wait_for(timeout=6000)
    open_row = page.locator(f"#sv-open tr[data-session='{sid}']")
    await open_row.filter(has_text="en cours").wait_for(timeout=6000)
    await open_row.get_by_role("button", name="Lire").click()
    await page.locator("#sv-messages").get_by_text("permis étranger").wait_for()
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "console-supervision.png"))
    async with httpx.AsyncClient(base_url=server.http) as http:
        r = await http.get("/api/audit", params={"session": sid},
                           headers={"Authorization": f"Bearer {agent.token}"})
        assert r.status_code == 403  # the trail is for supervisors
    entries = await page.evaluate(
        "fetch('/api/audit?session=' + encodeURIComponent(%r)).then(r => r.json())" % sid)
    who = sorted((e["who"], e["how"]) for e in entries["entries"])
    assert who == sorted([(agent.login, "assigned"), (sup, "transcript")])
    assert page.errors == []


async def test_an_agent_cannot_open_another_agents_chat(browser: Any, server: Chatd,
                                                        redis_server: Any) -> None:
    other = await make_agent(server, redis_server.url)
    v = await make_visitor(server)
    sid = await start_chat(v, "general", "Bonjour")
    await other.send({"type": "accept", "session": (await other.recv("offer"))["session"]})
    await other.recv("assigned", session=sid)
    page, login = await console_agent(browser, server, redis_server.url, available=False)
    answer = await page.evaluate(
        "fetch('/api/sessions/' + %r).then(async r => [r.status, (await r.json()).error])" % sid)
    assert answer == [404, "not_found"]
    store = open_store(redis_server.url, Settings(key_prefix=server.prefix))
    trail = await store.audit_entries(1000)
    await store.aclose()
    assert not [e for e in trail if e["who"] == login]  # a refused read is not a read
    assert await c(page, "chat").count() == 0


async def test_the_console_survives_its_server_dying(browser: Any, chatd_factory: Any,
                                                     redis_server: Any) -> None:
    server = await chatd_factory()
    visitor_server = await chatd_factory()
    page, login = await console_agent(browser, server, redis_server.url)
    v = await make_visitor(visitor_server)
    sid = await start_chat(v, "theft", "On a forcé ma voiture")
    await accept_in_console(page, sid)
    await v.recv("assigned", session=sid)
    await server.kill()  # the console's server process dies
    await page.locator("#link[data-state=offline]").wait_for()
    for text in ("Où était-elle garée ?", "Avez-vous des photos ?"):
        await c(page, "input").fill(text)
        await c(page, "input").press("Enter")
    await c(page, "message", data_from="agent").filter(has_text="en attente").first.wait_for()
    await v.send({"type": "send", "session": sid, "cid": "v1", "text": "Devant chez moi"})
    await v.recv("ack", cid="v1")
    again = Chatd(redis_url=redis_server.url, prefix=server.prefix, port=server.port, env=server.env)
    await again.start()
    try:
        for text in ("Où était-elle garée ?", "Avez-vous des photos ?"):
            await v.recv("msg", session=sid, text=text, timeout=20)
        await c(page, "message", data_from="visitor").filter(has_text="Devant chez moi").wait_for(timeout=15000)
        await v.no_frame("msg", within=2.0, text="Avez-vous des photos ?")
        texts = [f["text"] for f in v.frames if f.get("type") == "msg"]
        assert texts.count("Où était-elle garée ?") == 1 and texts.count("Avez-vous des photos ?") == 1
        assert await c(page, "message").filter(has_text="Devant chez moi").count() == 1
        assert await c(page, "message").filter(has_text="Avez-vous des photos ?").count() == 1
        await c(page, "message").filter(has_text="en attente").first.wait_for(state="detached")
        assert page.errors == []
    finally:
        await again.stop()


async def test_console_accessibility_and_screenshots(browser: Any, server: Chatd,
                                                     redis_server: Any) -> None:
    assert AXE.exists(), "axe-core is needed: ./scripts/test installs it from npm"
    login = await create_account(server, redis_server.url)
    page = await open_console(browser, server, bypass_csp=True)  # only so that axe can be injected
    ARTIFACTS.mkdir(exist_ok=True)
    await c(page, "login").wait_for()
    await page.screenshot(path=str(ARTIFACTS / "console-sign-in.png"))
    await sign_in(page, login)
    await c(page, "availability").select_option("available")
    await wait_status(server, redis_server.url, login, "available")
    v = await make_visitor(server)
    sid = await start_chat(v, "scam", "Bonjour, une question")
    await accept_in_console(page, sid)
    v2 = await make_visitor(server)
    await start_chat(v2, "general", "Une autre question")
    await c(page, "offer").wait_for()
    assert await axe_serious(page) == []
    await page.screenshot(path=str(ARTIFACTS / "console-offer-and-chat.png"))



async def test_supervision_reports_charts_tables_and_screenshots(browser: Any, server: Chatd,
                                                                 redis_server: Any) -> None:
    """Some chats happen (answered, abandoned); the supervisor's reports show them as charts
    with their tables, at 1280 and 768 px, with no serious accessibility problem."""
    agent = await make_agent(server, redis_server.url, topics=("general",))
    for _ in range(2):
        v = await make_visitor(server)
        sid = await start_chat(v, "general", "Bonjour")
        await agent.recv("offer", session=sid)
        await agent.send({"type": "accept", "session": sid})
        await agent.recv("assigned", session=sid)
        await agent.send({"type": "close", "session": sid, "disposition": "answered"})
        await v.recv("closed", session=sid)
    gone = await make_visitor(server)
    sid = await start_chat(gone, "scam", "Un SMS")
    await gone.send({"type": "close", "session": sid})
    await gone.recv("closed", session=sid)
    login = await create_account(server, redis_server.url, role="supervisor", name="Major Leroy")
    ARTIFACTS.mkdir(exist_ok=True)
    for width in (1280, 768):
        page = await open_console(browser, server, width=width, bypass_csp=True)  # axe is injected
        await sign_in(page, login)
        await page.get_by_role("button", name="Supervision").click()
        reports = c(page, "reports")
        await reports.locator("figure svg").nth(5).wait_for()
        assert await reports.locator("figure").count() == 6
        # the day's requests, as a table: 3 requests, 1 abandoned today
        days = page.locator("#rp-days table")
        today = page.locator("#rp-days tbody tr").last
        await page.locator("#rp-days summary").click()
        assert await days.locator("th[scope=col]").count() == 4
        assert [await x.inner_text() for x in await today.locator("td").all()][:2] == ["3", "1"]
        bars = page.locator("#rp-hours svg rect.bar")
        assert await bars.count() >= 2  # requests and abandons of this hour
        topic_rows = page.locator("#rp-first tbody th[scope=row]")
        assert "Escroquerie" in " ".join(await topic_rows.all_inner_texts()) or await topic_rows.count() >= 5
        box = await reports.bounding_box()
        assert box is not None and box["width"] <= width  # no sideways scroll
        scroll = await page.evaluate("document.documentElement.scrollWidth")
        assert scroll <= width, scroll
        csv_href = await page.locator("#rp-csv").get_attribute("href")
        assert csv_href and "format=csv" in csv_href
        assert await axe_serious(page) == []
        await reports.screenshot(path=str(ARTIFACTS / f"console-reports-{width}.png"))
        assert page.errors == []
        await page.context.close()


async def test_load_is_shown_as_the_server_counts_it(browser: Any, server: Chatd,
                                                     redis_server: Any) -> None:
    """A violence chat takes two slots: with one of those and a scam chat open, a gendarme of
    capacity 3 is full (3 / 3), as matching counts it."""
    page, login = await console_agent(browser, server, redis_server.url, capacity=3)
    v1 = await make_visitor(server)
    s1 = await start_chat(v1, "violence", "Mon conjoint me menace")
    await accept_in_console(page, s1)
    await page.locator("#load").filter(has_text="Charge 2 / 3").wait_for()
    v2 = await make_visitor(server)
    s2 = await start_chat(v2, "scam", "Un faux conseiller bancaire")
    await accept_in_console(page, s2)
    await page.locator("#load").filter(has_text="Charge 3 / 3").wait_for()
    store = open_store(redis_server.url, Settings(key_prefix=server.prefix))
    try:
        (_, load, cap), = await store.agent_states([login])
        assert (load, cap) == (3, 3)
    finally:
        await store.aclose()
    assert "compte deux" in (await page.locator("#load").get_attribute("title") or "")

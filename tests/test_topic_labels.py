"""GET /api/topics gives each topic's label in every language the widget speaks, from the
built-in set and from an operator's topics file (a missing language is the French label), and
the widget shows them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from test_widget import w

pytestmark = pytest.mark.asyncio

LANGS = {"fr", "en", "es", "de", "it", "fr-falc"}


async def topics(server: Any) -> dict[str, dict[str, str]]:
    async with httpx.AsyncClient() as http:
        r = await http.get(server.http + "/api/topics")
    assert r.status_code == 200
    return {t["id"]: t["label"] for t in r.json()}


async def test_the_built_in_topics_are_labelled_in_every_language(server: Any) -> None:
    labels = await topics(server)
    assert set(labels) >= {"general", "violence", "theft", "scam", "road"}
    for tid, label in labels.items():
        assert set(label) == LANGS, tid
        # each one written for its language, not the French one again
        assert len(set(label.values())) == len(LANGS), (tid, label)
    assert labels["road"]["de"] == "Verkehrssicherheit, Straßenverkehrsordnung"


async def test_a_topics_file_may_label_each_language_and_french_fills_the_gaps(chatd_factory: Any,
                                                                             tmp_path: Path) -> None:
    path = tmp_path / "topics.toml"
    path.write_text(
        '[[topic]]\nid = "lost"\nlabel_fr = "Objet perdu"\nlabel_en = "Lost property"\n'
        'label_es = "Objeto perdido"\nlabel_de = "Fundsache"\nlabel_it = "Oggetto smarrito"\n'
        'label_fr_falc = "J\'ai perdu quelque chose"\n'
        '[[topic]]\nid = "hunting"\nlabel_fr = "Chasse"\n', encoding="utf-8")
    server = await chatd_factory(env={"CHATD_TOPICS_FILE": str(path)})
    labels = await topics(server)
    assert labels["lost"] == {"fr": "Objet perdu", "en": "Lost property", "es": "Objeto perdido",
                              "de": "Fundsache", "it": "Oggetto smarrito",
                              "fr-falc": "J'ai perdu quelque chose"}
    assert labels["hunting"] == {lang: "Chasse" for lang in LANGS}
    assert set(labels["general"]) == LANGS  # added, as always


@pytest.mark.browser
async def test_the_widget_shows_the_labels_of_its_language(browser: Any, chatd_factory: Any,
                                                            tmp_path: Path) -> None:
    path = tmp_path / "topics.toml"
    path.write_text('[[topic]]\nid = "lost"\nlabel_fr = "Objet perdu"\nlabel_it = "Oggetto smarrito"\n'
                    '[[topic]]\nid = "hunting"\nlabel_fr = "Chasse"\n', encoding="utf-8")
    server = await chatd_factory(env={"CHATD_TOPICS_FILE": str(path)})
    context = await browser.new_context(locale="it-IT")
    page = await context.new_page()
    await page.goto(server.http + "/")
    await w(page, "launcher").click()
    await w(page, "topic", data_topic="lost").filter(has_text="Oggetto smarrito").wait_for()
    assert await w(page, "topic", data_topic="hunting").inner_text() == "Chasse"
    assert await w(page, "topic", data_topic="general").inner_text() == "Informazioni generali"
    await context.close()

"""Canned answers: the brigade's shared FAQ (``CHATD_CANNED_FILE``, a TOML file the operator
maintains and config reads once, or a built-in starter set) and each agent's personal answers
(kept in Redis, so they follow the agent from one workstation to the next).

Answers are plain text that the console inserts into the input for the agent to edit: nothing
is sent without the agent pressing Send.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TITLE_MAX = 120
TEXT_MAX = 4000  # one message
PERSONAL_MAX = 200  # answers per agent


class CannedError(Exception):
    """A one-line reason a canned answer or the canned file was refused."""


@dataclass(frozen=True)
class Canned:
    id: str
    title: str
    text: str
    topics: tuple[str, ...] = ()  # empty: useful for every topic

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "text": self.text, "topics": list(self.topics)}


DEFAULT_CANNED: tuple[Canned, ...] = (
    Canned("bonjour", "Accueil",
           "Bonjour, je suis gendarme à la brigade numérique. Je lis votre message et je vous réponds."),
    Canned("urgence", "Urgence : 17 / 112 / 114",
           "Si vous êtes en danger immédiat, appelez le 17 ou le 112. Si vous ne pouvez pas parler, "
           "envoyez un SMS au 114."),
    Canned("pre-plainte", "Pré-plainte en ligne",
           "Vous pouvez faire une pré-plainte en ligne sur https://www.pre-plainte-en-ligne.gouv.fr "
           "puis prendre rendez-vous dans la brigade de votre choix pour la signer.",
           ("theft", "scam", "general")),
    Canned("perceval", "Fraude à la carte bancaire (Perceval)",
           "Faites d'abord opposer votre carte auprès de votre banque, puis signalez la fraude sur "
           "Perceval (service-public.fr) avec FranceConnect. Gardez les relevés des opérations.",
           ("scam",)),
    Canned("thesee", "Escroquerie en ligne (THESEE)",
           "Pour une escroquerie sur internet, vous pouvez porter plainte en ligne avec THESEE "
           "(service-public.fr). Conservez les échanges, captures d'écran et preuves de paiement.",
           ("scam",)),
    Canned("pharos", "Contenu illicite en ligne (PHAROS)",
           "Vous pouvez signaler un contenu illicite sur internet sur https://www.internet-signalement.gouv.fr",
           ("scam", "radicalisation")),
    Canned("3919", "Violences conjugales : 3919",
           "Le 3919 (Violences Femmes Info) est gratuit, anonyme et ouvert 24h/24. Il n'apparaît pas "
           "sur les factures de téléphone.", ("violence",)),
    Canned("119", "Enfance en danger : 119",
           "Le 119 (Allô Enfance en Danger) est gratuit et joignable 24h/24, 7j/7.", ("violence",)),
    Canned("cambriolage", "Après un cambriolage",
           "Ne touchez à rien pour préserver les traces, appelez le 17 si les cambrioleurs sont "
           "peut-être encore là, puis déposez plainte et prévenez votre assureur sous 2 jours ouvrés.",
           ("theft",)),
    Canned("ovv", "Opération tranquillité vacances",
           "Avant de partir, inscrivez-vous à l'opération tranquillité vacances : des patrouilles "
           "passeront devant votre domicile. Le formulaire est sur service-public.fr.",
           ("theft", "general")),
    Canned("points", "Solde de points du permis",
           "Vous pouvez consulter votre solde de points sur le site Mes Points Permis "
           "(telepoints.info) avec FranceConnect.", ("road",)),
    Canned("fin", "Clôture",
           "Je vous remercie pour votre message. N'hésitez pas à revenir vers nous si besoin. "
           "Bonne journée."),
)


def canned_from_tables(items: list[Any]) -> tuple[Canned, ...]:
    """The operator's ``[[answer]]`` tables (id, title, text, optional topics), checked."""
    out: list[Canned] = []
    seen: set[str] = set()
    for i, item in enumerate(items, 1):
        try:
            answer = checked(str(item["id"]), item["title"], item["text"],
                             tuple(str(t) for t in item.get("topics", ())))
        except (KeyError, TypeError):
            raise CannedError(f"answer #{i} needs id, title and text") from None
        except CannedError as exc:
            raise CannedError(f"answer #{i}: {exc}") from None
        if answer.id in seen:
            raise CannedError(f"answer id {answer.id!r} is listed twice")
        seen.add(answer.id)
        out.append(answer)
    return tuple(out)


def checked(id: str, title: Any, text: Any, topics: tuple[str, ...] = ()) -> Canned:
    if not isinstance(title, str) or not 1 <= len(title.strip()) <= TITLE_MAX:
        raise CannedError(f"title: 1-{TITLE_MAX} characters")
    if not isinstance(text, str) or not 1 <= len(text.strip()) <= TEXT_MAX:
        raise CannedError(f"text: 1-{TEXT_MAX} characters")
    if not id or len(id) > 64:
        raise CannedError("id: 1-64 characters")
    return Canned(id, title.strip(), text.strip(), topics)

"""Words chatd itself writes into a conversation, in each language it speaks."""

from __future__ import annotations

AGENT_GONE = {
    "fr": "Le gendarme a été déconnecté. Vous êtes replacé(e) en tête de file : "
          "un autre gendarme va vous répondre.",
    "en": "The gendarme was disconnected. You are back at the front of the queue: "
          "another gendarme will answer you.",
}
TRANSFERRED = {
    "fr": "Votre conversation est transmise à un autre gendarme. Il voit les messages échangés.",
    "en": "Your conversation is being passed to another gendarme, who can see the messages so far.",
}

"""Words chatd itself writes into a conversation, in each language it speaks.

A chat's language is the one it is matched on (easy-read French is French there): these are
the languages of ``hello.lang`` after that mapping. French comes first: it is what a chat in
any other language gets.
"""

from __future__ import annotations

AGENT_GONE = {
    "fr": "Le gendarme a été déconnecté. Vous êtes replacé(e) en tête de file : "
          "un autre gendarme va vous répondre.",
    "en": "The gendarme was disconnected. You are back at the front of the queue: "
          "another gendarme will answer you.",
    "es": "El gendarme se ha desconectado. Vuelve a estar en primer lugar de la fila: "
          "otro gendarme le responderá.",
    "de": "Die Verbindung zum Gendarmen ist unterbrochen. Sie stehen wieder an erster Stelle "
          "der Warteschlange: ein anderer Gendarm wird Ihnen antworten.",
    "it": "Il gendarme si è disconnesso. È di nuovo in testa alla coda: "
          "le risponderà un altro gendarme.",
}
TRANSFERRED = {
    "fr": "Votre conversation est transmise à un autre gendarme. Il voit les messages échangés.",
    "en": "Your conversation is being passed to another gendarme, who can see the messages so far.",
    "es": "Su conversación pasa a otro gendarme, que ve los mensajes intercambiados.",
    "de": "Ihr Gespräch wird an einen anderen Gendarmen weitergegeben, der die bisherigen "
          "Nachrichten sieht.",
    "it": "La sua conversazione passa a un altro gendarme, che vede i messaggi scambiati.",
}

TAKEN_OVER = {
    "fr": "Un gendarme responsable reprend votre conversation. Il voit les messages échangés.",
    "en": "A supervising gendarme is taking over your conversation and can see the messages "
          "so far.",
    "es": "Un gendarme responsable retoma su conversación. Ve los mensajes intercambiados.",
    "de": "Ein verantwortlicher Gendarm übernimmt Ihr Gespräch. Er sieht die bisherigen "
          "Nachrichten.",
    "it": "Un gendarme responsabile riprende la sua conversazione. Vede i messaggi scambiati.",
}

LANGUAGES = ("fr", "en", "es", "de", "it")


def in_every_language(text: dict[str, str]) -> list[str]:
    """(language, text) pairs, French first, for a script that picks the chat's own."""
    return [part for lang in LANGUAGES for part in (lang, text[lang])]

/* chatd citizen widget: <script src="https://HOST/widget.js" defer></script>
 *
 * Options, as data- attributes on that tag: data-lang (fr | en | es | de | it | fr-falc, the
 * easy-read French; fr-facile is kept as another name for fr-falc), data-topics (comma-separated
 * topic ids to offer), data-position (right | left), data-exit-url (the neutral page quick exit
 * goes to), data-retention-days (how long the service keeps a chat, said in the privacy notice
 * when /api/topics does not say it). Exposes window.chatd: open(), close(), quickExit(),
 * setLanguage(code), languages, on(event, handler) with events "open", "close", "status",
 * "message", "closed".
 *
 * Speaks chatd.v1.json (docs/protocol.md). Never loses a word: messages are kept in an outbox
 * (sessionStorage) until acknowledged, resent with the same cid after a reconnect, and the
 * conversation is resumed from the last seq shown. User text is only ever set as text.
 *
 * Sizes are in em from a base of `font-size: medium` on the widget's two top boxes. Inside a
 * shadow root `rem` would follow the host page's own root font size (a page with
 * html{font-size:62.5%} would shrink the widget to 10 px); `medium` is the reader's own browser
 * setting whatever the page does, so a 32 px browser font doubles the widget and nothing else
 * can shrink it.
 *
 * Topic entries of /api/topics may carry `alternatives`: [{label: "text" | {fr, en, …}, tel? |
 * sms? | url? (https only)}], shown after the emergency numbers when nobody can answer; without
 * it the widget's own table below is used. An entry's `retention_days` is said in the privacy
 * notice when present.
 */
(function () {
  "use strict";
  if (window.chatd && window.chatd.__loaded) return;

  var CODES = __CHATD_CODES__;  // ErrorCode and CloseCode, from protocol/errors.py
  var script = document.currentScript || document.querySelector("script[src*='widget.js']");
  var base = new URL(script.src, location.href);
  var opts = script.dataset || {};
  var wsUrl = (base.protocol === "https:" ? "wss://" : "ws://") + base.host + "/ws/visitor";
  var KEY = "chatd.";  // every sessionStorage key starts with it; quick exit removes them all
  var PING_MS = 10000;  // a connection that brings no frame for 2 pings is taken as lost
  var CODE_TTL_H = 72;  // resume codes expire with the chat (CHATD_ASYNC_TTL_H)

  var LANGS = ["fr", "fr-falc", "en", "es", "de", "it"];
  var ALIASES = { "fr-facile": "fr-falc" };
  var LANG_NAMES = { fr: "Français", "fr-falc": "Français facile à lire (FALC)", en: "English",
                     es: "Español", de: "Deutsch", it: "Italiano" };
  var LANG_SHORT = { fr: "FR", "fr-falc": "FALC", en: "EN", es: "ES", de: "DE", it: "IT" };
  var HTML_LANG = { "fr-falc": "fr" };  // the language screen readers pronounce
  var LOCALES = { fr: "fr-FR", "fr-falc": "fr-FR", en: "en-GB", es: "es-ES", de: "de-DE", it: "it-IT" };
  var LANG_PICK = "Langue · Language · Idioma · Sprache · Lingua";  // in every language at once

  function durFr(s) {
    if (s < 60) return "moins d'une minute";
    var m = Math.round(s / 60);
    return "environ " + m + " minute" + (m > 1 ? "s" : "");
  }
  function durEn(s) {
    if (s < 60) return "less than a minute";
    var m = Math.round(s / 60);
    return "about " + m + " minute" + (m > 1 ? "s" : "");
  }
  function durEs(s) {
    if (s < 60) return "menos de un minuto";
    var m = Math.round(s / 60);
    return "unos " + m + " minuto" + (m > 1 ? "s" : "");
  }
  function durDe(s) {
    if (s < 60) return "weniger als eine Minute";
    var m = Math.round(s / 60);
    return "etwa " + m + " Minute" + (m > 1 ? "n" : "");
  }
  function durIt(s) {
    if (s < 60) return "meno di un minuto";
    var m = Math.round(s / 60);
    return "circa " + m + " minut" + (m > 1 ? "i" : "o");
  }

  // Texts with {tel:17} or {sms:114} get those numbers as links (a tap calls on a phone).
  var STRINGS = {
    fr: {
      launcher: "Discuter avec un gendarme",
      newMessages: function (n) { return n === 1 ? "1 nouveau message" : n + " nouveaux messages"; },
      title: "Brigade numérique de la gendarmerie",
      notice: "Ce tchat n'est pas un numéro d'urgence. En cas d'urgence, appelez le {tel:17} ou le {tel:112}, ou envoyez un SMS au {sms:114}.",
      noticeShort: "Urgence : 17 · 112 · SMS 114",
      endShort: "Terminer", topicIs: "Sujet : ", changeTopic: "Changer de sujet",
      privacy: function (days, exit) {
        return "Ce qui est gardé : la gendarmerie conserve cette conversation " + days + " jours au plus, puis l'efface. " +
          "Sur cet appareil, elle ne reste que dans cet onglet, jusqu'à sa fermeture. « " + exit +
          " » l'efface de cet appareil (la gendarmerie garde sa copie).";
      },
      chooseTopic: "Quel est le sujet de votre demande ?",
      firstPrompt: "Décrivez votre demande. Un gendarme vous répondra par écrit.",
      inputLabel: "Votre message",
      send: "Envoyer",
      quickExit: "Quitter rapidement",
      quickExitHint: "Ferme la conversation et quitte ce site immédiatement (ou appuyez 3 fois sur Échap).",
      end: "Terminer la conversation",
      endConfirm: "Terminer la conversation ? Le gendarme ne pourra plus vous répondre ici.",
      endYes: "Oui, terminer", endNo: "Non, continuer",
      minimize: "Réduire",
      queued: function (p, eta) {
        var who = p === 1 ? "Vous êtes le prochain ou la prochaine." : "Il y a " + (p - 1) + " personne" + (p > 2 ? "s" : "") + " avant vous.";
        return who + " Attente estimée : " + durFr(eta) + ".";
      },
      connecting: "Connexion…",
      offline: "Connexion perdue. Vos messages sont gardés et partiront dès le retour du réseau.",
      assigned: "Un gendarme vous répond.",
      assignedTo: function (name) { return name + " vous répond."; },
      typing: "Le gendarme écrit…",
      closed: "La conversation est terminée.",
      sent: "envoyé", read: "lu", pending: "en attente d'envoi",
      you: "Vous", agent: "Gendarme", system: "Information",
      rateTitle: "Votre avis sur cet échange (facultatif)",
      rateLabel: function (n) { return n + " sur 5"; },
      comment: "Commentaire", rateSend: "Envoyer mon avis", thanks: "Merci pour votre avis.",
      download: "Télécharger la conversation",
      downloadConfirm: "La conversation sera enregistrée dans un fichier sur cet appareil. Toute personne qui utilise cet appareil pourra la lire, et « Quitter rapidement » ne l'effacera pas.",
      downloadYes: "Enregistrer sur cet appareil", cancel: "Annuler",
      restart: "Nouvelle conversation",
      quick: ["Je ne peux pas parler maintenant", "Je reviens dans quelques minutes"],
      neutralTitle: "Informations pratiques",
      error: "Une erreur est survenue. Réessayez.",
      tooLong: "Message trop long (4000 caractères au plus).",
      slow: "Trop de messages d'un coup : patientez un instant.",
      busy: "Vous avez déjà une conversation en cours.",
      unavailable: "Aucun gendarme n'est disponible pour le moment.",
      altTitle: "Vous pouvez aussi :",
      alt17: "Urgence : appelez le 17 (police, gendarmerie)",
      alt112: "Urgence, partout en Europe : le 112",
      alt114: "Vous ne pouvez pas parler ou entendre : SMS au 114",
      alt3919: "Violences : le 3919, gratuit et anonyme, 24 h/24",
      altComplaint: "Vol, escroquerie : faire une pré-plainte en ligne",
      leave: "Laisser ma question, réponse plus tard",
      leaveHint: "Un gendarme vous répondra dans les 24 heures. Vous recevrez un code pour revenir lire la réponse.",
      longWait: "L'attente est longue en ce moment. Vous pouvez laisser votre question : un gendarme vous répondra dans les 24 heures.",
      suggestTitle: "En attendant, ces réponses peuvent vous aider :",
      left: "Votre question est enregistrée. Un gendarme vous répondra dans les 24 heures.",
      codeTitle: "Votre code pour revenir",
      codeWords: function (h) {
        return "Notez-le maintenant : c'est le seul moyen de revenir à cette conversation, et il ne sera plus affiché. Il expire dans " + h + " h.";
      },
      copy: "Copier le code", copied: "Code copié.", copyManual: "Code sélectionné : copiez-le.",
      attach: "Ajouter une photo",
      photo: "Photo",
      photoSend: "Envoyer la photo",
      photoCancel: "Annuler",
      photoReady: "Photo à envoyer (votre message l'accompagne) :",
      photoUploading: "Envoi de la photo…",
      photoRetry: "Réseau perdu : la photo repartira dès son retour.",
      photoTooBig: "Photo trop lourde (10 Mo au plus).",
      photoType: "Ce fichier n'est pas une photo acceptée (JPEG, PNG, WebP, HEIC).",
      photoBad: "Cette photo est illisible ou trop grande.",
      photoTooMany: "Trop de photos dans cette conversation.",
      photoFailed: "La photo n'a pas pu être envoyée.",
      photoOpen: "Agrandir la photo",
      photoClose: "Fermer la photo",
      photoNoChat: "Envoyez d'abord votre premier message.",
      haveCode: "J'ai un code",
      codeLabel: "Votre code",
      codeHint: "Le code reçu quand vous avez laissé votre question, par exemple K7QM-4XPD-9T.",
      codeSubmit: "Revenir à ma conversation",
      codeWrong: "Ce code n'est pas reconnu, ou il a expiré.",
      codeSlow: "Trop d'essais. Patientez quelques minutes.",
      checking: "Vérification…"
    },
    en: {
      launcher: "Chat with a gendarme",
      newMessages: function (n) { return n === 1 ? "1 new message" : n + " new messages"; },
      title: "Gendarmerie digital brigade",
      notice: "This chat is not an emergency line. In an emergency call {tel:17} or {tel:112}, or text {sms:114}.",
      noticeShort: "Emergency: 17 · 112 · text 114",
      endShort: "End", topicIs: "Topic: ", changeTopic: "Change topic",
      privacy: function (days, exit) {
        return "What is kept: the gendarmerie keeps this conversation for at most " + days + " days, then deletes it. " +
          "On this device it stays only in this tab, until you close it. “" + exit +
          "” erases it from this device (the gendarmerie keeps its copy).";
      },
      chooseTopic: "What is your request about?",
      firstPrompt: "Describe your request. A gendarme will answer you in writing.",
      inputLabel: "Your message",
      send: "Send",
      quickExit: "Quick exit",
      quickExitHint: "Closes the conversation and leaves this site at once (or press Escape 3 times).",
      end: "End the conversation",
      endConfirm: "End the conversation? The gendarme will no longer be able to answer you here.",
      endYes: "Yes, end it", endNo: "No, go on",
      minimize: "Minimise",
      queued: function (p, eta) {
        var who = p === 1 ? "You are next." : (p - 1) + " " + (p > 2 ? "people are" : "person is") + " ahead of you.";
        return who + " Estimated wait: " + durEn(eta) + ".";
      },
      connecting: "Connecting…",
      offline: "Connection lost. Your messages are kept and will be sent when the network is back.",
      assigned: "A gendarme is answering you.",
      assignedTo: function (name) { return name + " is answering you."; },
      typing: "The gendarme is typing…",
      closed: "The conversation has ended.",
      sent: "sent", read: "read", pending: "waiting to be sent",
      you: "You", agent: "Gendarme", system: "Information",
      rateTitle: "Your opinion of this conversation (optional)",
      rateLabel: function (n) { return n + " out of 5"; },
      comment: "Comment", rateSend: "Send my opinion", thanks: "Thank you.",
      download: "Download the conversation",
      downloadConfirm: "The conversation will be saved as a file on this device. Anyone who uses this device will be able to read it, and “Quick exit” will not erase it.",
      downloadYes: "Save on this device", cancel: "Cancel",
      restart: "New conversation",
      quick: ["I can't talk right now", "I'll be back in a few minutes"],
      neutralTitle: "Practical information",
      error: "Something went wrong. Please try again.",
      tooLong: "Message too long (4000 characters at most).",
      slow: "Too many messages at once: wait a moment.",
      busy: "You already have a conversation going on.",
      unavailable: "No gendarme is available right now.",
      altTitle: "You can also:",
      alt17: "Emergency: call 17 (police, gendarmerie)",
      alt112: "Emergency, anywhere in Europe: 112",
      alt114: "If you cannot speak or hear: text 114",
      alt3919: "Violence: 3919, free and anonymous, 24/7",
      altComplaint: "Theft, scam: file a pre-complaint online",
      leave: "Leave my question, get an answer later",
      leaveHint: "A gendarme will answer within 24 hours. You will get a code to come back and read the answer.",
      longWait: "The wait is long right now. You can leave your question: a gendarme will answer within 24 hours.",
      suggestTitle: "While you wait, these answers may help (in French):",
      left: "Your question is saved. A gendarme will answer within 24 hours.",
      codeTitle: "Your code to come back",
      codeWords: function (h) {
        return "Write it down now: it is the only way back to this conversation, and it will not be shown again. It expires in " + h + " h.";
      },
      copy: "Copy the code", copied: "Code copied.", copyManual: "Code selected: copy it.",
      attach: "Add a photo",
      photo: "Photo",
      photoSend: "Send the photo",
      photoCancel: "Cancel",
      photoReady: "Photo to send (your message goes with it):",
      photoUploading: "Sending the photo…",
      photoRetry: "Network lost: the photo will be sent when it is back.",
      photoTooBig: "The photo is too large (10 MB at most).",
      photoType: "This file is not an accepted photo (JPEG, PNG, WebP, HEIC).",
      photoBad: "This photo cannot be read or is too large.",
      photoTooMany: "Too many photos in this conversation.",
      photoFailed: "The photo could not be sent.",
      photoOpen: "Enlarge the photo",
      photoClose: "Close the photo",
      photoNoChat: "Send your first message first.",
      haveCode: "I have a code",
      codeLabel: "Your code",
      codeHint: "The code you got when you left your question, for example K7QM-4XPD-9T.",
      codeSubmit: "Back to my conversation",
      codeWrong: "This code is not recognised, or it has expired.",
      codeSlow: "Too many tries. Wait a few minutes.",
      checking: "Checking…"
    },
    es: {
      launcher: "Chatear con un gendarme",
      newMessages: function (n) { return n === 1 ? "1 mensaje nuevo" : n + " mensajes nuevos"; },
      title: "Brigada digital de la Gendarmería",
      notice: "Este chat no es un número de emergencia. En caso de emergencia, llame al {tel:17} o al {tel:112}, o envíe un SMS al {sms:114}.",
      noticeShort: "Emergencia: 17 · 112 · SMS 114",
      endShort: "Terminar", topicIs: "Tema: ", changeTopic: "Cambiar de tema",
      privacy: function (days, exit) {
        return "Qué se guarda: la Gendarmería conserva esta conversación " + days + " días como máximo y después la borra. " +
          "En este dispositivo solo se queda en esta pestaña, hasta que la cierre. «" + exit +
          "» la borra de este dispositivo (la Gendarmería conserva su copia).";
      },
      chooseTopic: "¿Sobre qué es su consulta?",
      firstPrompt: "Describa su consulta. Un gendarme le responderá por escrito.",
      inputLabel: "Su mensaje",
      send: "Enviar",
      quickExit: "Salida rápida",
      quickExitHint: "Cierra la conversación y sale de este sitio al instante (o pulse Esc 3 veces).",
      end: "Terminar la conversación",
      endConfirm: "¿Terminar la conversación? El gendarme ya no podrá responderle aquí.",
      endYes: "Sí, terminar", endNo: "No, continuar",
      minimize: "Minimizar",
      queued: function (p, eta) {
        var who = p === 1 ? "Usted es el siguiente." : "Hay " + (p - 1) + " persona" + (p > 2 ? "s" : "") + " antes que usted.";
        return who + " Espera estimada: " + durEs(eta) + ".";
      },
      connecting: "Conectando…",
      offline: "Conexión perdida. Sus mensajes se guardan y se enviarán cuando vuelva la red.",
      assigned: "Un gendarme le responde.",
      assignedTo: function (name) { return name + " le responde."; },
      typing: "El gendarme está escribiendo…",
      closed: "La conversación ha terminado.",
      sent: "enviado", read: "leído", pending: "pendiente de envío",
      you: "Usted", agent: "Gendarme", system: "Información",
      rateTitle: "Su opinión sobre esta conversación (opcional)",
      rateLabel: function (n) { return n + " de 5"; },
      comment: "Comentario", rateSend: "Enviar mi opinión", thanks: "Gracias por su opinión.",
      download: "Descargar la conversación",
      downloadConfirm: "La conversación se guardará en un archivo en este dispositivo. Cualquier persona que use este dispositivo podrá leerla, y «Salida rápida» no la borrará.",
      downloadYes: "Guardar en este dispositivo", cancel: "Cancelar",
      restart: "Nueva conversación",
      quick: ["No puedo hablar ahora", "Vuelvo en unos minutos"],
      neutralTitle: "Información práctica",
      error: "Se ha producido un error. Inténtelo de nuevo.",
      tooLong: "Mensaje demasiado largo (4000 caracteres como máximo).",
      slow: "Demasiados mensajes a la vez: espere un momento.",
      busy: "Ya tiene una conversación en curso.",
      unavailable: "Ahora mismo no hay ningún gendarme disponible.",
      altTitle: "También puede:",
      alt17: "Emergencia: llame al 17 (policía, gendarmería)",
      alt112: "Emergencia, en toda Europa: el 112",
      alt114: "Si no puede hablar ni oír: SMS al 114",
      alt3919: "Violencia: el 3919, gratuito y anónimo, las 24 horas",
      altComplaint: "Robo, estafa: presentar una predenuncia en línea",
      leave: "Dejar mi pregunta, respuesta más tarde",
      leaveHint: "Un gendarme le responderá en 24 horas. Recibirá un código para volver a leer la respuesta.",
      longWait: "La espera es larga en este momento. Puede dejar su pregunta: un gendarme le responderá en 24 horas.",
      suggestTitle: "Mientras espera, estas respuestas pueden ayudarle (en francés):",
      left: "Su pregunta está registrada. Un gendarme le responderá en 24 horas.",
      codeTitle: "Su código para volver",
      codeWords: function (h) {
        return "Anótelo ahora: es la única forma de volver a esta conversación y no se volverá a mostrar. Caduca en " + h + " h.";
      },
      copy: "Copiar el código", copied: "Código copiado.", copyManual: "Código seleccionado: cópielo.",
      attach: "Añadir una foto",
      photo: "Foto",
      photoSend: "Enviar la foto",
      photoCancel: "Cancelar",
      photoReady: "Foto para enviar (su mensaje la acompaña):",
      photoUploading: "Enviando la foto…",
      photoRetry: "Red perdida: la foto se enviará cuando vuelva.",
      photoTooBig: "La foto pesa demasiado (10 MB como máximo).",
      photoType: "Este archivo no es una foto aceptada (JPEG, PNG, WebP, HEIC).",
      photoBad: "Esta foto no se puede leer o es demasiado grande.",
      photoTooMany: "Demasiadas fotos en esta conversación.",
      photoFailed: "No se pudo enviar la foto.",
      photoOpen: "Ampliar la foto",
      photoClose: "Cerrar la foto",
      photoNoChat: "Envíe primero su primer mensaje.",
      haveCode: "Tengo un código",
      codeLabel: "Su código",
      codeHint: "El código que recibió al dejar su pregunta, por ejemplo K7QM-4XPD-9T.",
      codeSubmit: "Volver a mi conversación",
      codeWrong: "Este código no se reconoce o ha caducado.",
      codeSlow: "Demasiados intentos. Espere unos minutos.",
      checking: "Comprobando…"
    },
    de: {
      launcher: "Mit einem Gendarmen chatten",
      newMessages: function (n) { return n === 1 ? "1 neue Nachricht" : n + " neue Nachrichten"; },
      title: "Digitale Brigade der Gendarmerie",
      notice: "Dieser Chat ist keine Notrufnummer. Im Notfall rufen Sie die {tel:17} oder die {tel:112} an oder senden Sie eine SMS an die {sms:114}.",
      noticeShort: "Notruf: 17 · 112 · SMS 114",
      endShort: "Beenden", topicIs: "Thema: ", changeTopic: "Thema ändern",
      privacy: function (days, exit) {
        return "Was gespeichert wird: Die Gendarmerie bewahrt dieses Gespräch höchstens " + days + " Tage auf und löscht es dann. " +
          "Auf diesem Gerät bleibt es nur in diesem Tab, bis Sie ihn schließen. „" + exit +
          "“ löscht es von diesem Gerät (die Gendarmerie behält ihre Kopie).";
      },
      chooseTopic: "Worum geht es bei Ihrer Anfrage?",
      firstPrompt: "Beschreiben Sie Ihr Anliegen. Ein Gendarm antwortet Ihnen schriftlich.",
      inputLabel: "Ihre Nachricht",
      send: "Senden",
      quickExit: "Schnell verlassen",
      quickExitHint: "Schließt das Gespräch und verlässt diese Seite sofort (oder drücken Sie 3-mal Esc).",
      end: "Gespräch beenden",
      endConfirm: "Gespräch beenden? Der Gendarm kann Ihnen hier dann nicht mehr antworten.",
      endYes: "Ja, beenden", endNo: "Nein, weiter",
      minimize: "Verkleinern",
      queued: function (p, eta) {
        var who = p === 1 ? "Sie sind als Nächstes dran." : (p === 2 ? "1 Person ist" : (p - 1) + " Personen sind") + " vor Ihnen.";
        return who + " Geschätzte Wartezeit: " + durDe(eta) + ".";
      },
      connecting: "Verbindung wird hergestellt…",
      offline: "Verbindung verloren. Ihre Nachrichten bleiben erhalten und werden gesendet, sobald das Netz zurück ist.",
      assigned: "Ein Gendarm antwortet Ihnen.",
      assignedTo: function (name) { return name + " antwortet Ihnen."; },
      typing: "Der Gendarm schreibt…",
      closed: "Das Gespräch ist beendet.",
      sent: "gesendet", read: "gelesen", pending: "wartet auf Versand",
      you: "Sie", agent: "Gendarm", system: "Information",
      rateTitle: "Ihre Meinung zu diesem Gespräch (freiwillig)",
      rateLabel: function (n) { return n + " von 5"; },
      comment: "Kommentar", rateSend: "Meine Meinung senden", thanks: "Danke für Ihre Meinung.",
      download: "Gespräch herunterladen",
      downloadConfirm: "Das Gespräch wird als Datei auf diesem Gerät gespeichert. Alle, die dieses Gerät benutzen, können es lesen, und „Schnell verlassen“ löscht es nicht.",
      downloadYes: "Auf diesem Gerät speichern", cancel: "Abbrechen",
      restart: "Neues Gespräch",
      quick: ["Ich kann gerade nicht sprechen", "Ich bin in ein paar Minuten zurück"],
      neutralTitle: "Praktische Informationen",
      error: "Ein Fehler ist aufgetreten. Bitte versuchen Sie es erneut.",
      tooLong: "Nachricht zu lang (höchstens 4000 Zeichen).",
      slow: "Zu viele Nachrichten auf einmal: Bitte warten Sie kurz.",
      busy: "Sie haben bereits ein laufendes Gespräch.",
      unavailable: "Im Moment ist kein Gendarm verfügbar.",
      altTitle: "Sie können auch:",
      alt17: "Notfall: die 17 anrufen (Polizei, Gendarmerie)",
      alt112: "Notfall, in ganz Europa: die 112",
      alt114: "Wenn Sie nicht sprechen oder hören können: SMS an die 114",
      alt3919: "Gewalt: die 3919, kostenlos und anonym, rund um die Uhr",
      altComplaint: "Diebstahl, Betrug: online eine Voranzeige erstatten",
      leave: "Meine Frage hinterlassen, später Antwort erhalten",
      leaveHint: "Ein Gendarm antwortet Ihnen innerhalb von 24 Stunden. Sie erhalten einen Code, um die Antwort zu lesen.",
      longWait: "Die Wartezeit ist gerade lang. Sie können Ihre Frage hinterlassen: Ein Gendarm antwortet innerhalb von 24 Stunden.",
      suggestTitle: "Während Sie warten, könnten diese Antworten helfen (auf Französisch):",
      left: "Ihre Frage ist gespeichert. Ein Gendarm antwortet Ihnen innerhalb von 24 Stunden.",
      codeTitle: "Ihr Code für die Rückkehr",
      codeWords: function (h) {
        return "Schreiben Sie ihn jetzt auf: Er ist der einzige Weg zurück zu diesem Gespräch und wird nicht noch einmal angezeigt. Er läuft in " + h + " Stunden ab.";
      },
      copy: "Code kopieren", copied: "Code kopiert.", copyManual: "Code markiert: Bitte kopieren Sie ihn.",
      attach: "Ein Foto hinzufügen",
      photo: "Foto",
      photoSend: "Foto senden",
      photoCancel: "Abbrechen",
      photoReady: "Zu sendendes Foto (Ihre Nachricht geht mit):",
      photoUploading: "Foto wird gesendet…",
      photoRetry: "Netz verloren: Das Foto wird gesendet, sobald es zurück ist.",
      photoTooBig: "Das Foto ist zu groß (höchstens 10 MB).",
      photoType: "Diese Datei ist kein akzeptiertes Foto (JPEG, PNG, WebP, HEIC).",
      photoBad: "Dieses Foto ist unlesbar oder zu groß.",
      photoTooMany: "Zu viele Fotos in diesem Gespräch.",
      photoFailed: "Das Foto konnte nicht gesendet werden.",
      photoOpen: "Foto vergrößern",
      photoClose: "Foto schließen",
      photoNoChat: "Senden Sie zuerst Ihre erste Nachricht.",
      haveCode: "Ich habe einen Code",
      codeLabel: "Ihr Code",
      codeHint: "Der Code, den Sie beim Hinterlassen Ihrer Frage erhalten haben, zum Beispiel K7QM-4XPD-9T.",
      codeSubmit: "Zurück zu meinem Gespräch",
      codeWrong: "Dieser Code ist unbekannt oder abgelaufen.",
      codeSlow: "Zu viele Versuche. Bitte warten Sie einige Minuten.",
      checking: "Wird geprüft…"
    },
    it: {
      launcher: "Chatta con un gendarme",
      newMessages: function (n) { return n === 1 ? "1 nuovo messaggio" : n + " nuovi messaggi"; },
      title: "Brigata digitale della Gendarmeria",
      notice: "Questa chat non è un numero di emergenza. In caso di emergenza chiami il {tel:17} o il {tel:112}, oppure invii un SMS al {sms:114}.",
      noticeShort: "Emergenza: 17 · 112 · SMS 114",
      endShort: "Termina", topicIs: "Argomento: ", changeTopic: "Cambia argomento",
      privacy: function (days, exit) {
        return "Cosa viene conservato: la Gendarmeria conserva questa conversazione al massimo " + days + " giorni, poi la cancella. " +
          "Su questo dispositivo resta solo in questa scheda, finché non la chiude. «" + exit +
          "» la cancella da questo dispositivo (la Gendarmeria conserva la sua copia).";
      },
      chooseTopic: "Qual è l'argomento della sua richiesta?",
      firstPrompt: "Descriva la sua richiesta. Un gendarme le risponderà per iscritto.",
      inputLabel: "Il suo messaggio",
      send: "Invia",
      quickExit: "Uscita rapida",
      quickExitHint: "Chiude la conversazione ed esce subito da questo sito (oppure prema Esc 3 volte).",
      end: "Termina la conversazione",
      endConfirm: "Terminare la conversazione? Il gendarme non potrà più risponderle qui.",
      endYes: "Sì, termina", endNo: "No, continua",
      minimize: "Riduci",
      queued: function (p, eta) {
        var who = p === 1 ? "Lei è il prossimo o la prossima." : (p === 2 ? "C'è 1 persona" : "Ci sono " + (p - 1) + " persone") + " prima di lei.";
        return who + " Attesa stimata: " + durIt(eta) + ".";
      },
      connecting: "Connessione…",
      offline: "Connessione persa. I suoi messaggi sono conservati e partiranno appena torna la rete.",
      assigned: "Un gendarme le risponde.",
      assignedTo: function (name) { return name + " le risponde."; },
      typing: "Il gendarme sta scrivendo…",
      closed: "La conversazione è terminata.",
      sent: "inviato", read: "letto", pending: "in attesa di invio",
      you: "Lei", agent: "Gendarme", system: "Informazione",
      rateTitle: "La sua opinione su questa conversazione (facoltativa)",
      rateLabel: function (n) { return n + " su 5"; },
      comment: "Commento", rateSend: "Invia la mia opinione", thanks: "Grazie per la sua opinione.",
      download: "Scarica la conversazione",
      downloadConfirm: "La conversazione sarà salvata in un file su questo dispositivo. Chiunque usi questo dispositivo potrà leggerla, e «Uscita rapida» non la cancellerà.",
      downloadYes: "Salva su questo dispositivo", cancel: "Annulla",
      restart: "Nuova conversazione",
      quick: ["Non posso parlare adesso", "Torno tra qualche minuto"],
      neutralTitle: "Informazioni pratiche",
      error: "Si è verificato un errore. Riprovi.",
      tooLong: "Messaggio troppo lungo (al massimo 4000 caratteri).",
      slow: "Troppi messaggi insieme: attenda un momento.",
      busy: "Ha già una conversazione in corso.",
      unavailable: "Al momento nessun gendarme è disponibile.",
      altTitle: "Può anche:",
      alt17: "Emergenza: chiami il 17 (polizia, gendarmeria)",
      alt112: "Emergenza, in tutta Europa: il 112",
      alt114: "Se non può parlare o sentire: SMS al 114",
      alt3919: "Violenza: il 3919, gratuito e anonimo, 24 ore su 24",
      altComplaint: "Furto, truffa: fare una pre-denuncia online",
      leave: "Lasciare la mia domanda, risposta più tardi",
      leaveHint: "Un gendarme le risponderà entro 24 ore. Riceverà un codice per tornare a leggere la risposta.",
      longWait: "L'attesa è lunga in questo momento. Può lasciare la sua domanda: un gendarme le risponderà entro 24 ore.",
      suggestTitle: "Mentre attende, queste risposte possono aiutarla (in francese):",
      left: "La sua domanda è registrata. Un gendarme le risponderà entro 24 ore.",
      codeTitle: "Il suo codice per tornare",
      codeWords: function (h) {
        return "Lo annoti subito: è l'unico modo per tornare a questa conversazione e non verrà più mostrato. Scade tra " + h + " ore.";
      },
      copy: "Copia il codice", copied: "Codice copiato.", copyManual: "Codice selezionato: lo copi.",
      attach: "Aggiungere una foto",
      photo: "Foto",
      photoSend: "Inviare la foto",
      photoCancel: "Annulla",
      photoReady: "Foto da inviare (il suo messaggio la accompagna):",
      photoUploading: "Invio della foto…",
      photoRetry: "Rete persa: la foto partirà appena torna.",
      photoTooBig: "La foto è troppo pesante (10 MB al massimo).",
      photoType: "Questo file non è una foto accettata (JPEG, PNG, WebP, HEIC).",
      photoBad: "Questa foto è illeggibile o troppo grande.",
      photoTooMany: "Troppe foto in questa conversazione.",
      photoFailed: "Non è stato possibile inviare la foto.",
      photoOpen: "Ingrandire la foto",
      photoClose: "Chiudere la foto",
      photoNoChat: "Invii prima il suo primo messaggio.",
      haveCode: "Ho un codice",
      codeLabel: "Il suo codice",
      codeHint: "Il codice ricevuto quando ha lasciato la domanda, per esempio K7QM-4XPD-9T.",
      codeSubmit: "Torna alla mia conversazione",
      codeWrong: "Questo codice non è riconosciuto o è scaduto.",
      codeSlow: "Troppi tentativi. Attenda qualche minuto.",
      checking: "Verifica…"
    }
  };
  // Easy-to-read French (FALC): short sentences, one idea each, common words.
  STRINGS["fr-falc"] = Object.assign({}, STRINGS.fr, {
    launcher: "Écrire à un gendarme",
    title: "Tchat de la gendarmerie",
    notice: "Ce tchat n'est pas pour les urgences. Urgence : appelez le {tel:17} ou le {tel:112}. Vous êtes sourd ou malentendant : envoyez un SMS au {sms:114}.",
    noticeShort: "Urgence : 17 · 112 · SMS 114",
    endShort: "Finir", topicIs: "Le sujet : ", changeTopic: "Choisir un autre sujet",
    privacy: function (days, exit) {
      return "La gendarmerie garde cette conversation " + days + " jours au plus. Puis elle l'efface. " +
        "Sur cet appareil, la conversation reste dans cet onglet. Elle part quand vous fermez l'onglet. " +
        "Le bouton « " + exit + " » l'efface de cet appareil.";
    },
    chooseTopic: "Choisissez le sujet.",
    firstPrompt: "Écrivez votre question. Un gendarme va vous répondre.",
    quickExit: "Partir vite",
    quickExitHint: "Ce bouton ferme tout. Vous quittez ce site tout de suite. Vous pouvez aussi appuyer 3 fois sur la touche Échap.",
    end: "Finir la conversation",
    endConfirm: "Vous voulez finir la conversation ? Après, le gendarme ne peut plus vous répondre ici.",
    endYes: "Oui, finir", endNo: "Non, continuer",
    minimize: "Cacher le tchat",
    queued: function (p, eta) {
      return (p === 1 ? "C'est bientôt à vous." : "Il y a " + (p - 1) + " personne" + (p > 2 ? "s" : "") + " avant vous.") + " Temps d'attente : " + durFr(eta) + ".";
    },
    offline: "Internet ne marche plus. Vos messages sont gardés. Ils partiront quand Internet revient.",
    assigned: "Un gendarme est là. Il vous répond.",
    assignedTo: function (name) { return "Un gendarme vous répond. Son nom : " + name + "."; },
    closed: "La conversation est finie.",
    pending: "pas encore envoyé",
    rateTitle: "Donnez votre avis. Ce n'est pas obligatoire.",
    download: "Enregistrer la conversation",
    downloadConfirm: "La conversation va être enregistrée sur cet appareil. D'autres personnes peuvent la lire sur cet appareil. Le bouton « Partir vite » ne l'efface pas.",
    downloadYes: "Oui, enregistrer",
    error: "Il y a un problème. Essayez encore.",
    tooLong: "Le message est trop long. 4000 lettres au plus.",
    slow: "Trop de messages en même temps. Attendez un peu.",
    busy: "Vous avez déjà une conversation.",
    unavailable: "Aucun gendarme n'est libre pour le moment.",
    alt17: "Urgence : appelez le 17.",
    alt112: "Urgence en Europe : appelez le 112.",
    alt114: "Vous ne pouvez pas parler ou entendre : envoyez un SMS au 114.",
    alt3919: "Violences : appelez le 3919. C'est gratuit. Vous pouvez rester anonyme.",
    altComplaint: "Vol ou arnaque : faites une pré-plainte sur Internet.",
    leave: "Laisser ma question. Avoir la réponse plus tard.",
    leaveHint: "Un gendarme répond dans les 24 heures. Vous allez recevoir un code. Avec ce code, vous pouvez lire la réponse.",
    longWait: "Il faut attendre longtemps. Vous pouvez laisser votre question. Un gendarme répond dans les 24 heures.",
    suggestTitle: "Ces réponses peuvent peut-être vous aider :",
    left: "Votre question est enregistrée. Un gendarme va vous répondre dans les 24 heures.",
    codeTitle: "Votre code",
    codeWords: function (h) {
      return "Écrivez ce code sur un papier maintenant. C'est le seul moyen de revenir. Vous ne pourrez plus le voir après. Le code marche pendant " + h + " heures.";
    },
    copied: "Le code est copié.", copyManual: "Le code est sélectionné. Copiez-le.",
    codeHint: "Écrivez le code que vous avez reçu. Par exemple : K7QM-4XPD-9T.",
    codeWrong: "Ce code ne marche pas. Il est peut-être trop vieux.",
    codeSlow: "Trop d'essais. Attendez quelques minutes.",
    attach: "Envoyer une photo",
    photoReady: "La photo à envoyer :",
    photoUploading: "La photo part…",
    photoRetry: "Internet ne marche plus. La photo partira quand Internet revient.",
    photoTooBig: "La photo est trop grosse.",
    photoType: "Ce fichier n'est pas une photo.",
    photoBad: "On ne peut pas lire cette photo.",
    photoTooMany: "Vous avez envoyé trop de photos.",
    photoFailed: "La photo n'est pas partie.",
    photoOpen: "Voir la photo en grand",
    photoClose: "Fermer la photo"
  });
  // Every language has every text: a missing one is a defect, said where a test sees it.
  LANGS.forEach(function (l) {
    var missing = Object.keys(STRINGS.fr).filter(function (k) { return !(k in STRINGS[l]); });
    if (missing.length) console.error("chatd: texts missing in " + l + ": " + missing.join(", "));
  });

  // Who else can help, by topic, when no gendarme can answer now (17, 112, 114: always).
  var ALWAYS = [{ key: "alt17", tel: "17" }, { key: "alt112", tel: "112" }, { key: "alt114", sms: "114" }];
  var COMPLAINT = { key: "altComplaint", url: "https://www.pre-plainte-en-ligne.gouv.fr/" };
  var BY_TOPIC = {
    violence: [{ key: "alt3919", tel: "3919" }],
    theft: [COMPLAINT],
    scam: [COMPLAINT]
  };

  function pickLang(value) {
    var v = String(value || "").toLowerCase();
    v = ALIASES[v] || v;
    return STRINGS[v] ? v : null;
  }
  var navLang = pickLang((navigator.language || "fr").slice(0, 2)) || "fr";
  var lang = pickLang(load("lang", null)) || pickLang(opts.lang) || navLang;
  var T = STRINGS[lang];
  var exitUrl = opts.exitUrl || "https://www.google.com/search?q=meteo";

  // ---- state (sessionStorage: closing the tab forgets the chat) ----
  function load(name, dflt) {
    try { var v = sessionStorage.getItem(KEY + name); return v === null ? dflt : JSON.parse(v); }
    catch (e) { return dflt; }
  }
  function save(name, value) {
    try { sessionStorage.setItem(KEY + name, JSON.stringify(value)); } catch (e) { /* private mode */ }
  }
  function forgetAll() {
    try {
      for (var i = sessionStorage.length - 1; i >= 0; i--) {
        var k = sessionStorage.key(i);
        if (k && k.indexOf(KEY) === 0) sessionStorage.removeItem(k);
      }
    } catch (e) { /* nothing stored */ }
  }

  var state = {
    token: load("token", null),
    session: load("session", null),
    outbox: load("outbox", []),  // [{cid, text, ts}] not yet acknowledged
    open: load("open", false),
    used: load("used", false),  // opened in this tab: quick exit stays beside the launcher
    noticeSeen: load("noticeSeen", false),
    topic: load("topic", null),
    agentName: load("agentName", ""),
    left: load("left", false),  // the question was left to be answered later
    lastSeq: 0,  // highest seq shown in this page
    phase: "topics",  // topics | compose | waiting | chat | closed
    available: true,
    agentRead: 0,
    unread: 0,
    skew: 0,  // server clock minus this device's clock, from welcome.server_time
    pendingCode: null
  };
  var topicList = [];  // from /api/topics
  var listeners = {};
  var early = [];  // messages of a chat whose id has not arrived yet
  function emit(name, detail) {
    (listeners[name] || []).forEach(function (h) { try { h(detail); } catch (e) { /* host bug */ } });
  }
  function now() { return Date.now() + state.skew; }

  // ---- DOM ----
  var host = document.createElement("div");
  host.id = "chatd-widget";
  var root = host.attachShadow({ mode: "open" });
  var side = opts.position === "left" ? "left" : "right";
  var CSS = [
    ":host{all:initial}",
    // the base of every size: the reader's browser font size, whatever the host page sets
    ".dock,.panel{font-size:medium;line-height:1.4}",
    "*{box-sizing:border-box;font-family:system-ui,-apple-system,'Segoe UI',Roboto,Arial,sans-serif}",
    "button,input,textarea,select{font:inherit;color:inherit}",
    "button{cursor:pointer}",
    "button:focus-visible,textarea:focus-visible,input:focus-visible,a:focus-visible,.body:focus-visible,[tabindex]:focus-visible{outline:3px solid #ffbf00;outline-offset:2px}",
    "[hidden]{display:none!important}",
    ".sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}",
    // launcher, and quick exit beside it once the widget was used
    // side by side when they fit, quick exit above the launcher when they do not
    ".dock{position:fixed;bottom:1em;" + side + ":1em;z-index:2147483000;max-width:calc(100vw - 2em);display:flex;flex-wrap:wrap;align-items:center;justify-content:flex-end;gap:.5em;flex-direction:" + (side === "left" ? "row-reverse" : "row") + "}",
    ".dock button{white-space:nowrap}",
    ".launcher{background:#000091;color:#fff;border:0;border-radius:1.75em;padding:.875em 1.25em;font-weight:600;box-shadow:0 .25em .875em rgba(0,0,0,.3);display:flex;align-items:center;gap:.5em}",
    ".badge{background:#ce0500;color:#fff;border-radius:1em;min-width:1.6em;padding:.1em .45em;font-size:.875em;font-weight:700;text-align:center}",
    ".dock .exit{border-radius:1.75em;padding:.875em 1em;box-shadow:0 .25em .875em rgba(0,0,0,.3)}",
    ".exit{background:#ce0500;color:#fff;border:1px solid #ce0500;font-weight:700}",
    // the panel
    ".panel{position:fixed;bottom:1em;" + side + ":1em;z-index:2147483001;width:24em;max-width:calc(100vw - 1em);height:37.5em;max-height:calc(100vh - 2em);background:#fff;color:#161616;border-radius:.75em;box-shadow:0 .5em 1.875em rgba(0,0,0,.35);display:flex;flex-direction:column;overflow:hidden}",
    // phones, a phone's keyboard, zoom, large text: the whole screen (em in media queries
    // follows the reader's font size, so large text gets the same layout as a small screen)
    "@media (max-width:30em),(max-height:32em){.panel{left:0;right:0;top:0;bottom:auto;width:100%;max-width:100%;height:var(--chatd-vh,100%);max-height:none;border-radius:0}}",
    "header{flex:none;background:#000091;color:#fff;padding:.25em .5em;display:flex;align-items:center;gap:.375em}",
    "header h2{font-size:1em;margin:0;flex:1 1 auto;min-width:0;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}",
    "header button{flex:none;background:transparent;color:#fff;border:1px solid #fff;border-radius:.4em;padding:0 .6em;font-size:.875em;min-height:2.3em;min-width:2.3em;white-space:nowrap}",
    "header .exit{background:#ce0500;border-color:#fff}",
    "@media (pointer:coarse){header button{min-height:2.75em;min-width:2.75em}}",
    ".langs{flex:none;display:flex;flex-wrap:wrap;gap:.375em;padding:.375em .75em;border-bottom:1px solid #ddd;background:#f6f6f6}",
    ".langs button{border:1px solid #000091;background:#fff;color:#000091;border-radius:.4em;padding:.25em .5em;font-size:.875em}",
    ".langs button[aria-pressed=true]{background:#000091;color:#fff}",
    // the emergency notice, in full first, then folded in a bar beside the end button
    ".bar{flex:none;display:flex;align-items:center;flex-wrap:wrap;gap:.375em;padding:.125em .5em;background:#fff4f3;border-bottom:1px solid #f3c4c0}",
    ".bar button{border:1px solid transparent;background:transparent;border-radius:.4em;padding:.25em .375em;font-size:.8125em;min-height:2.1em}",
    ".bar .fold{color:#6e0000;font-weight:600;text-align:left;flex:1 1 auto;min-width:0}",
    ".bar .fold::after{content:' \\25BE' / ''}",
    ".bar .fold[aria-expanded=true]::after{content:' \\25B4' / ''}",
    ".bar [data-chatd=end]{flex:none;margin-left:auto;border-color:#000091;background:#fff;color:#000091}",
    ".notice{flex:none;background:#fff4f3;color:#6e0000;border-bottom:1px solid #f3c4c0;padding:.5em .75em;font-size:.8125em;margin:0}",
    ".notice a{color:inherit;font-weight:700}",
    ".confirm{flex:none;display:flex;flex-wrap:wrap;align-items:center;gap:.375em;padding:.5em .75em;background:#fff8e1;border-bottom:1px solid #e8d9a8;font-size:.875em}",
    ".confirm p{margin:0;flex:1 1 100%}",
    ".confirm button,.card button,.after button,.code-entry button{border:1px solid #000091;background:#fff;color:#000091;border-radius:.5em;padding:.4em .75em;min-height:2.5em}",
    ".confirm button.yes,.card button.main,.code-entry button.main{background:#000091;color:#fff}",
    ".status{flex:none;padding:.375em .75em;font-size:.875em;background:#eef;border-bottom:1px solid #dde}",
    ".status.empty{padding:0;border:0}",
    ".net{display:block;color:#6e0000;font-weight:700}",
    // the conversation: everything that scrolls
    ".body{flex:1 1 auto;min-height:0;overflow-y:auto;padding:.75em;display:flex;flex-direction:column;gap:.5em}",
    ".intro{display:flex;flex-direction:column;gap:.5em}",
    ".topics{display:flex;flex-direction:column;gap:.375em}",
    ".topics p,.intro p{margin:0}",
    ".topics button{text-align:left;padding:.625em;border:1px solid #000091;background:#fff;color:#000091;border-radius:.5em;font-size:.9375em}",
    ".privacy{font-size:.8125em;color:#3a3a3a}",
    ".chosen{font-weight:600}",
    ".linkish{align-self:flex-start;background:none;border:0;padding:.25em 0;color:#000091;text-decoration:underline;font-size:.9375em}",
    ".code-entry{display:flex;flex-direction:column;gap:.375em;border:1px solid #ccc;border-radius:.5em;padding:.625em}",
    ".code-entry label{font-weight:600}",
    ".code-entry input{font-size:1.125em;padding:.375em .5em;border:1px solid #666;border-radius:.4em;letter-spacing:.08em;text-transform:uppercase}",
    ".hint{font-size:.8125em;color:#3a3a3a;margin:0}",
    ".err{color:#b00000;font-weight:600;margin:0}",
    ".thread{display:flex;flex-direction:column;gap:.5em}",
    ".msg{max-width:85%;padding:.5em .625em;border-radius:.625em;white-space:pre-wrap;overflow-wrap:anywhere;line-height:1.35;font-size:.9375em}",
    ".msg[data-from=visitor]{align-self:flex-end;background:#000091;color:#fff}",
    ".msg[data-from=agent]{align-self:flex-start;background:#eee;color:#161616}",
    ".msg[data-from=system]{align-self:center;background:#fff8e1;color:#3a2a00;font-size:.8125em}",
    ".msg a{color:inherit}",
    ".mark{display:block;font-size:.75em;opacity:.85;text-align:right;margin-top:.125em}",
    ".chips{display:flex;gap:.375em;flex-wrap:wrap;justify-content:flex-end}",
    ".chips button{font-size:.8125em;border:1px solid #666;background:#fff;color:#161616;border-radius:1em;padding:.3em .75em}",
    ".card{display:flex;flex-direction:column;gap:.5em;border:1px solid #000091;border-radius:.625em;padding:.75em;background:#f5f5fe}",
    ".card p,.card ul{margin:0}",
    ".card ul{padding-left:1.1em}",
    ".card li{margin:.2em 0}",
    ".card a{color:#000091;font-weight:600}",
    ".code{font-family:ui-monospace,'DejaVu Sans Mono',Menlo,Consolas,monospace;font-size:1.75em;font-weight:700;letter-spacing:.08em;background:#fff;border:2px dashed #000091;border-radius:.3em;padding:.25em .4em;text-align:center;overflow-wrap:anywhere;user-select:all}",
    ".after{display:flex;flex-direction:column;gap:.5em;border-top:1px solid #ddd;padding-top:.625em}",
    ".after .row{display:flex;flex-wrap:wrap;gap:.375em}",
    ".after textarea{flex:none;min-height:3.5em}",
    ".stars{display:flex;flex-wrap:wrap;gap:.25em;border:0;padding:0;margin:0}",
    ".stars legend{padding:0;margin-bottom:.25em}",
    ".stars label{padding:.25em .5em;border:1px solid #888;border-radius:.4em;cursor:pointer}",
    ".typing{position:sticky;bottom:0;padding:.125em 0;font-size:.8125em;color:#444;background:rgba(255,255,255,.92)}",
    ".typing:empty{display:none}",
    "form.compose{flex:none;display:flex;gap:.375em;padding:.375em .75em;border-top:1px solid #ddd;background:#fff}",
    ".attach{flex:none;min-width:2.6em;min-height:2.6em;border:1px solid #666;border-radius:.5em;background:#fff;display:grid;place-items:center}",
    ".clip{width:1.1em;height:.9em;border:.15em solid #000091;border-radius:.2em;position:relative}",
    ".clip::after{content:'';position:absolute;width:.35em;height:.35em;border:.13em solid #000091;border-radius:50%;left:.3em;top:.15em}",
    ".preview{flex:none;padding:.375em .75em;border-top:1px solid #ddd;background:#f6f6f6;font-size:.875em}",
    ".preview p{margin:.125em 0}",
    ".preview img{display:block;max-height:6em;max-width:100%;border-radius:.375em;margin:.25em 0}",
    ".preview progress{width:100%}",
    ".preview .row{display:flex;gap:.5em}",
    ".preview .row button{min-height:2.4em;padding:0 .75em;border-radius:.5em;border:1px solid #000091;background:#fff;color:#000091}",
    ".preview .row .primary{background:#000091;color:#fff}",
    ".msg .photo{display:block;border:0;padding:0;margin:.125em 0;background:none;cursor:zoom-in}",
    ".msg .photo img{display:block;max-width:100%;max-height:12em;border-radius:.375em;min-width:3em;min-height:3em;background:#ccc}",
    ".lightbox{position:absolute;inset:0;background:rgba(0,0,0,.88);display:flex;flex-direction:column;align-items:center;justify-content:center;gap:.75em;padding:.75em;z-index:2}",
    ".lightbox img{max-width:100%;max-height:calc(100% - 4em);object-fit:contain}",
    ".lightbox button{min-height:2.6em;padding:0 1em;border-radius:.5em;border:0;background:#fff;color:#000091;font-weight:600}",
    "textarea{flex:1;resize:none;font-size:1em;padding:.4em .5em;border:1px solid #666;border-radius:.5em;min-height:2.6em;max-height:7.5em}",
    ".primary{background:#000091;color:#fff;border:0;border-radius:.5em;padding:0 .875em;font-weight:600;min-height:2.6em}",
    "@media (prefers-reduced-motion:no-preference){.panel{animation:rise .18s ease-out}@keyframes rise{from{transform:translateY(.75em);opacity:0}to{transform:none;opacity:1}}}"
  ].join("\n");
  try {
    var sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS);
    root.adoptedStyleSheets = [sheet];  // no inline <style>: works under a strict host CSP
  } catch (e) {
    var st = document.createElement("style");
    st.textContent = CSS;
    root.appendChild(st);
  }

  function el(tag, attrs, children) {
    var n = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") n.textContent = attrs[k];
      else if (k === "chatd") n.setAttribute("data-chatd", attrs[k]);
      else n.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) n.appendChild(c); });
    return n;
  }

  // Texts that change with the language: [node, key or function, where] re-applied by setLanguage.
  var texts = [];
  function tx(node, key, where) {
    texts.push([node, key, where || "text"]);
    applyText(texts[texts.length - 1]);
    return node;
  }
  function applyText(t) {
    var value = typeof t[1] === "function" ? t[1]() : T[t[1]];
    if (t[2] === "text") t[0].textContent = value;
    else if (t[2] === "rich") { t[0].textContent = ""; rich(t[0], value); }
    else t[0].setAttribute(t[2], value);
  }
  // "{tel:17}" and "{sms:114}" become links; everything else stays text
  function rich(node, text) {
    var re = /\{(tel|sms):([0-9+]+)\}/g, last = 0, m;
    while ((m = re.exec(text)) !== null) {
      if (m.index > last) node.appendChild(document.createTextNode(text.slice(last, m.index)));
      node.appendChild(el("a", { href: m[1] + ":" + m[2], text: m[2] }));
      last = m.index + m[0].length;
    }
    if (last < text.length) node.appendChild(document.createTextNode(text.slice(last)));
  }

  var launcherText = el("span", {});
  var badge = el("span", { "class": "badge", "aria-hidden": "true", hidden: "" });
  var badgeSr = el("span", { "class": "sr" });
  var launcher = el("button", { "class": "launcher", chatd: "launcher", type: "button", "aria-haspopup": "dialog" },
                    [tx(launcherText, "launcher"), badge, badgeSr]);
  var dockLive = el("div", { "class": "sr", role: "status" });
  var dock = el("div", { "class": "dock" }, [launcher, dockLive]);

  var exitBtn = el("button", { "class": "exit", chatd: "quick-exit", type: "button", "aria-describedby": "chatd-exit-hint" });
  tx(exitBtn, "quickExit"); tx(exitBtn, "quickExitHint", "title");
  var exitHint = tx(el("span", { "class": "sr", id: "chatd-exit-hint" }), "quickExitHint");
  var langText = el("span", {});
  var langBtn = el("button", { chatd: "lang", type: "button", "aria-expanded": "false", "aria-controls": "chatd-langs", title: LANG_PICK },
                   [langText, el("span", { "class": "sr", text: " – " + LANG_PICK })]);
  var minBtn = el("button", { "class": "min", chatd: "minimize", type: "button" }, [el("span", { "aria-hidden": "true", text: "—" })]);
  tx(minBtn, "minimize", "aria-label"); tx(minBtn, "minimize", "title");
  var titleEl = tx(el("h2", { id: "chatd-title" }), "title");
  var header = el("header", {}, [titleEl, exitBtn, langBtn, minBtn]);

  var langsBox = el("div", { "class": "langs", id: "chatd-langs", role: "group", "aria-label": LANG_PICK, hidden: "" });
  LANGS.forEach(function (l) {
    var b = el("button", { type: "button", chatd: "lang-option", "data-lang": l, lang: HTML_LANG[l] || l, text: LANG_NAMES[l] });
    b.addEventListener("click", function () { setLanguage(l, true); langsBox.hidden = true; langBtn.setAttribute("aria-expanded", "false"); langBtn.focus(); });
    langsBox.appendChild(b);
  });
  langsBox.addEventListener("keydown", function (e) {
    if (e.key !== "Escape") return;
    langsBox.hidden = true; langBtn.setAttribute("aria-expanded", "false"); langBtn.focus();
  });
  langBtn.addEventListener("click", function () {
    langsBox.hidden = !langsBox.hidden;
    langBtn.setAttribute("aria-expanded", String(!langsBox.hidden));
    if (!langsBox.hidden) (langsBox.querySelector("[aria-pressed=true]") || langsBox.firstChild).focus();
  });

  var foldBtn = el("button", { "class": "fold", chatd: "notice-toggle", type: "button", "aria-expanded": "false", "aria-controls": "chatd-notice", hidden: "" });
  tx(foldBtn, "noticeShort");
  var endBtn = el("button", { chatd: "end", type: "button", hidden: "" });
  tx(endBtn, "endShort"); tx(endBtn, "end", "aria-label"); tx(endBtn, "end", "title");
  var bar = el("div", { "class": "bar", hidden: "" }, [foldBtn, endBtn]);
  var notice = tx(el("p", { "class": "notice", id: "chatd-notice", chatd: "notice" }), "notice", "rich");
  var confirmBox = el("div", { "class": "confirm", role: "group", hidden: "" });

  var netEl = el("span", { "class": "net", chatd: "network", hidden: "" });
  tx(netEl, "offline");
  var mainStatus = el("span", {});
  var statusEl = el("div", { "class": "status empty", chatd: "status", role: "status", "aria-live": "polite" }, [netEl, mainStatus]);

  var topicsBox = el("div", { "class": "topics", role: "group", "aria-labelledby": "chatd-choose" });
  var chooseEl = tx(el("p", { id: "chatd-choose" }), "chooseTopic");
  var codeToggle = el("button", { "class": "linkish", type: "button", "aria-expanded": "false", "aria-controls": "chatd-code-entry" });
  tx(codeToggle, "haveCode");
  var codeInput = el("input", { chatd: "code-input", id: "chatd-code-input", type: "text", autocomplete: "off",
                                autocapitalize: "characters", spellcheck: "false", maxlength: "40",
                                "aria-describedby": "chatd-code-hint" });
  var codeErr = el("p", { "class": "err", role: "alert" });
  var codeSubmit = el("button", { "class": "main", type: "submit" });
  tx(codeSubmit, "codeSubmit");
  var codeEntry = el("form", { "class": "code-entry", id: "chatd-code-entry", hidden: "" }, [
    tx(el("label", { "for": "chatd-code-input" }), "codeLabel"),
    tx(el("p", { "class": "hint", id: "chatd-code-hint" }), "codeHint"),
    codeInput, codeSubmit, codeErr
  ]);
  var privacyEl = tx(el("p", { "class": "privacy", chatd: "privacy" }), function () { return T.privacy(retentionDays(), T.quickExit); });
  var topicsPart = el("div", { "class": "intro" }, [chooseEl, topicsBox, codeToggle, codeEntry]);
  var chosenEl = tx(el("p", { "class": "chosen" }), function () {
    var t = topicById(state.topic);
    return T.topicIs + (t ? topicLabel(t) : state.topic || "");
  });
  var changeBtn = el("button", { "class": "linkish", type: "button" });
  tx(changeBtn, "changeTopic");
  changeBtn.addEventListener("click", function () {
    setPhase("topics");
    var b = topicsBox.querySelector("[data-topic='" + state.topic + "']") || topicsBox.querySelector("button");
    if (b) b.focus();
  });
  var promptEl = tx(el("p", { id: "chatd-prompt" }), "firstPrompt");
  var composePart = el("div", { "class": "intro" }, [chosenEl, changeBtn, promptEl]);
  var intro = el("div", { "class": "intro" }, [topicsPart, composePart, privacyEl]);

  var thread = el("div", { "class": "thread", role: "log", "aria-live": "polite" });
  tx(thread, "title", "aria-label");
  var chips = el("div", { "class": "chips", hidden: "" });
  var cards = el("div", { "class": "intro" });  // nobody available, the resume code
  var after = el("div", { "class": "after", hidden: "" });
  var typingEl = el("div", { "class": "typing", "aria-live": "polite" });
  var body = el("div", { "class": "body", chatd: "conversation", tabindex: "0" }, [intro, thread, chips, cards, after, typingEl]);
  tx(body, "title", "aria-label");

  var input = el("textarea", { chatd: "input", id: "chatd-input", rows: "1", maxlength: "4000" });
  tx(input, "inputLabel", "aria-label");
  var sendBtn = el("button", { "class": "primary", chatd: "send", type: "submit" });
  tx(sendBtn, "send");
  // Photos: a button (camera or gallery on phones), paste and drag-and-drop; a preview to
  // confirm or cancel; the upload retried after a network loss; then one `send` (its cid makes
  // a resend harmless). Images live only as in-memory blobs: nothing is written to the device.
  var fileInput = el("input", { type: "file", accept: "image/*", "class": "sr", tabindex: "-1", "aria-hidden": "true" });
  var attachBtn = el("button", { "class": "attach", chatd: "attach", type: "button", hidden: "" },
                     [el("span", { "aria-hidden": "true", "class": "clip" })]);
  tx(attachBtn, "attach", "aria-label"); tx(attachBtn, "attach", "title");
  var previewImg = el("img", { alt: "" });
  var previewText = tx(el("p", {}), "photoReady");
  var progress = el("progress", { chatd: "attach-progress", max: "100", value: "0", hidden: "" });
  var photoMsg = el("p", { "class": "err", role: "status" });
  var photoSend = el("button", { "class": "primary", chatd: "attach-send", type: "button" });
  tx(photoSend, "photoSend");
  var photoCancel = el("button", { chatd: "attach-cancel", type: "button" });
  tx(photoCancel, "photoCancel");
  var preview = el("div", { "class": "preview", chatd: "attach-preview", hidden: "" },
                   [previewText, previewImg, progress, photoMsg, el("div", { "class": "row" }, [photoSend, photoCancel])]);
  var lightImg = el("img", { alt: "" });
  var lightClose = el("button", { type: "button", chatd: "photo-close" });
  tx(lightClose, "photoClose");
  var lightbox = el("div", { "class": "lightbox", chatd: "photo-full", role: "group", hidden: "" }, [lightImg, lightClose]);
  var form = el("form", { "class": "compose", hidden: "" }, [attachBtn, fileInput, input, sendBtn]);
  var panel = el("section", { "class": "panel", chatd: "panel", role: "dialog", "aria-modal": "false", "aria-labelledby": "chatd-title", hidden: "" }, [
    header, langsBox, bar, notice, confirmBox, exitHint, statusEl, body, preview, form, lightbox
  ]);
  root.appendChild(dock);
  root.appendChild(panel);

  function renderChips() {
    chips.textContent = "";
    T.quick.forEach(function (q) {
      var b = el("button", { type: "button", text: q });
      b.addEventListener("click", function () { submit(q); });
      chips.appendChild(b);
    });
  }
  renderChips();

  // A phone's keyboard shrinks the visual viewport, not always the layout one: follow it.
  if (window.visualViewport) {
    var fit = function () { host.style.setProperty("--chatd-vh", window.visualViewport.height + "px"); };
    window.visualViewport.addEventListener("resize", fit);
    fit();
  }

  // ---- the emergency notice: in full until it has been seen, then one line, one tap away ----
  function renderNotice() {
    var folded = state.noticeSeen && foldBtn.getAttribute("aria-expanded") !== "true";
    foldBtn.hidden = !state.noticeSeen;
    notice.hidden = folded;
    bar.hidden = foldBtn.hidden && endBtn.hidden;
  }
  function noticeSeen() {
    if (state.noticeSeen) return;
    state.noticeSeen = true; save("noticeSeen", true);
    renderNotice();
  }
  foldBtn.addEventListener("click", function () {
    foldBtn.setAttribute("aria-expanded", String(foldBtn.getAttribute("aria-expanded") !== "true"));
    renderNotice();
  });

  // ---- confirmations (ending, saving a file on this device) ----
  var confirming = null;
  function ask(box, question, yes, no, onYes, back) {
    box.textContent = "";
    var y = el("button", { "class": "yes", type: "button", text: yes });
    var n = el("button", { type: "button", text: no });
    box.appendChild(el("p", { text: question }));
    box.appendChild(y); box.appendChild(n);
    box.setAttribute("aria-label", question);
    box.hidden = false;
    var done = function () { box.hidden = true; box.textContent = ""; confirming = null; if (back && back.isConnected) back.focus(); };
    confirming = done;
    y.addEventListener("click", function () { done(); onYes(); });
    n.addEventListener("click", done);
    n.focus();  // the safe answer has the focus
  }
  confirmBox.addEventListener("keydown", function (e) { if (e.key === "Escape" && confirming) confirming(); });

  // ---- rendering ----
  var rendered = {};  // seq -> element
  var pendingEls = {};  // cid -> element (outbox)
  var linkRe = /(https:\/\/[^\s<>"']+)/g;

  function setText(node, text) {
    // Text only; https links become real links built with DOM calls, never innerHTML.
    var last = 0, m;
    linkRe.lastIndex = 0;
    while ((m = linkRe.exec(text)) !== null) {
      if (m.index > last) node.appendChild(document.createTextNode(text.slice(last, m.index)));
      var a = document.createElement("a");
      a.href = m[1]; a.textContent = m[1]; a.target = "_blank"; a.rel = "noopener noreferrer";
      node.appendChild(a);
      last = m.index + m[1].length;
    }
    if (last < text.length) node.appendChild(document.createTextNode(text.slice(last)));
  }

  function whoLabel(from) { return from === "visitor" ? T.you : from === "agent" ? T.agent : T.system; }

  function messageEl(from, text, ts, attachment) {
    var n = el("div", { "class": "msg", chatd: "message", "data-from": from });
    n.appendChild(el("span", { "class": "sr who", text: whoLabel(from) + " : " }));
    if (attachment) n.appendChild(photoEl(attachment));
    setText(n, text || "");
    n.appendChild(el("span", { "class": "mark" }));
    n._ts = ts;
    n._mark = "";
    renderMark(n);
    return n;
  }

  function fmtTime(ts) {
    var d = new Date(ts), today = new Date(now());
    var o = { hour: "2-digit", minute: "2-digit" };
    if (d.toDateString() !== today.toDateString()) { o.day = "numeric"; o.month = "short"; }
    try { return new Intl.DateTimeFormat(LOCALES[lang], o).format(d); } catch (e) { return d.toLocaleTimeString(); }
  }

  function renderMark(n) {
    var m = n.querySelector(".mark");
    m.textContent = "";
    var t = el("time", { datetime: new Date(n._ts).toISOString(), text: fmtTime(n._ts) });
    m.appendChild(t);
    if (n._mark) m.appendChild(document.createTextNode(" · " + T[n._mark]));
  }
  function mark(n, key) { n._mark = key; renderMark(n); }

  var pinned = null;  // a card to keep in view rather than the last message
  function scrollDown() {
    if (pinned && pinned.isConnected) body.scrollTop = Math.max(0, pinned.offsetTop - body.offsetTop - 8);
    else body.scrollTop = body.scrollHeight;
  }

  function showMsg(f) {
    if (f.seq <= state.lastSeq || rendered[f.seq]) return;  // exactly once, whatever resends
    var ts = typeof f.ts === "number" ? f.ts : now();
    var n = pendingEls[f.cid];
    if (n && f.from === "visitor") {
      delete pendingEls[f.cid];
      n.removeAttribute("data-pending");
      n._ts = ts;
      var old = n.querySelector(".photo");  // the server's copy from now on (its thumbnail, its full size)
      if (old && f.attachment) {
        n.replaceChild(photoEl(Object.assign({ local: localPhotos[f.attachment.id] }, f.attachment)), old);
      }
    } else {
      n = messageEl(f.from, f.text, ts, f.attachment);
      thread.appendChild(n);
    }
    n.setAttribute("data-seq", String(f.seq));
    if (f.from === "visitor") mark(n, state.agentRead >= f.seq ? "read" : "sent");
    else renderMark(n);
    rendered[f.seq] = n;
    state.lastSeq = f.seq;
    transcript.push({ seq: f.seq, from: f.from, text: (f.attachment ? "[" + T.photo + "] " : "") + (f.text || ""), ts: ts,
                      name: f.from === "agent" ? state.agentName : "" });
    scrollDown();
    if (f.from === "agent") {
      typingEl.textContent = "";
      if (panel.hidden) { state.unread++; renderBadge(true); }
      sendRead();
    }
    emit("message", { from: f.from, text: f.text || "", seq: f.seq, photo: !!f.attachment });
  }
  var transcript = [];

  function showPending(item) {
    var n = messageEl("visitor", item.text, item.ts || now(), item.attachment ? { id: item.attachment, local: localPhotos[item.attachment] } : null);
    n.setAttribute("data-pending", "");
    mark(n, "pending");
    pendingEls[item.cid] = n;
    thread.appendChild(n);
    scrollDown();
  }

  // A minimised panel says a reply came: a count on the launcher, and a word for screen readers.
  function renderBadge(announce) {
    badge.hidden = state.unread === 0;
    badge.textContent = String(state.unread);
    badgeSr.textContent = state.unread ? " – " + T.newMessages(state.unread) : "";
    if (announce) dockLive.textContent = T.newMessages(state.unread);
  }

  // The status line is kept as what it says, so that a new language says it again.
  var statusOf = { key: "", args: [] };
  function setStatus(key) {
    statusOf = { key: key || "", args: Array.prototype.slice.call(arguments, 1) };
    renderStatus();
  }
  function renderStatus() {
    var v = statusOf.key ? T[statusOf.key] : "";
    var text = typeof v === "function" ? v.apply(null, statusOf.args) : (v || "");
    mainStatus.textContent = text;
    statusEl.classList.toggle("empty", !text && netEl.hidden);
    emit("status", (netEl.hidden ? "" : T.offline + " ") + text);
  }
  function setNet(lost) {
    netEl.hidden = !lost;
    renderStatus();
  }
  function statusAssigned() {
    if (state.agentName) setStatus("assignedTo", state.agentName); else setStatus("assigned");
  }

  function setPhase(p) {
    state.phase = p;
    intro.hidden = !(p === "topics" || p === "compose");
    topicsPart.hidden = p !== "topics";
    composePart.hidden = p !== "compose";
    if (p === "compose") input.setAttribute("aria-describedby", "chatd-prompt");
    else input.removeAttribute("aria-describedby");
    form.hidden = !(p === "compose" || p === "waiting" || p === "chat");
    attachBtn.hidden = !(p === "waiting" || p === "chat");
    if (attachBtn.hidden) cancelPhoto();
    chips.hidden = !(p === "waiting" || p === "chat");
    endBtn.hidden = !(p === "waiting" || p === "chat");
    after.hidden = p !== "closed";
    if (p !== "topics") noticeSeen();
    renderNotice();
    if (endBtn.hidden && confirming) confirming();
    renderPlaceholder();
    if (p === "waiting" || p === "chat") document.title = T.neutralTitle;
    else if (savedTitle !== null) document.title = savedTitle;
    renderCards();
  }
  function renderPlaceholder() { input.placeholder = T.inputLabel; }
  var savedTitle = document.title;

  // ---- topics ----
  function topicLabel(t) {
    var l = t.label || {};
    return (typeof l === "string" ? l : l[lang] || (lang === "fr-falc" ? l.fr : null) || l.fr || l.en) || t.id;
  }
  function topicById(id) { return topicList.filter(function (t) { return t.id === id; })[0]; }
  function retentionDays() {
    var t = topicById(state.topic);
    var d = (t && +t.retention_days) || +opts.retentionDays || 30;
    return Math.round(d * 10) / 10;
  }
  function renderTopics() {
    var only = (opts.topics || "").split(",").map(function (s) { return s.trim(); }).filter(Boolean);
    var hadFocus = root.activeElement && root.activeElement.parentNode === topicsBox;
    topicsBox.textContent = "";
    topicList.filter(function (t) { return !only.length || only.indexOf(t.id) >= 0; })
      .sort(function (a, b) { return a.id === "general" ? 1 : b.id === "general" ? -1 : 0; })
      .forEach(function (t) {
        var b = el("button", { type: "button", chatd: "topic", "data-topic": t.id, text: topicLabel(t) });
        b.addEventListener("click", function () {
          state.topic = t.id; save("topic", t.id);
          applyTexts();  // the privacy notice (a topic may keep chats longer) and the topic named
          setPhase("compose");
          input.focus();
        });
        topicsBox.appendChild(b);
      });
    if (hadFocus && topicsBox.firstChild) topicsBox.firstChild.focus();
  }
  function loadTopics() {
    fetch(new URL("/api/topics", base).href, { credentials: "omit" })
      .then(function (r) { return r.json(); })
      .then(function (list) {
        topicList = Array.isArray(list) ? list : [];
        topicsLoaded = true;
        renderTopics();
        applyTexts();
        renderCards();
        // keyboard users land on the first choice as soon as there is one
        if (!panel.hidden && state.phase === "topics" && !root.activeElement) {
          var first = topicsBox.querySelector("button");
          if (first) first.focus();
        }
      })
      .catch(function () { setNet(true); setTimeout(loadTopics, 3000); });
  }
  var topicsLoaded = false;
  var suggestions = [];  // shared answers that may help while waiting (never stored)

  // ---- when nobody can answer now: other ways to get help, and answers later ----
  var leaveBtn = el("button", { "class": "main", chatd: "leave", type: "button" });
  var shownCode = null;  // shown once, never stored
  function alternatives() {
    var t = topicById(state.topic);
    var extra = t && Array.isArray(t.alternatives) ? t.alternatives : (BY_TOPIC[state.topic] || []);
    return ALWAYS.concat(extra);
  }
  function altItem(a) {
    var label = a.key ? T[a.key] : typeof a.label === "string" ? a.label
      : (a.label && (a.label[lang] || a.label.fr || a.label.en)) || "";
    var href = null;
    if (a.tel && /^[0-9+ ]{2,20}$/.test(a.tel)) href = "tel:" + a.tel.replace(/ /g, "");
    else if (a.sms && /^[0-9+ ]{2,20}$/.test(a.sms)) href = "sms:" + a.sms.replace(/ /g, "");
    else if (a.url && /^https:\/\//.test(a.url)) href = a.url;
    if (!label) return null;
    var li = el("li", {});
    if (href) {
      var link = el("a", { href: href, text: label });
      if (/^https:/.test(href)) { link.target = "_blank"; link.rel = "noopener noreferrer"; }
      li.appendChild(link);
    } else li.appendChild(document.createTextNode(label));
    return li;
  }
  var cardsShown = "";
  function renderCards() {
    var waiting = state.phase === "waiting";
    var unavailable = waiting && !state.available && !state.left;
    var longWait = waiting && state.available && state.suggestLeave && !state.left;
    var withCode = !!shownCode && (waiting || state.phase === "chat");
    // rebuilt only when what they say changes: a new queue position keeps the focus where it is
    var what = [unavailable, withCode, lang, state.topic, topicList.length, longWait,
                suggestions.length].join("|");
    if (what === cardsShown) return;
    var appeared = unavailable && cardsShown.indexOf("true|") !== 0;
    cardsShown = what;
    cards.textContent = "";
    if (unavailable) {
      var list = el("ul", {});
      alternatives().forEach(function (a) { var li = altItem(a); if (li) list.appendChild(li); });
      leaveBtn.textContent = T.leave;
      cards.appendChild(el("div", { "class": "card", chatd: "unavailable", role: "region", "aria-label": T.unavailable }, [
        el("p", { text: T.altTitle }), list,
        el("p", { "class": "hint", text: T.leaveHint }), leaveBtn
      ]));
    }
    if (longWait) {
      leaveBtn.textContent = T.leave;
      cards.appendChild(el("div", { "class": "card", chatd: "long-wait", role: "region", "aria-label": T.leave }, [
        el("p", { text: T.longWait }), leaveBtn
      ]));
    }
    if (waiting && suggestions.length && !state.left) {
      var items = el("ul", { "class": "suggested" });
      suggestions.forEach(function (a) {
        var d = el("details", {}, [el("summary", { text: a.title }), el("p", { text: a.text })]);
        items.appendChild(el("li", {}, [d]));
      });
      cards.appendChild(el("div", { "class": "card", chatd: "suggestions", role: "region", "aria-label": T.suggestTitle }, [
        el("p", { text: T.suggestTitle }), items
      ]));
    }
    pinned = unavailable ? cards.firstChild : null;  // its top in view: other ways to get help come first
    if (appeared) scrollDown();
    if (withCode) {
      var codeEl = el("p", { "class": "code", chatd: "code", tabindex: "-1", text: shownCode.code });
      var copyBtn = el("button", { type: "button", text: T.copy });
      var copied = el("p", { "class": "hint", role: "status" });
      copyBtn.addEventListener("click", function () { copyCode(codeEl, copied); });
      cards.appendChild(el("div", { "class": "card", role: "region", "aria-label": T.codeTitle }, [
        el("p", { text: T.codeTitle }), codeEl,
        el("p", { text: T.codeWords(shownCode.hours) }), copyBtn, copied
      ]));
    }
  }
  function copyCode(codeEl, out) {
    var manual = function () {
      var r = document.createRange();
      r.selectNodeContents(codeEl);
      var s = window.getSelection();
      s.removeAllRanges(); s.addRange(r);
      out.textContent = T.copyManual;
    };
    try {
      navigator.clipboard.writeText(codeEl.textContent).then(function () { out.textContent = T.copied; }, manual);
    } catch (e) { manual(); }
  }
  leaveBtn.addEventListener("click", function () {
    if (!state.session || leaveBtn.disabled) return;
    if (send({ type: "leave", session: state.session })) leaveBtn.disabled = true;
  });

  // ---- "I have a code": a returning visitor, on a new connection ----
  codeToggle.addEventListener("click", function () {
    codeEntry.hidden = !codeEntry.hidden;
    codeToggle.setAttribute("aria-expanded", String(!codeEntry.hidden));
    if (!codeEntry.hidden) codeInput.focus();
  });
  codeEntry.addEventListener("submit", function (e) {
    e.preventDefault();
    var code = codeInput.value.toUpperCase().replace(/\s+/g, "");
    if (code.length < 4) { codeErr.textContent = T.codeWrong; codeInput.focus(); return; }
    codeErr.textContent = T.checking;
    state.pendingCode = code;
    drop();
    clearTimeout(retryTimer);
    connect();
  });

  // ---- connection ----
  var ws = null, backoff = 500, pingTimer = null, retryTimer = null, connected = false, firstHello = true;
  var awaiting = false, missed = 0;

  function connect() {
    if (ws) return;
    if (!statusOf.key && state.phase !== "topics") setStatus("connecting");
    var sock;
    try { sock = new WebSocket(wsUrl, ["chatd.v1.json"]); } catch (e) { return retry(); }
    ws = sock;
    sock.onopen = function () {
      var hello = { type: "hello", lang: lang };
      if (state.pendingCode) {
        hello.code = state.pendingCode;  // the only way back to a chat left for later
      } else {
        if (state.token) hello.token = state.token;
        // a fresh page replays the whole chat; a reconnect only what this page has not shown
        if (state.session) hello.resume = { session: state.session, after: firstHello ? 0 : state.lastSeq };
      }
      sock.send(JSON.stringify(hello));
    };
    sock.onmessage = function (ev) {
      awaiting = false; missed = 0;  // any frame says the link is alive
      var f;
      try { f = JSON.parse(ev.data); } catch (e) { return; }
      handle(f);
    };
    sock.onclose = function () {
      if (ws !== sock) return;
      ws = null; connected = false;
      clearInterval(pingTimer);
      if (state.pendingCode) { codeFailed("codeWrong"); }
      if (state.phase !== "closed" && !exiting) { setNet(true); retry(); }
    };
    sock.onerror = function () { /* onclose follows */ };
  }

  // Lets a socket go without waiting for it to say goodbye (a dead network never does).
  function drop() {
    var sock = ws;
    ws = null; connected = false;
    clearInterval(pingTimer);
    if (!sock) return;
    sock.onopen = sock.onmessage = sock.onerror = sock.onclose = null;
    try { sock.close(); } catch (e) { /* already gone */ }
  }

  function retry() {
    var wait = backoff * (0.75 + Math.random() / 2);
    backoff = Math.min(backoff * 2, 10000);
    clearTimeout(retryTimer);
    retryTimer = setTimeout(connect, wait);
  }

  function tick() {
    if (awaiting) missed++;
    if (missed >= 2) {  // two pings and not a frame: the link is silent, say so and start again
      setNet(true);
      drop();
      retry();
      return;
    }
    awaiting = true;
    send({ type: "ping" });
  }

  window.addEventListener("offline", function () {
    if (exiting) return;
    setNet(true);  // at once: the socket itself may take minutes to notice
    if (ws) { drop(); retry(); }
  });
  window.addEventListener("online", function () {
    if (exiting || state.phase === "closed" && !ws) return;
    clearTimeout(retryTimer);
    backoff = 500;
    drop();
    if (panel.hidden && !state.session) return;
    connect();
  });

  function sendFrame(item) {
    var f = { type: "send", session: state.session, cid: item.cid };
    if (item.text) f.text = item.text;
    if (item.attachment) f.attachment = item.attachment;
    return f;
  }
  function send(frame) {
    if (ws && connected && ws.readyState === 1) { ws.send(JSON.stringify(frame)); return true; }
    return false;
  }

  function flushOutbox() {
    if (!state.session) return;
    state.outbox.forEach(function (item) { send(sendFrame(item)); });
  }

  function codeFailed(key) {
    state.pendingCode = null;
    codeErr.textContent = T[key];
    codeInput.focus();
  }

  function adopt(s) {  // the chat a code leads back to: shown from its first message
    state.session = s.session; save("session", s.session);
    state.topic = s.topic || state.topic; save("topic", state.topic);
    state.left = true; save("left", true);
    state.lastSeq = 0; rendered = {}; transcript = [];
    thread.textContent = "";
    codeEntry.hidden = true; codeInput.value = ""; codeErr.textContent = "";
  }

  function handle(f) {
    switch (f.type) {
      case "welcome":
        connected = true; backoff = 500;
        state.token = f.token; save("token", f.token);
        if (typeof f.server_time === "number") state.skew = f.server_time - Date.now();
        clearInterval(pingTimer);
        awaiting = false; missed = 0;
        pingTimer = setInterval(tick, PING_MS);
        setNet(false);
        var sessions = f.sessions || [];
        if (state.pendingCode) {
          state.pendingCode = null;
          var back = sessions[0];
          if (!back) { codeFailed("codeWrong"); firstHello = false; break; }
          adopt(back);
          firstHello = false;
          if (back.state === "closed") { onClosed(); break; }
          setPhase(back.state === "active" ? "chat" : "waiting");
          if (back.state === "active") statusAssigned(); else setStatus("left");
          break;
        }
        var openOne = sessions.filter(function (s) { return s.state !== "closed"; })[0];
        if (!state.session && openOne) {  // a start whose answer was lost: that chat is ours
          state.session = openOne.session; save("session", openOne.session);
          state.pendingStart = null; save("start", null);
        }
        var mine = sessions.filter(function (s) { return s.session === state.session; })[0];
        if (mine && mine.topic && !state.topic) { state.topic = mine.topic; save("topic", mine.topic); }
        if (state.session && (!mine || mine.state === "closed")) {
          if (!mine) { state.session = null; save("session", null); setPhase("topics"); setStatus(""); }
          else { onClosed(); }
        } else if (mine) {
          setPhase(mine.state === "active" ? "chat" : "waiting");
          if (mine.state === "active") statusAssigned();
          else if (state.left) setStatus("left");
          else if (statusOf.key === "connecting") setStatus("");
        } else if (state.pendingStart) {
          send(state.pendingStart);
        } else if (statusOf.key === "connecting") {
          setStatus("");
        }
        firstHello = false;
        flushOutbox();
        break;
      case "queued":
        if (!state.session || state.session !== f.session) {
          state.session = f.session; save("session", f.session);
          state.pendingStart = null; save("start", null);
          suggestions = [];
        }
        // nobody who could take this topic is signed in and available now
        state.available = !(f.available === false || f.eta_s === null);
        state.suggestLeave = !!f.suggest_leave;  // a surge: answering later is offered first
        if (state.left) setStatus("left");
        else if (!state.available) setStatus("unavailable");
        else setStatus("queued", f.position, f.eta_s);
        setPhase("waiting");
        early.splice(0).forEach(function (m) { if (m.session === state.session) showMsg(m); });
        break;
      case "assigned":
        if (f.session !== state.session) break;
        state.agentName = f.agent_name || ""; save("agentName", state.agentName);
        state.available = true;
        setPhase("chat");
        statusAssigned();  // after a transfer, the new gendarme's name
        break;
      case "suggestions":
        if (f.session !== state.session || !Array.isArray(f.items)) break;
        suggestions = f.items.slice(0, 3).filter(function (a) { return a && a.title && a.text; });
        renderCards();
        break;
      case "left":
        if (f.session !== state.session) break;
        state.left = true; save("left", true);
        shownCode = { code: String(f.code || ""), hours: f.expires_in_s ? Math.round(f.expires_in_s / 3600) : CODE_TTL_H };
        leaveBtn.disabled = false;
        setStatus("left");
        renderCards();
        var c = cards.querySelector("[data-chatd=code]");
        if (c) { c.scrollIntoView({ block: "nearest" }); c.focus(); }
        break;
      case "msg":
        if (f.session === state.session) showMsg(f);
        else if (!state.session) early.push(f);  // seq 1 comes before `queued` names the chat
        break;
      case "ack":
        state.outbox = state.outbox.filter(function (i) { return i.cid !== f.cid; });
        save("outbox", state.outbox);
        break;
      case "typing":
        typingEl.textContent = f.on ? T.typing : "";
        break;
      case "read":
        state.agentRead = Math.max(state.agentRead, f.seq);
        Object.keys(rendered).forEach(function (s) {
          var n = rendered[s];
          if (+s <= state.agentRead && n.getAttribute("data-from") === "visitor") mark(n, "read");
        });
        break;
      case "closed":
        if (f.session === state.session) onClosed();
        break;
      case "rated":
        after.textContent = ""; after.appendChild(el("p", { text: T.thanks })); after.appendChild(afterButtons());
        break;
      case "error":
        if (f.ref === "hello" && state.pendingCode) {
          if (f.code === CODES.ErrorCode.RATE_LIMITED) codeFailed("codeSlow");
          else if (f.code === CODES.ErrorCode.NOT_FOUND) codeFailed("codeWrong");
        } else if (f.ref === "leave") { leaveBtn.disabled = false; setStatus("error"); }
        else if (f.code === CODES.ErrorCode.CONFLICT && state.pendingStart) { state.pendingStart = null; setStatus("busy"); }
        else if (f.code === CODES.ErrorCode.TOO_LARGE) setStatus("tooLong");
        else if (f.code === CODES.ErrorCode.RATE_LIMITED) setStatus("slow");
        else if (f.code === CODES.ErrorCode.UNAVAILABLE) { /* the outbox resends on reconnect */ }
        break;
    }
  }

  function onClosed() {
    setPhase("closed");
    setStatus("closed");
    typingEl.textContent = "";
    emit("closed", { session: state.session });
    renderAfter();
  }

  function afterButtons() {
    var box = el("div", { "class": "row" });
    var dl = el("button", { type: "button", text: T.download });
    var dlAsk = el("div", { "class": "confirm", role: "group", hidden: "" });
    dl.addEventListener("click", function () {
      ask(dlAsk, T.downloadConfirm, T.downloadYes, T.cancel, downloadTranscript, dl);
    });
    var again = el("button", { type: "button", text: T.restart });
    again.addEventListener("click", function () {
      state.session = null; save("session", null); state.outbox = []; save("outbox", []);
      state.left = false; save("left", false); state.agentName = ""; save("agentName", "");
      state.lastSeq = 0; rendered = {}; transcript = []; shownCode = null; state.available = true;
      thread.textContent = ""; setPhase("topics"); setStatus("");
      var first = topicsBox.querySelector("button");
      if (first) first.focus();
    });
    box.appendChild(dl); box.appendChild(again);
    var wrap = el("div", {}, [box, dlAsk]);
    return wrap;
  }

  function renderAfter() {
    after.textContent = "";
    var fs = el("fieldset", { "class": "stars" }, [el("legend", { text: T.rateTitle })]);
    for (var i = 1; i <= 5; i++) {
      var id = "chatd-star-" + i;
      fs.appendChild(el("input", { type: "radio", name: "rating", value: String(i), id: id }));
      fs.appendChild(el("label", { "for": id, text: T.rateLabel(i) }));
    }
    var comment = el("textarea", { rows: "2", maxlength: "1000", "aria-label": T.comment, placeholder: T.comment });
    var ok = el("button", { type: "button", text: T.rateSend });
    ok.addEventListener("click", function () {
      var checked = fs.querySelector("input:checked");
      if (!checked) return;
      var fr = { type: "rate", session: state.session, rating: +checked.value };
      if (comment.value.trim()) fr.comment = comment.value.trim().slice(0, 1000);
      send(fr);
    });
    after.appendChild(fs); after.appendChild(comment);
    after.appendChild(el("div", { "class": "row" }, [ok]));
    after.appendChild(afterButtons());
  }

  function downloadTranscript() {
    var lines = transcript.map(function (m) {
      var who = whoLabel(m.from) + (m.name ? " (" + m.name + ")" : "");
      return "[" + new Date(m.ts).toLocaleString(LOCALES[lang]) + "] " + who + " : " + m.text;
    });
    var blob = new Blob([T.title + "\n\n" + lines.join("\n") + "\n"], { type: "text/plain;charset=utf-8" });
    var a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = "conversation-gendarmerie.txt";
    root.appendChild(a); a.click(); a.remove();
    setTimeout(function () { URL.revokeObjectURL(a.href); }, 1000);
  }

  // ---- sending ----
  function newCid() {
    var b = new Uint8Array(9);
    crypto.getRandomValues(b);
    return "w" + Array.prototype.map.call(b, function (x) { return ("0" + x.toString(16)).slice(-2); }).join("");
  }

  function submit(text) {
    text = (text || "").trim();
    if (!text) return;
    if (Array.from(text).length > 4000) { setStatus("tooLong"); return; }
    if (!state.session) {
      if (!state.topic) return;
      var start = { type: "start", topic: state.topic, lang: lang, text: text };
      state.pendingStart = start; save("start", start);
      setPhase("waiting");
      if (!send(start)) connect();
      return;
    }
    var item = { cid: newCid(), text: text, ts: now() };
    state.outbox.push(item); save("outbox", state.outbox);
    showPending(item);
    send({ type: "send", session: state.session, cid: item.cid, text: text });
  }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var text = input.value;
    input.value = "";
    grow();
    submit(text);
    stopTyping();
  });
  input.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); form.requestSubmit ? form.requestSubmit() : sendBtn.click(); }
  });
  var typingOn = false, typingTimer = null;
  function stopTyping() {
    if (typingOn && state.session) send({ type: "typing", session: state.session, on: false });
    typingOn = false;
  }
  function grow() {
    input.style.height = "auto";  // CSSOM, allowed under a strict style-src
    input.style.height = Math.max(input.scrollHeight + 2, 0) + "px";
  }
  input.addEventListener("input", grow);
  input.addEventListener("input", function () {
    if (!state.session || state.phase !== "chat") return;
    if (!typingOn) { typingOn = true; send({ type: "typing", session: state.session, on: true }); }
    clearTimeout(typingTimer);
    typingTimer = setTimeout(stopTyping, 3000);
  });
  function sendRead() {
    if (state.session && !panel.hidden && document.visibilityState === "visible") {
      send({ type: "read", session: state.session, seq: state.lastSeq });
    }
  }
  document.addEventListener("visibilitychange", sendRead);

  endBtn.addEventListener("click", function () {
    if (!state.session) return;
    ask(confirmBox, T.endConfirm, T.endYes, T.endNo, function () {
      if (state.session) send({ type: "close", session: state.session });
    }, endBtn);
  });

  // ---- photos ----
  var blobs = {};  // url -> promise of an object URL (fetched with the token: never cached on disk)
  var localPhotos = {};  // upload id -> object URL of the file this page sent
  var photo = null;  // {file, local, tries, xhr, timer}
  function fetchBlob(url) {
    if (!blobs[url]) {
      blobs[url] = fetch(new URL(url, base).href, { headers: { Authorization: "Bearer " + state.token },
                                                   credentials: "omit", cache: "no-store" })
        .then(function (r) { if (!r.ok) throw new Error(String(r.status)); return r.blob(); })
        .then(function (b) { return URL.createObjectURL(b); });
      blobs[url].catch(function () { delete blobs[url]; });
    }
    return blobs[url];
  }
  function photoEl(att) {
    var img = el("img", { alt: T.photo });
    img.addEventListener("load", function () {  // taller once loaded: keep the end in view
      if (body.scrollHeight - body.scrollTop - body.clientHeight < img.clientHeight + 80) scrollDown();
    });
    var b = el("button", { type: "button", "class": "photo", chatd: "photo", title: T.photoOpen, "aria-label": T.photoOpen }, [img]);
    if (att.local) img.src = att.local;
    else if (att.thumb_url) fetchBlob(att.thumb_url).then(function (u) { img.src = u; }, function () { /* the alt says Photo */ });
    b.addEventListener("click", function () { openPhoto(att, b); });
    return b;
  }
  var lightBack = null;
  function openPhoto(att, from) {
    lightBack = from;
    lightImg.alt = T.photo;
    lightImg.removeAttribute("src");
    if (att.local || localPhotos[att.id]) lightImg.src = att.local || localPhotos[att.id];
    else if (att.url) fetchBlob(att.url).then(function (u) { lightImg.src = u; }, function () { /* alt */ });
    lightbox.hidden = false;
    lightClose.focus();
  }
  function closePhoto() {
    lightbox.hidden = true;
    if (lightBack && lightBack.isConnected) lightBack.focus();
  }
  lightClose.addEventListener("click", closePhoto);
  lightbox.addEventListener("keydown", function (e) { if (e.key === "Escape") { e.stopPropagation(); closePhoto(); } });

  function choosePhoto(file) {
    if (!file || !/^image\//.test(file.type || "image/")) return;
    if (!state.session) { setStatus("photoNoChat"); return; }
    cancelPhoto();
    photo = { file: file, local: URL.createObjectURL(file), tries: 0 };
    previewImg.src = photo.local;
    previewImg.alt = T.photo;
    photoMsg.textContent = "";
    progress.hidden = true;
    photoSend.disabled = false;
    preview.hidden = false;
    photoSend.focus();
  }
  function cancelPhoto() {
    if (!photo) return;
    if (photo.xhr) { try { photo.xhr.abort(); } catch (e) { /* done */ } }
    clearTimeout(photo.timer);
    if (!photo.sent) URL.revokeObjectURL(photo.local);
    photo = null;
    preview.hidden = true;
    previewImg.removeAttribute("src");
    fileInput.value = "";
  }
  var PHOTO_ERRORS = { 413: "photoTooBig", 415: "photoType", 422: "photoBad", 429: "photoTooMany" };
  function uploadPhoto() {
    var p = photo;
    if (!p || !state.session) return;
    photoSend.disabled = true;
    progress.hidden = false;
    progress.value = 0;
    photoMsg.textContent = T.photoUploading;
    var xhr = new XMLHttpRequest();
    p.xhr = xhr;
    xhr.open("POST", new URL("/api/uploads", base).href);
    xhr.setRequestHeader("Authorization", "Bearer " + state.token);
    xhr.upload.onprogress = function (e) { if (e.lengthComputable) progress.value = Math.round(100 * e.loaded / e.total); };
    var retry = function () {  // the network, or the server busy: again, later, until cancelled
      if (photo !== p) return;
      photoMsg.textContent = T.photoRetry;
      p.tries++;
      p.timer = setTimeout(uploadPhoto, Math.min(30000, 1000 * Math.pow(2, p.tries)));
    };
    xhr.onerror = retry;
    xhr.onload = function () {
      if (photo !== p) return;
      var data = {};
      try { data = JSON.parse(xhr.responseText); } catch (e) { /* no body */ }
      if (xhr.status === 201 && data.id) { sendPhoto(p, data); return; }
      if (xhr.status === 503 || xhr.status === 0) { retry(); return; }
      photoMsg.textContent = T[PHOTO_ERRORS[xhr.status]] || T.photoFailed;
      progress.hidden = true;
      photoSend.disabled = true;
    };
    var body = new FormData();
    body.append("session", state.session);
    body.append("file", p.file);
    xhr.send(body);
  }
  function sendPhoto(p, up) {
    p.sent = true;
    localPhotos[up.id] = p.local;
    var text = input.value.trim();
    if (Array.from(text).length > 4000) text = "";
    else { input.value = ""; grow(); }
    var item = { cid: newCid(), text: text, attachment: up.id, ts: now() };
    state.outbox.push(item); save("outbox", state.outbox);
    showPending(item);
    send(sendFrame(item));
    photo = null;
    preview.hidden = true;
    fileInput.value = "";
    input.focus();
  }
  attachBtn.addEventListener("click", function () { fileInput.click(); });
  fileInput.addEventListener("change", function () { choosePhoto(fileInput.files && fileInput.files[0]); });
  photoSend.addEventListener("click", uploadPhoto);
  photoCancel.addEventListener("click", function () { cancelPhoto(); input.focus(); });
  window.addEventListener("online", function () {
    if (photo && photo.timer) { clearTimeout(photo.timer); uploadPhoto(); }
  });
  input.addEventListener("paste", function (e) {
    var files = e.clipboardData && e.clipboardData.files;
    if (files && files.length && /^image\//.test(files[0].type)) { e.preventDefault(); choosePhoto(files[0]); }
  });
  panel.addEventListener("dragover", function (e) {
    if (state.session && e.dataTransfer && Array.prototype.indexOf.call(e.dataTransfer.types, "Files") !== -1) e.preventDefault();
  });
  panel.addEventListener("drop", function (e) {
    var files = e.dataTransfer && e.dataTransfer.files;
    if (files && files.length) { e.preventDefault(); choosePhoto(files[0]); }
  });
  function forgetPhotos() {
    cancelPhoto();
    Object.keys(blobs).forEach(function (u) { blobs[u].then(URL.revokeObjectURL, function () {}); });
    Object.keys(localPhotos).forEach(function (id) { URL.revokeObjectURL(localPhotos[id]); });
    blobs = {}; localPhotos = {};
  }

  // ---- languages ----
  function applyTexts() { texts.forEach(applyText); }
  function setLanguage(l, chosen) {
    l = pickLang(l);
    if (!l) return;
    lang = l; T = STRINGS[l];
    if (chosen !== false) save("lang", l);  // the person's (or host page's) choice, for this tab
    var htmlLang = HTML_LANG[l] || l;
    panel.setAttribute("lang", htmlLang); dock.setAttribute("lang", htmlLang);
    langText.textContent = LANG_SHORT[l];
    Array.prototype.forEach.call(langsBox.children, function (b) {
      b.setAttribute("aria-pressed", String(b.getAttribute("data-lang") === l));
    });
    applyTexts();
    renderTopics(); renderChips(); renderStatus(); renderBadge(false); renderPlaceholder(); renderCards();
    Array.prototype.forEach.call(thread.children, function (n) {
      var who = n.querySelector(".who");
      if (who) who.textContent = whoLabel(n.getAttribute("data-from")) + " : ";
      if (n._ts) renderMark(n);
    });
    if (state.phase === "closed" && !after.hidden) renderAfter();
    if (state.phase === "waiting" || state.phase === "chat") document.title = T.neutralTitle;
  }

  // ---- quick exit ----
  var exiting = false;
  function quickExit() {
    if (exiting) return;
    exiting = true;
    var sock = ws;
    if (state.session && sock && sock.readyState === 1) {
      try { sock.send(JSON.stringify({ type: "close", session: state.session, reason: "quick_exit" })); } catch (e) { /* leave anyway */ }
    }
    forgetAll();
    forgetPhotos();
    host.remove();
    document.title = savedTitle || "";
    var leave = function () { try { location.replace(exitUrl); } catch (e) { location.href = exitUrl; } };
    // let the close frame leave the socket (at most 300 ms), then go
    var t0 = Date.now();
    (function wait() {
      if (!sock || sock.readyState !== 1 || sock.bufferedAmount === 0 || Date.now() - t0 > 300) {
        setTimeout(leave, 30);
      } else setTimeout(wait, 10);
    })();
  }
  exitBtn.addEventListener("click", quickExit);
  var escTimes = [];
  document.addEventListener("keydown", function (e) {
    if (e.key !== "Escape") return;
    var t = Date.now();
    escTimes = escTimes.filter(function (x) { return t - x < 1500; });
    escTimes.push(t);
    if (escTimes.length >= 3) quickExit();
  }, true);

  // Quick exit is in the header while the panel is open, beside the launcher once minimised.
  function placeExit() {
    if (!panel.hidden) header.insertBefore(exitBtn, langBtn);
    else if (state.used || state.session) dock.insertBefore(exitBtn, launcher);
    else if (exitBtn.parentNode) exitBtn.parentNode.removeChild(exitBtn);
  }

  // ---- open / close ----
  function open() {
    panel.hidden = false;
    dock.hidden = true;
    state.open = true; save("open", true);
    state.used = true; save("used", true);
    state.unread = 0; renderBadge(false); dockLive.textContent = "";
    placeExit();
    if (!topicsLoaded && !topicsBox.childNodes.length) loadTopics();
    connect();
    setTimeout(function () {
      // the first topic once the list is there (loadTopics focuses it when it comes later)
      var first = state.phase === "topics" ? topicsBox.querySelector("button") : input;
      if (first) first.focus();
    }, 0);
    sendRead();
    emit("open");
  }
  function close() {
    panel.hidden = true;
    dock.hidden = false;
    state.open = false; save("open", false);
    placeExit();
    launcher.focus();
    emit("close");
  }
  launcher.addEventListener("click", open);
  minBtn.addEventListener("click", close);

  state.pendingStart = load("start", null);
  window.chatd = {
    __loaded: true,
    open: open, close: close, quickExit: quickExit,
    setLanguage: setLanguage, languages: LANGS.slice(),
    on: function (name, handler) { (listeners[name] = listeners[name] || []).push(handler); }
  };

  function mount() {
    document.body.appendChild(host);
    setLanguage(lang, false);
    setPhase("topics");
    if (!navigator.onLine) setNet(true);
    if (state.session) {
      // a reload in the same tab: resume the chat where it was
      setPhase("waiting");
      state.outbox.forEach(showPending);
      open();
    } else if (state.open) {
      open();
    } else {
      placeExit();
    }
  }
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);
})();

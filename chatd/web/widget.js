/* chatd citizen widget: <script src="https://HOST/widget.js" defer></script>
 *
 * Options, as data- attributes on that tag: data-lang (fr | fr-facile | en), data-topics
 * (comma-separated topic ids to offer), data-position (right | left), data-exit-url (the
 * neutral page quick exit goes to). Exposes window.chatd: open(), close(), quickExit(),
 * on(event, handler) with events "open", "close", "status", "message", "closed".
 *
 * Speaks chatd.v1.json (docs/protocol.md). Never loses a word: messages are kept in an outbox
 * (sessionStorage) until acknowledged, resent with the same cid after a reconnect, and the
 * conversation is resumed from the last seq shown. User text is only ever set as text.
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

  var STRINGS = {
    fr: {
      launcher: "Discuter avec un gendarme",
      title: "Brigade numérique de la gendarmerie",
      notice: "Ce tchat n'est pas un numéro d'urgence. En cas d'urgence, appelez le 17 ou le 112, ou envoyez un SMS au 114.",
      chooseTopic: "Quel est le sujet de votre demande ?",
      firstPrompt: "Décrivez votre demande. Un gendarme vous répondra par écrit.",
      inputLabel: "Votre message",
      send: "Envoyer",
      quickExit: "Quitter rapidement",
      quickExitHint: "Ferme la conversation et quitte ce site immédiatement (ou appuyez 3 fois sur Échap).",
      end: "Terminer la conversation",
      minimize: "Réduire",
      queued: function (p, eta) {
        var who = p === 1 ? "Vous êtes le prochain ou la prochaine." : "Il y a " + (p - 1) + " personne" + (p > 2 ? "s" : "") + " avant vous.";
        return who + " Attente estimée : " + duration(eta, "fr") + ".";
      },
      connecting: "Connexion…",
      offline: "Connexion perdue. Vos messages sont gardés et partiront dès le retour du réseau.",
      assigned: "Un gendarme vous répond.",
      typing: "Le gendarme écrit…",
      closed: "La conversation est terminée.",
      sent: "envoyé", read: "lu", pending: "en attente d'envoi",
      you: "Vous", agent: "Gendarme", system: "Information",
      rateTitle: "Votre avis sur cet échange (facultatif)",
      rateLabel: function (n) { return n + " sur 5"; },
      comment: "Commentaire", rateSend: "Envoyer mon avis", thanks: "Merci pour votre avis.",
      download: "Télécharger la conversation",
      restart: "Nouvelle conversation",
      quick: ["Je ne peux pas parler maintenant", "Je reviens dans quelques minutes"],
      neutralTitle: "Informations pratiques",
      error: "Une erreur est survenue. Réessayez.",
      tooLong: "Message trop long (4000 caractères au plus).",
      slow: "Trop de messages d'un coup : patientez un instant.",
      busy: "Vous avez déjà une conversation en cours."
    },
    en: {
      launcher: "Chat with a gendarme",
      title: "Gendarmerie digital brigade",
      notice: "This chat is not an emergency line. In an emergency call 17 or 112, or text 114.",
      chooseTopic: "What is your request about?",
      firstPrompt: "Describe your request. A gendarme will answer you in writing.",
      inputLabel: "Your message",
      send: "Send",
      quickExit: "Quick exit",
      quickExitHint: "Closes the conversation and leaves this site at once (or press Escape 3 times).",
      end: "End the conversation",
      minimize: "Minimise",
      queued: function (p, eta) {
        var who = p === 1 ? "You are next." : (p - 1) + " " + (p > 2 ? "people are" : "person is") + " ahead of you.";
        return who + " Estimated wait: " + duration(eta, "en") + ".";
      },
      connecting: "Connecting…",
      offline: "Connection lost. Your messages are kept and will be sent when the network is back.",
      assigned: "A gendarme is answering you.",
      typing: "The gendarme is typing…",
      closed: "The conversation has ended.",
      sent: "sent", read: "read", pending: "waiting to be sent",
      you: "You", agent: "Gendarme", system: "Information",
      rateTitle: "Your opinion of this conversation (optional)",
      rateLabel: function (n) { return n + " out of 5"; },
      comment: "Comment", rateSend: "Send my opinion", thanks: "Thank you.",
      download: "Download the conversation",
      restart: "New conversation",
      quick: ["I can't talk right now", "I'll be back in a few minutes"],
      neutralTitle: "Practical information",
      error: "Something went wrong. Please try again.",
      tooLong: "Message too long (4000 characters at most).",
      slow: "Too many messages at once: wait a moment.",
      busy: "You already have a conversation going on."
    }
  };
  // Easy-to-read French (FALC): short sentences, common words.
  STRINGS["fr-facile"] = Object.assign({}, STRINGS.fr, {
    notice: "Ce tchat n'est pas pour les urgences. Urgence : appelez le 17 ou le 112. Vous êtes sourd ou malentendant : envoyez un SMS au 114.",
    chooseTopic: "Choisissez le sujet.",
    firstPrompt: "Écrivez votre question. Un gendarme va vous répondre.",
    queued: function (p, eta) {
      return (p === 1 ? "C'est bientôt à vous." : "Il y a " + (p - 1) + " personne" + (p > 2 ? "s" : "") + " avant vous.") + " Temps d'attente : " + duration(eta, "fr") + ".";
    },
    assigned: "Un gendarme est là. Il vous répond.",
    closed: "La conversation est finie.",
    quickExit: "Partir vite"
  });

  function duration(s, lang) {
    var m = Math.max(1, Math.round(s / 60));
    if (s < 60) return lang === "en" ? "less than a minute" : "moins d'une minute";
    if (lang === "en") return "about " + m + " minute" + (m > 1 ? "s" : "");
    return "environ " + m + " minute" + (m > 1 ? "s" : "");
  }

  var navLang = (navigator.language || "fr").toLowerCase().slice(0, 2) === "en" ? "en" : "fr";
  var lang = STRINGS[opts.lang] ? opts.lang : navLang;
  var T = STRINGS[lang];
  var apiLang = lang === "en" ? "en" : "fr";
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
    outbox: load("outbox", []),  // [{cid, text}] not yet acknowledged
    open: load("open", false),
    topic: null,
    lastSeq: 0,  // highest seq shown in this page
    phase: "topics",  // topics | compose | waiting | chat | closed
    agentRead: 0,
    rated: false
  };
  var listeners = {};
  var early = [];  // messages of a chat whose id has not arrived yet
  function emit(name, detail) {
    (listeners[name] || []).forEach(function (h) { try { h(detail); } catch (e) { /* host bug */ } });
  }

  // ---- DOM ----
  var host = document.createElement("div");
  host.id = "chatd-widget";
  var root = host.attachShadow({ mode: "open" });
  var CSS = [
    ":host{all:initial}",
    "*{box-sizing:border-box;font-family:system-ui,-apple-system,'Segoe UI',Roboto,Arial,sans-serif}",
    ".launcher{position:fixed;bottom:16px;" + (opts.position === "left" ? "left" : "right") + ":16px;z-index:2147483000;background:#000091;color:#fff;border:0;border-radius:28px;padding:14px 20px;font-size:16px;font-weight:600;cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.3)}",
    ".launcher:focus-visible,button:focus-visible,textarea:focus-visible,input:focus-visible{outline:3px solid #ffbf00;outline-offset:2px}",
    ".panel{position:fixed;bottom:16px;" + (opts.position === "left" ? "left" : "right") + ":16px;z-index:2147483001;width:380px;max-width:calc(100vw - 16px);height:600px;max-height:calc(100vh - 32px);background:#fff;color:#161616;border-radius:12px;box-shadow:0 8px 30px rgba(0,0,0,.35);display:flex;flex-direction:column;overflow:hidden;font-size:15px}",
    "@media (max-width:480px){.panel{left:0;right:0;bottom:0;width:100vw;max-width:100vw;height:100%;max-height:100%;border-radius:0}}",
    ".panel[hidden],.launcher[hidden],[hidden]{display:none!important}",
    "header{background:#000091;color:#fff;padding:10px 12px;display:flex;align-items:center;gap:8px}",
    "header h2{font-size:15px;margin:0;flex:1}",
    "header button{background:transparent;color:#fff;border:1px solid #fff;border-radius:6px;padding:6px 8px;font-size:13px;cursor:pointer}",
    ".exit{background:#ce0500!important;border-color:#ce0500!important;font-weight:700}",
    ".notice{background:#fff4f3;color:#6e0000;border-bottom:1px solid #f3c4c0;padding:8px 12px;font-size:13px;margin:0}",
    ".status{padding:8px 12px;font-size:14px;background:#eef;border-bottom:1px solid #dde;min-height:1em}",
    ".status:empty{display:none}",
    ".body{flex:1;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:8px}",
    ".topics{display:flex;flex-direction:column;gap:6px}",
    ".topics button{text-align:left;padding:10px;border:1px solid #000091;background:#fff;color:#000091;border-radius:8px;font-size:15px;cursor:pointer}",
    ".msg{max-width:85%;padding:8px 10px;border-radius:10px;white-space:pre-wrap;overflow-wrap:anywhere;line-height:1.35}",
    ".msg[data-from=visitor]{align-self:flex-end;background:#000091;color:#fff}",
    ".msg[data-from=agent]{align-self:flex-start;background:#eee;color:#161616}",
    ".msg[data-from=system]{align-self:center;background:#fff8e1;color:#3a2a00;font-size:13px}",
    ".msg a{color:inherit}",
    ".mark{display:block;font-size:11px;opacity:.8;text-align:right;margin-top:2px}",
    ".typing{font-size:13px;color:#555;min-height:1em;padding:0 12px}",
    ".quick{display:flex;gap:6px;flex-wrap:wrap;padding:0 12px 6px}",
    ".quick button{font-size:12px;border:1px solid #888;background:#fff;border-radius:14px;padding:4px 10px;cursor:pointer}",
    "form.compose{display:flex;gap:6px;padding:8px 12px;border-top:1px solid #ddd}",
    "textarea{flex:1;resize:none;font-size:15px;padding:8px;border:1px solid #666;border-radius:8px;min-height:44px;max-height:120px}",
    ".primary{background:#000091;color:#fff;border:0;border-radius:8px;padding:0 14px;font-size:15px;font-weight:600;cursor:pointer;min-height:44px}",
    ".footer{display:flex;justify-content:space-between;gap:6px;padding:6px 12px 10px}",
    ".footer button,.after button{border:1px solid #000091;background:#fff;color:#000091;border-radius:8px;padding:8px 10px;cursor:pointer;font-size:14px}",
    ".after{display:flex;flex-direction:column;gap:8px;border-top:1px solid #ddd;padding:10px 12px}",
    ".stars{display:flex;gap:4px;border:0;padding:0;margin:0}",
    ".stars label{cursor:pointer;padding:4px 8px;border:1px solid #888;border-radius:6px}",
    ".sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}",
    "@media (prefers-reduced-motion:no-preference){.panel{animation:rise .18s ease-out}@keyframes rise{from{transform:translateY(12px);opacity:0}to{transform:none;opacity:1}}}"
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

  var launcher = el("button", { "class": "launcher", chatd: "launcher", type: "button", "aria-haspopup": "dialog", text: T.launcher });
  var exitBtn = el("button", { "class": "exit", chatd: "quick-exit", type: "button", title: T.quickExitHint, "aria-describedby": "chatd-exit-hint", text: T.quickExit });
  var minBtn = el("button", { type: "button", text: T.minimize, "aria-label": T.minimize });
  var statusEl = el("div", { "class": "status", chatd: "status", role: "status", "aria-live": "polite" });
  var log = el("div", { "class": "body", role: "log", "aria-live": "polite", "aria-label": T.title, tabindex: "0" });
  var topicsBox = el("div", { "class": "topics", role: "group", "aria-label": T.chooseTopic });
  var typingEl = el("div", { "class": "typing", "aria-live": "polite" });
  var quickBox = el("div", { "class": "quick", hidden: "" });
  var input = el("textarea", { chatd: "input", id: "chatd-input", rows: "2", maxlength: "4000", "aria-label": T.inputLabel, placeholder: T.firstPrompt });
  var sendBtn = el("button", { "class": "primary", chatd: "send", type: "submit", text: T.send });
  var form = el("form", { "class": "compose", hidden: "" }, [input, sendBtn]);
  var endBtn = el("button", { chatd: "end", type: "button", text: T.end, hidden: "" });
  var after = el("div", { "class": "after", hidden: "" });
  var panel = el("section", { "class": "panel", chatd: "panel", role: "dialog", "aria-modal": "false", "aria-labelledby": "chatd-title", hidden: "" }, [
    el("header", {}, [el("h2", { id: "chatd-title", text: T.title }), exitBtn, minBtn]),
    el("p", { "class": "notice", text: T.notice }),
    el("span", { "class": "sr", id: "chatd-exit-hint", text: T.quickExitHint }),
    statusEl, log, typingEl, quickBox, form,
    el("div", { "class": "footer" }, [endBtn]),
    after
  ]);
  root.appendChild(launcher);
  root.appendChild(panel);
  T.quick.forEach(function (q) {
    var b = el("button", { type: "button", text: q });
    b.addEventListener("click", function () { submit(q); });
    quickBox.appendChild(b);
  });

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

  function messageEl(from, text) {
    var who = from === "visitor" ? T.you : from === "agent" ? T.agent : T.system;
    var n = el("div", { "class": "msg", chatd: "message", "data-from": from });
    n.appendChild(el("span", { "class": "sr", text: who + " : " }));
    setText(n, text);
    return n;
  }

  function mark(n, text) {
    var m = n.querySelector(".mark");
    if (!m) { m = el("span", { "class": "mark" }); n.appendChild(m); }
    m.textContent = text;
  }

  function showMsg(f) {
    if (f.seq <= state.lastSeq || rendered[f.seq]) return;  // exactly once, whatever resends
    var n = pendingEls[f.cid];
    if (n && f.from === "visitor") {
      delete pendingEls[f.cid];
      n.removeAttribute("data-pending");
    } else {
      n = messageEl(f.from, f.text);
      log.appendChild(n);
    }
    n.setAttribute("data-seq", String(f.seq));
    if (f.from === "visitor") mark(n, state.agentRead >= f.seq ? T.read : T.sent);
    rendered[f.seq] = n;
    state.lastSeq = f.seq;
    transcript.push({ seq: f.seq, from: f.from, text: f.text, ts: f.ts });
    log.scrollTop = log.scrollHeight;
    if (f.from === "agent") { typingEl.textContent = ""; sendRead(); }
    emit("message", { from: f.from, text: f.text, seq: f.seq });
  }
  var transcript = [];

  function showPending(item) {
    var n = messageEl("visitor", item.text);
    n.setAttribute("data-pending", "");
    mark(n, T.pending);
    pendingEls[item.cid] = n;
    log.appendChild(n);
    log.scrollTop = log.scrollHeight;
  }

  function setStatus(text) {
    statusEl.textContent = text;
    emit("status", text);
  }

  function setPhase(p) {
    state.phase = p;
    topicsBox.hidden = p !== "topics";
    form.hidden = !(p === "compose" || p === "waiting" || p === "chat");
    quickBox.hidden = !(p === "waiting" || p === "chat");
    endBtn.hidden = !(p === "waiting" || p === "chat");
    after.hidden = p !== "closed";
    input.placeholder = p === "compose" ? T.firstPrompt : T.inputLabel;
    if (p === "waiting" || p === "chat") document.title = T.neutralTitle;
    else if (savedTitle !== null) document.title = savedTitle;
  }
  var savedTitle = document.title;

  // ---- topics ----
  function loadTopics() {
    fetch(new URL("/api/topics", base).href, { credentials: "omit" })
      .then(function (r) { return r.json(); })
      .then(function (list) {
        var only = (opts.topics || "").split(",").map(function (s) { return s.trim(); }).filter(Boolean);
        topicsBox.textContent = "";
        topicsBox.appendChild(el("p", { text: T.chooseTopic }));
        list.filter(function (t) { return !only.length || only.indexOf(t.id) >= 0; })
          .sort(function (a, b) { return a.id === "general" ? 1 : b.id === "general" ? -1 : 0; })
          .forEach(function (t) {
            var b = el("button", { type: "button", chatd: "topic", "data-topic": t.id, text: (t.label && (t.label[apiLang] || t.label.fr)) || t.id });
            b.addEventListener("click", function () {
              state.topic = t.id;
              setPhase("compose");
              input.focus();
            });
            topicsBox.appendChild(b);
          });
        // keyboard users land on the first choice as soon as there is one
        if (!panel.hidden && state.phase === "topics") {
          var first = topicsBox.querySelector("button");
          if (first) first.focus();
        }
      })
      .catch(function () { setStatus(T.offline); setTimeout(loadTopics, 3000); });
  }
  log.appendChild(topicsBox);

  // ---- connection ----
  var ws = null, backoff = 500, pingTimer = null, connected = false, firstHello = true;

  function connect() {
    if (ws) return;
    setStatus(T.connecting);
    var sock;
    try { sock = new WebSocket(wsUrl, ["chatd.v1.json"]); } catch (e) { return retry(); }
    ws = sock;
    sock.onopen = function () {
      var hello = { type: "hello", lang: apiLang };
      if (state.token) hello.token = state.token;
      // a fresh page replays the whole chat; a reconnect only what this page has not shown
      if (state.session) hello.resume = { session: state.session, after: firstHello ? 0 : state.lastSeq };
      sock.send(JSON.stringify(hello));
    };
    sock.onmessage = function (ev) {
      var f;
      try { f = JSON.parse(ev.data); } catch (e) { return; }
      handle(f);
    };
    sock.onclose = function () {
      if (ws !== sock) return;
      ws = null; connected = false;
      clearInterval(pingTimer);
      if (state.phase !== "closed" && !exiting) { setStatus(T.offline); retry(); }
    };
    sock.onerror = function () { /* onclose follows */ };
  }

  function retry() {
    var wait = backoff * (0.75 + Math.random() / 2);
    backoff = Math.min(backoff * 2, 10000);
    setTimeout(connect, wait);
  }

  function send(frame) {
    if (ws && connected && ws.readyState === 1) { ws.send(JSON.stringify(frame)); return true; }
    return false;
  }

  function flushOutbox() {
    if (!state.session) return;
    state.outbox.forEach(function (item) {
      send({ type: "send", session: state.session, cid: item.cid, text: item.text });
    });
  }

  function handle(f) {
    switch (f.type) {
      case "welcome":
        connected = true; backoff = 500;
        state.token = f.token; save("token", f.token);
        clearInterval(pingTimer);
        pingTimer = setInterval(function () { send({ type: "ping" }); }, 25000);
        var openOne = (f.sessions || []).filter(function (s) { return s.state !== "closed"; })[0];
        if (!state.session && openOne) {  // a start whose answer was lost: that chat is ours
          state.session = openOne.session; save("session", openOne.session);
          state.pendingStart = null; save("start", null);
        }
        var mine = (f.sessions || []).filter(function (s) { return s.session === state.session; })[0];
        if (state.session && (!mine || mine.state === "closed")) {
          if (!mine) { state.session = null; save("session", null); setPhase("topics"); setStatus(""); }
          else { onClosed(); }
        } else if (mine) {
          setPhase(mine.state === "active" ? "chat" : "waiting");
          if (mine.state === "active") setStatus(T.assigned);
        } else if (state.pendingStart) {
          send(state.pendingStart);
        } else {
          setStatus("");
        }
        firstHello = false;
        flushOutbox();
        break;
      case "queued":
        if (!state.session || state.session !== f.session) {
          state.session = f.session; save("session", f.session);
          state.pendingStart = null; save("start", null);
        }
        setPhase("waiting");
        setStatus(T.queued(f.position, f.eta_s));
        early.splice(0).forEach(function (m) { if (m.session === state.session) showMsg(m); });
        break;
      case "assigned":
        setPhase("chat");
        setStatus(T.assigned);
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
          if (+s <= state.agentRead && n.getAttribute("data-from") === "visitor") mark(n, T.read);
        });
        break;
      case "closed":
        if (f.session === state.session) onClosed();
        break;
      case "rated":
        after.textContent = ""; after.appendChild(el("p", { text: T.thanks })); after.appendChild(afterButtons());
        break;
      case "error":
        if (f.code === CODES.ErrorCode.CONFLICT && state.pendingStart) { state.pendingStart = null; setStatus(T.busy); }
        else if (f.code === CODES.ErrorCode.TOO_LARGE) setStatus(T.tooLong);
        else if (f.code === CODES.ErrorCode.RATE_LIMITED) setStatus(T.slow);
        else if (f.code === CODES.ErrorCode.UNAVAILABLE) { /* the outbox resends on reconnect */ }
        break;
    }
  }

  function onClosed() {
    setPhase("closed");
    setStatus(T.closed);
    typingEl.textContent = "";
    emit("closed", { session: state.session });
    renderAfter();
  }

  function afterButtons() {
    var box = el("div", { "class": "footer" });
    var dl = el("button", { type: "button", text: T.download });
    dl.addEventListener("click", downloadTranscript);
    var again = el("button", { type: "button", text: T.restart });
    again.addEventListener("click", function () {
      state.session = null; save("session", null); state.outbox = []; save("outbox", []);
      state.lastSeq = 0; rendered = {}; transcript = [];
      log.textContent = ""; log.appendChild(topicsBox); setPhase("topics"); setStatus("");
    });
    box.appendChild(dl); box.appendChild(again);
    return box;
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
    after.appendChild(fs); after.appendChild(comment); after.appendChild(ok); after.appendChild(afterButtons());
  }

  function downloadTranscript() {
    var lines = transcript.map(function (m) {
      var who = m.from === "visitor" ? T.you : m.from === "agent" ? T.agent : T.system;
      return "[" + new Date(m.ts).toLocaleString(lang === "en" ? "en-GB" : "fr-FR") + "] " + who + " : " + m.text;
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
    if (Array.from(text).length > 4000) { setStatus(T.tooLong); return; }
    if (!state.session) {
      if (!state.topic) return;
      var start = { type: "start", topic: state.topic, lang: apiLang, text: text };
      state.pendingStart = start; save("start", start);
      setPhase("waiting");
      if (!send(start)) connect();
      return;
    }
    var item = { cid: newCid(), text: text };
    state.outbox.push(item); save("outbox", state.outbox);
    showPending(item);
    send({ type: "send", session: state.session, cid: item.cid, text: text });
  }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var text = input.value;
    input.value = "";
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
    if (state.session) send({ type: "close", session: state.session });
  });

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
    var now = Date.now();
    escTimes = escTimes.filter(function (t) { return now - t < 1500; });
    escTimes.push(now);
    if (escTimes.length >= 3) quickExit();
  }, true);

  // ---- open / close ----
  function open() {
    panel.hidden = false;
    launcher.hidden = true;
    state.open = true; save("open", true);
    if (!topicsBox.childNodes.length) loadTopics();
    connect();
    setTimeout(function () {
      var first = state.phase === "topics" ? topicsBox.querySelector("button") : input;
      (first || input).focus();
    }, 0);
    sendRead();
    emit("open");
  }
  function close() {
    panel.hidden = true;
    launcher.hidden = false;
    state.open = false; save("open", false);
    launcher.focus();
    emit("close");
  }
  launcher.addEventListener("click", open);
  minBtn.addEventListener("click", close);

  state.pendingStart = load("start", null);
  window.chatd = {
    __loaded: true,
    open: open, close: close, quickExit: quickExit,
    on: function (name, handler) { (listeners[name] = listeners[name] || []).push(handler); }
  };

  function mount() {
    document.body.appendChild(host);
    setPhase("topics");
    if (state.session) {
      // a reload in the same tab: resume the chat where it was
      setPhase("waiting");
      state.outbox.forEach(showPending);
      open();
    } else if (state.open) {
      open();
    }
  }
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);
})();

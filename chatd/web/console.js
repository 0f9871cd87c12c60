/* chatd agent console (served at /console/, same origin as the API).
 *
 * Speaks chatd.v1.json on /ws/agent with the HttpOnly session cookie (docs/protocol.md). Several
 * chats at once, one open at a time; each chat has its own letter and colour everywhere it
 * appears, and the composer is bound to the chat it was opened for, so a reply cannot go to the
 * wrong person. Nothing typed is lost: sends and notes wait in an outbox (sessionStorage) until
 * acknowledged and are resent with the same cid after a reconnect; the server answers a resent
 * cid with the original seq and creates nothing. User text is only ever set as text.
 */
(function () {
  "use strict";

  var COLORS = ["#0b5cad", "#7a2e9e", "#1d6b35", "#a33b00", "#8a1538", "#006b6b", "#5b4a00", "#3d3d99"];
  var LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ";
  var OUTBOX_KEY = "chatd.console.outbox";
  var WANTED_KEY = "chatd.console.status";  // the availability this gendarme chose, for reconnects
  var CONFIRM_MS = 6000;  // a status change the server has not confirmed by then is said refused
  var LATE_S = 120;  // a visitor waiting this long for a reply is shown in red
  var REASONS = {
    visitor_closed: "La personne a terminé la conversation.",
    agent_closed: "Conversation clôturée.",
    quick_exit: "La personne est partie rapidement (sortie rapide).",
    visitor_left: "La personne n'est pas revenue.",
    expired: "Conversation expirée."
  };
  var DISPOSITIONS = {
    answered: "réponse apportée", redirected_17: "orientée vers le 17",
    redirected_pre_plainte: "orientée vers la pré-plainte", redirected_brigade: "orientée vers une brigade",
    no_reply: "sans réponse", abusive: "abusive"
  };

  var $ = function (id) { return document.getElementById(id); };
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) if (attrs[k] !== undefined && attrs[k] !== null) e.setAttribute(k, attrs[k]);
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }

  var S = {
    me: null, ws: null, online: false, status: "away", load: null, capacity: null,
    chats: {}, order: [], current: null, offers: {}, topics: {}, canned: { shared: [], mine: [] },
    outbox: loadOutbox(), retry: 0, timer: null, pingTimer: null, signedOut: false,
    pendingAccept: {}, taking: {}, asyncTimer: null, typingOn: false, typingTimer: null, svTimer: null,
    wanted: loadWanted(), restoring: false, refused: null, confirmTimer: null, link: "connecting", linkText: ""
  };

  // ---- helpers ------------------------------------------------------------------------------
  function loadOutbox() {
    try { return JSON.parse(sessionStorage.getItem(OUTBOX_KEY)) || []; } catch (e) { return []; }
  }
  function loadWanted() {
    try { return sessionStorage.getItem(WANTED_KEY) === "available" ? "available" : "away"; } catch (e) { return "away"; }
  }
  function saveWanted() {
    try { sessionStorage.setItem(WANTED_KEY, S.wanted); } catch (e) { /* private mode */ }
  }
  function saveOutbox() {
    try { sessionStorage.setItem(OUTBOX_KEY, JSON.stringify(S.outbox)); } catch (e) { /* private mode */ }
  }
  function newCid() {
    var a = new Uint8Array(9);
    crypto.getRandomValues(a);
    return "c" + Array.prototype.map.call(a, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }
  function toast(text) {
    var p = el("p", null, text);
    $("toast").appendChild(p);
    setTimeout(function () { p.remove(); }, 5000);
  }
  function ago(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    if (s < 60) return s + " s";
    var m = Math.floor(s / 60);
    if (m < 60) return m + " min " + (s % 60 < 10 ? "0" : "") + (s % 60) + " s";
    return Math.floor(m / 60) + " h " + (m % 60) + " min";
  }
  function clock(ts) {
    var d = new Date(ts);
    return ("0" + d.getHours()).slice(-2) + ":" + ("0" + d.getMinutes()).slice(-2);
  }
  function topicLabel(id) { return (S.topics[id] && S.topics[id].label.fr) || id || "?"; }
  window.chatdTopicLabel = topicLabel;  // for the reports (reports.js)
  function fold(s) { return (s || "").normalize("NFD").replace(/[\u0300-\u036f]/g, "").toLowerCase(); }

  function api(method, path, body) {
    var opts = { method: method, credentials: "same-origin", headers: {} };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    return fetch(path, opts).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) {
        if (r.status === 401 && S.me && path !== "/api/login") { expired(); }
        if (!r.ok) { var err = new Error(data.message || ("HTTP " + r.status)); err.code = data.error; err.status = r.status; throw err; }
        return data;
      });
    });
  }

  // ---- sign-in ------------------------------------------------------------------------------
  function showSignin(info) {
    $("app").hidden = true;
    $("signin").hidden = false;
    $("signin-info").hidden = !info;
    $("signin-info").textContent = info || "";
    $("password").value = "";
    $("login").focus();
  }
  function expired() {
    if (S.signedOut) return;
    stop("Votre session a expiré ou a été fermée. Reconnectez-vous.");
  }
  function stop(info) {
    S.signedOut = true;
    forgetImages();
    clearTimeout(S.asyncTimer);
    S.me = null;
    clearTimeout(S.timer);
    clearInterval(S.pingTimer);
    clearInterval(S.svTimer);
    if (S.ws) { try { S.ws.close(1000); } catch (e) { /* already closed */ } }
    S.ws = null;
    S.chats = {}; S.order = []; S.current = null; S.offers = {};
    $("chatlist").textContent = ""; $("offers").textContent = "";
    showSignin(info);
  }

  $("signin-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var err = $("signin-error");
    err.hidden = true;
    $("signin-info").hidden = true;
    api("POST", "/api/login", { login: $("login").value.trim(), password: $("password").value })
      .then(function (data) { begin(data.agent); })
      .catch(function (e) {
        err.textContent = e.status === 401 ? "Identifiant ou mot de passe incorrect."
          : "Connexion impossible pour le moment. Réessayez dans un instant.";
        err.hidden = false;
        $("password").value = "";
        $("password").focus();
      });
  });

  $("signout").addEventListener("click", function () {
    var pending = S.outbox.length;
    if (pending && !confirm(pending + " message(s) ne sont pas encore partis. Se déconnecter quand même ?")) return;
    S.outbox = []; saveOutbox();
    S.wanted = "away"; saveWanted();  // the next person signing in here starts away
    api("POST", "/api/logout", {}).catch(function () { /* signed out locally anyway */ })
      .then(function () { stop("Vous êtes déconnecté·e."); });
  });

  function begin(agent) {
    S.me = agent;
    S.signedOut = false;
    S.capacity = agent.capacity;
    $("signin").hidden = true;
    $("app").hidden = false;
    $("me").textContent = agent.name;
    $("tabs").hidden = !(agent.role === "supervisor" || agent.role === "admin");
    $("sound-hint").hidden = $("sound").checked || soundHintSeen();
    renderLoad();
    loadCanned();
    connect();
  }

  // ---- the WebSocket ------------------------------------------------------------------------
  function setLink(state, text) {
    S.link = state;
    S.linkText = text;
    renderStatus();
  }
  // One banner says whether offers can reach this gendarme: connected or not, available or not,
  // and, when the server did not take back the availability chosen before a reconnect, says so
  // loudly with the way back.
  function renderStatus() {
    var b = $("link"), text, action = null, avail = "";
    b.dataset.state = S.link;
    if (S.link !== "online") text = S.linkText;
    else if (S.refused) {
      avail = "refused";
      text = "Vous n'êtes plus disponible : " + S.refused + " Aucune demande ne vous est proposée.";
      action = "Redevenir disponible";
    } else if (S.status === "available") {
      avail = "available";
      text = "En ligne · disponible";
    } else if (S.restoring) {
      avail = "away";
      text = "En ligne · disponibilité en cours de rétablissement…";
    } else {
      avail = "away";
      text = "En ligne · absent·e : aucune demande proposée.";
      action = "Passer disponible";
    }
    b.dataset.availability = avail;
    $("status-text").textContent = text;
    $("status-action").hidden = !action;
    if (action) $("status-action").textContent = action;
    $("availability").value = S.restoring ? S.wanted : S.status;
  }
  function chooseStatus(status) {
    S.wanted = status;
    saveWanted();
    S.refused = null;
    clearTimeout(S.confirmTimer);
    S.restoring = status === "available" && S.status !== "available";
    if (S.restoring) {
      S.confirmTimer = setTimeout(function () {
        if (S.restoring && S.online) { S.restoring = false; S.refused = "le serveur n'a pas confirmé votre disponibilité."; renderStatus(); }
      }, CONFIRM_MS);
    }
    send({ type: "status", status: status });
    renderStatus();
  }
  function connect() {
    if (S.signedOut) return;
    setLink("connecting", "Connexion…");
    var ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/agent", "chatd.v1.json");
    S.ws = ws;
    ws.onopen = function () {
      var resume = [];
      S.order.forEach(function (sid) {
        var c = S.chats[sid];
        if (!c.closed) resume.push({ session: sid, after: c.lastSeq });
      });
      ws.send(JSON.stringify(resume.length ? { type: "hello", resume: resume } : { type: "hello" }));
    };
    ws.onmessage = function (ev) {
      var msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      if (ws === S.ws) handle(msg);
    };
    ws.onclose = function (ev) {
      if (ws !== S.ws) return;
      S.online = false;
      clearInterval(S.pingTimer);
      if (ev.code === 1008 || S.signedOut) { expired(); return; }
      clearTimeout(S.confirmTimer);
      S.restoring = false;
      setLink("offline", "Connexion perdue — reconnexion en cours. Aucune demande ne peut vous parvenir ; vos réponses partiront au retour.");
      var delay = Math.min(10000, 500 * Math.pow(2, S.retry++)) * (0.7 + Math.random() * 0.6);
      S.timer = setTimeout(connect, delay);
    };
  }
  function sendFrame(item) {
    var f = { type: "send", session: item.session, cid: item.cid };
    if (item.text) f.text = item.text;
    if (item.attachment) f.attachment = item.attachment;
    return f;
  }
  function send(frame) {
    if (S.ws && S.online) { S.ws.send(JSON.stringify(frame)); return true; }
    return false;
  }
  function flushOutbox() {
    S.outbox.forEach(function (item) {
      send(item.kind === "note" ? { type: "note", session: item.session, cid: item.cid, text: item.text }
        : sendFrame(item));
    });
  }

  // ---- what the server says ------------------------------------------------------------------
  function handle(m) {
    switch (m.type) {
      case "welcome": return onWelcome(m);
      case "assigned": return onAssigned(m);
      case "msg": return onMsg(m);
      case "ack": return onAck(m);
      case "note": return onNote(m);
      case "typing": return onTyping(m);
      case "presence": return onPresence(m);
      case "read": return onRead(m);
      case "closed": return onClosed(m);
      case "released": return onReleased(m);
      case "offer": return onOffer(m);
      case "offer_revoked": return removeOffer(m.session, m.reason);
      case "agent_status": return onStatus(m);
      case "blocked": return onBlocked(m);
      case "error": return onError(m);
    }
  }

  function onWelcome(m) {
    S.online = true;
    S.retry = 0;
    S.me = m.agent;
    S.status = m.status === "available" ? "available" : "away";
    S.refused = null;
    setLink("online", "En ligne");
    // every hello starts away on the server: a gendarme who was available before the cut
    // (network or server restart) is made available again, not left silently without offers
    if (S.wanted === "available" && S.status !== "available") chooseStatus("available");
    var live = {};
    (m.sessions || []).forEach(function (s) { live[s.session] = true; });
    S.order.forEach(function (sid) {  // chats that ended or moved while we were away
      var c = S.chats[sid];
      if (!live[sid] && !c.closed) { c.closed = { by: "system", reason: "gone" }; renderChatItem(c); }
    });
    if (S.current) renderCurrent();
    flushOutbox();
    renderLoad();
    clearInterval(S.pingTimer);
    S.pingTimer = setInterval(function () { send({ type: "ping" }); }, 20000);
    loadAsync();
  }

  function chatFor(sid) {
    var c = S.chats[sid];
    if (c) return c;
    var used = {};
    S.order.forEach(function (id) { used[S.chats[id].letter] = true; });
    var i = 0;
    while (used[LETTERS[i % LETTERS.length]] && i < LETTERS.length) i++;
    c = S.chats[sid] = {
      sid: sid, letter: LETTERS[i % LETTERS.length], color: COLORS[i % COLORS.length], visitor: {},
      messages: [], lastSeq: 0, notes: [], unread: 0, waitingSince: null, closed: null,
      typing: false, draft: "", visitorRead: 0, readSent: 0
    };
    S.order.push(sid);
    return c;
  }

  function onAssigned(m) {
    var fresh = !S.chats[m.session];
    var c = chatFor(m.session);
    c.closed = null;
    c.visitor = m.visitor || {};
    if (c.visitor.presence) c.presence = c.visitor.presence;
    (m.history || []).forEach(function (h) { addMessage(c, h); });
    (m.notes || []).forEach(function (n) { addNote(c, n); });
    delete S.offers[m.session];
    var o = document.querySelector("#offers li[data-session='" + m.session + "']");
    if (o) o.remove();
    renderOffersCount();
    renderChatItem(c);
    renderLoad();
    if (S.takingOver === m.session) { S.takingOver = null; showView("chats"); openChat(m.session); toast("Conversation reprise : à vous de répondre."); }
    else if (!S.current || (fresh && S.pendingAccept[m.session])) openChat(m.session);
    else if (S.current === m.session) renderCurrent();
    delete S.pendingAccept[m.session];
    loadAsync();  // it may have been one of those left for later
  }

  function addMessage(c, h) {
    if (h.seq <= c.lastSeq && c.messages.some(function (x) { return x.seq === h.seq; })) return false;
    // the echo of one of our sends replaces its pending copy
    var pending = h.cid && h.from === "agent"  // cids are per sender: the visitor's are not ours
      ? c.messages.filter(function (x) { return x.cid === h.cid && !x.seq; })[0] : null;
    if (pending) { pending.seq = h.seq; pending.ts = h.ts; if (h.attachment) pending.attachment = h.attachment; }
    else c.messages.push({ seq: h.seq, from: h.from, text: h.text, ts: h.ts, cid: h.cid, attachment: h.attachment });
    c.messages.sort(function (a, b) { return (a.seq || Infinity) - (b.seq || Infinity); });
    c.lastSeq = Math.max(c.lastSeq, h.seq);
    if (h.from === "visitor") { if (!c.waitingSince) c.waitingSince = h.ts; }
    else if (h.from === "agent") c.waitingSince = null;
    return true;
  }

  function onMsg(m) {
    var c = S.chats[m.session];
    if (!c) return;
    if (!addMessage(c, m)) return;
    if (m.cid && m.from === "agent") dropFromOutbox(m.cid);
    if (m.from === "visitor") {
      c.typing = false;
      if (S.current !== m.session || document.hidden) c.unread++;
    }
    renderChatItem(c);
    if (S.current === m.session) { renderCurrent(); markRead(c); }
    attention();
  }

  function onAck(m) {
    dropFromOutbox(m.cid);
    var c = S.chats[m.session];
    if (!c) return;
    if (m.seq !== undefined) {
      var mine = c.messages.filter(function (x) { return x.cid === m.cid; })[0];
      if (mine && !mine.seq) { mine.seq = m.seq; c.lastSeq = Math.max(c.lastSeq, m.seq); }
    } else if (m.nseq !== undefined) {
      c.notes.forEach(function (n) { if (n.cid === m.cid && !n.nseq) n.nseq = m.nseq; });
    }
    if (S.current === m.session) renderCurrent();
  }

  function dropFromOutbox(cid) {
    var before = S.outbox.length;
    S.outbox = S.outbox.filter(function (x) { return x.cid !== cid; });
    if (S.outbox.length !== before) saveOutbox();
  }

  function addNote(c, n) {
    if (n.nseq && c.notes.some(function (x) { return x.nseq === n.nseq; })) return;
    var pending = n.cid ? c.notes.filter(function (x) { return x.cid === n.cid; })[0] : null;
    if (pending) { pending.nseq = n.nseq; pending.ts = n.ts; return; }
    c.notes.push({ nseq: n.nseq, from_agent: n.from_agent, from_agent_name: n.from_agent_name, text: n.text, ts: n.ts, cid: n.cid });
    c.notes.sort(function (a, b) { return (a.nseq || Infinity) - (b.nseq || Infinity); });
  }
  function onNote(m) {
    var c = S.chats[m.session];
    if (!c) return;
    addNote(c, m);
    if (m.cid) dropFromOutbox(m.cid);
    if (S.current === m.session) renderNotes();
  }

  function onTyping(m) {
    var c = S.chats[m.session];
    if (!c || m.from !== "visitor") return;
    c.typing = !!m.on;
    clearTimeout(c.typingTimer);
    if (c.typing) c.typingTimer = setTimeout(function () { c.typing = false; if (S.current === c.sid) $("typing").hidden = true; }, 8000);
    if (S.current === m.session) { $("typing").hidden = !c.typing; renderPresence(c); }
    renderChatItem(c);
  }

  // Is the person still there? Connected, writing, or gone since when (a gendarme should not
  // wait on someone who closed the tab, nor close on someone who is typing).
  function onPresence(m) {
    var c = S.chats[m.session];
    if (!c) return;
    c.presence = { state: m.state, since: m.since || Date.now() };
    if (m.state === "gone") c.typing = false;
    renderChatItem(c);
    if (S.current === m.session) { renderPresence(c); $("typing").hidden = !c.typing; }
  }
  function presenceText(c) {
    if (c.closed) return "";
    if (c.typing) return "écrit…";
    var p = c.presence;
    if (!p) return "";
    if (p.state === "gone") return "déconnectée depuis " + ago(Date.now() - p.since);
    return "connectée";
  }
  function renderPresence(c) {
    var e = $("chat-presence"), t = presenceText(c);
    e.textContent = t ? "● " + t : "";
    e.dataset.state = c.closed ? "" : c.typing ? "typing" : (c.presence && c.presence.state) || "";
  }

  function onRead(m) {
    var c = S.chats[m.session];
    if (!c || m.from !== "visitor") return;
    c.visitorRead = Math.max(c.visitorRead, m.seq);
    if (S.current === m.session) renderMessages();
  }

  function onClosed(m) {
    var c = S.chats[m.session];
    if (!c) return;
    if (m.disposition || (m.by === "agent" && c.closing)) {
      c.disposition = m.disposition || c.closing;
      if (c.closed) toast("Issue enregistrée : " + (DISPOSITIONS[c.disposition] || c.disposition) + ".");
    }
    c.closing = null;
    if (c.closed && c.closed.reason !== "gone") { renderChatItem(c); if (S.current === m.session) renderCurrent(); return; }
    c.closed = { by: m.by, reason: m.reason };
    c.typing = false;
    c.waitingSince = null;
    S.outbox = S.outbox.filter(function (x) { return x.session !== m.session || x.kind === "note"; });
    saveOutbox();
    renderChatItem(c);
    renderLoad();
    if (S.current === m.session) renderCurrent();
  }

  function onBlocked(m) {
    var c = S.chats[m.session];
    if (c) { c.blocked = true; if (S.current === m.session) renderCurrent(); }
    toast("La personne est bloquée pour " + m.hours + " h.");
  }

  function onReleased(m) {
    var c = S.chats[m.session];
    if (!c) return;
    toast("Conversation " + c.letter + " " + (m.reason === "transferred" ? "transférée." : m.reason === "taken_over" ? "reprise par un superviseur." : "confiée à un collègue."));
    removeChat(m.session);
  }

  function removeChat(sid) {
    var li = document.querySelector("#chatlist li[data-session='" + sid + "']");
    if (li) li.remove();
    delete S.chats[sid];
    S.order = S.order.filter(function (x) { return x !== sid; });
    if (S.current === sid) { S.current = null; openChat(S.order[0] || null); }
    renderLoad();
  }

  function onStatus(m) {
    S.status = m.status === "available" ? "available" : "away";
    if (S.status === "available") { S.restoring = false; S.refused = null; clearTimeout(S.confirmTimer); }
    else if (!S.restoring && S.wanted !== "away") { S.wanted = "away"; saveWanted(); }  // chosen in another tab
    renderStatus();
    if (m.load !== undefined) S.load = m.load;
    if (m.capacity !== undefined) S.capacity = m.capacity;
    renderLoad();
  }

  function onError(m) {
    if (m.code === "unauthorized") { expired(); return; }
    if (m.ref === "status") {
      clearTimeout(S.confirmTimer);
      S.restoring = false;
      S.refused = m.code === "unavailable" ? "le service est momentanément indisponible."
        : m.code === "rate_limited" ? "trop de demandes d'un coup." : (m.message || "refusé par le serveur.");
      renderStatus();
      return;
    }
    var item = S.outbox.filter(function (x) { return x.cid === m.ref; })[0];
    if (item) {
      if (m.code === "unavailable" || m.code === "rate_limited") { setTimeout(flushOutbox, 2000); return; }
      dropFromOutbox(item.cid);  // refused for good (chat closed or gone): say so, keep the text
      var c = S.chats[item.session];
      if (c) {
        c.messages = c.messages.filter(function (x) { return x.cid !== item.cid || x.seq; });
        c.notes = c.notes.filter(function (x) { return x.cid !== item.cid || x.nseq; });
        if (S.current === c.sid) { renderCurrent(); if (!c.closed && !$("input").value) $("input").value = item.text; }
      }
      toast("Non envoyé : " + m.message);
      return;
    }
    if (m.ref === "accept" || m.ref === "decline") {
      Object.keys(S.pendingAccept).forEach(function (sid) { removeOffer(sid, "taken"); delete S.pendingAccept[sid]; });
      toast("Cette demande n'est plus disponible.");
      return;
    }
    if (m.code === "unavailable") {  // Redis away: the outbox is resent after a pause
      setTimeout(flushOutbox, 2000);
      setLink("connecting", "Service momentanément indisponible : nouvel essai dans un instant…");
      setTimeout(function () { if (S.online) setLink("online", "En ligne"); }, 2500);
      return;
    }
    if (m.ref === "transfer") { toast("Transfert impossible : " + m.message); return; }
    if (m.ref === "take_over" || m.ref === "reassign") {
      S.takingOver = null;
      toast((m.ref === "take_over" ? "Reprise impossible : " : "Réaffectation impossible : ") + m.message);
      return;
    }
    if (m.ref === "take") {
      S.taking = {};
      toast(m.code === "conflict" ? "Impossible de la traiter : " + m.message : "Cette question n'est plus à traiter.");
      loadAsync();
      return;
    }
    if (m.code === "rate_limited") { toast("Trop d'envois d'un coup : patientez un instant."); return; }
    if (m.code === "not_found") { toast("Conversation introuvable."); return; }
    if (m.code === "conflict") { toast("Action impossible : " + m.message); return; }
    toast("Erreur : " + m.message);
  }

  // ---- « À traiter »: questions left for later ----------------------------------------------
  // Not pushed by the server: the list is read when the console connects, every 15 s, and
  // after each change of mine. Taking one asks the server for an offer of it (marked async),
  // which the console accepts at once: the gendarme already chose it.
  function loadAsync() {
    if (!S.me) return;
    clearTimeout(S.asyncTimer);
    S.asyncTimer = setTimeout(loadAsync, 15000);
    api("GET", "/api/async").then(renderAsync).catch(function () { /* the next round tries again */ });
  }
  function renderAsync(data) {
    var ul = $("async-list");
    ul.textContent = "";
    var list = (data && data.chats) || [];
    list.forEach(function (x) {
      var li = el("li", { "data-chatd": "async", "data-session": x.session });
      var head = el("div");
      head.appendChild(el("strong", null, topicLabel(x.topic)));
      head.appendChild(document.createTextNode(" · " + (x.lang || "").toUpperCase() + " · laissée il y a " + ago(Date.now() - (x.left_at || x.created))));
      li.appendChild(head);
      if (x.preview) li.appendChild(el("p", { "class": "preview" }, "« " + x.preview + " »"));
      var b = el("button", { type: "button", "class": "small", "data-chatd": "take" }, "Traiter");
      b.addEventListener("click", function () {
        S.taking[x.session] = true;
        b.disabled = true;
        if (!send({ type: "take", session: x.session })) { b.disabled = false; delete S.taking[x.session]; toast("Hors ligne : réessayez au retour de la connexion."); }
      });
      li.appendChild(b);
      ul.appendChild(li);
    });
    $("async-count").textContent = list.length;
    $("async-count").dataset.n = list.length;
    $("async-empty").hidden = list.length > 0;
    S.asyncCount = list.length;
    attention();
  }

  // ---- offers -------------------------------------------------------------------------------
  function onOffer(m) {
    var now = Date.now();
    var o = S.offers[m.session] = { sid: m.session, topic: m.topic, lang: m.lang, since: now - m.waited_s * 1000,
      deadline: now + m.expires_in_s * 1000, preview: m.preview, from: m.from_agent_name || m.from_agent, note: m.note, async: !!m.async };
    var li = el("li", { "data-chatd": "offer", "data-session": m.session });
    var head = el("div");
    head.appendChild(el("strong", null, topicLabel(o.topic)));
    head.appendChild(document.createTextNode(" · " + (o.lang || "").toUpperCase()));
    if (o.async) head.appendChild(el("span", { "class": "tag" }, "réponse différée"));
    li.appendChild(head);
    if (o.from) li.appendChild(el("div", { "class": "muted" }, "Transfert de " + o.from));
    if (o.note) li.appendChild(el("p", { "class": "offer-note", "data-chatd": "offer-note" }, "Note : « " + o.note + " »"));
    if (o.preview) li.appendChild(el("p", { "class": "preview" }, "« " + o.preview + " »"));
    var timing = el("div");
    timing.appendChild(el("span", { "class": "waited" }));
    timing.appendChild(document.createTextNode(" · "));
    timing.appendChild(el("span", { "class": "countdown", "aria-label": "temps pour accepter" }));
    li.appendChild(timing);
    var actions = el("div", { "class": "actions" });
    var acc = el("button", { type: "button", "data-chatd": "accept" }, "Accepter");
    var dec = el("button", { type: "button", "data-chatd": "decline", "class": "small" }, "Refuser");
    acc.addEventListener("click", function () { accept(m.session); });
    dec.addEventListener("click", function () { decline(m.session); });
    actions.appendChild(acc); actions.appendChild(dec);
    li.appendChild(actions);
    var old = document.querySelector("#offers li[data-session='" + m.session + "']");
    if (old) old.remove();
    $("offers").appendChild(li);
    tickOffer(o, li);
    renderOffersCount();
    if (S.taking[m.session]) { delete S.taking[m.session]; accept(m.session); return; }
    ring(o);
  }
  function tickOffer(o, li) {
    var left = Math.max(0, Math.ceil((o.deadline - Date.now()) / 1000));
    li.querySelector(".waited").textContent = "attend depuis " + ago(Date.now() - o.since);
    li.querySelector(".countdown").textContent = left + " s pour accepter";
  }
  function removeOffer(sid, reason) {
    if (!S.offers[sid]) return;
    delete S.offers[sid];
    var li = document.querySelector("#offers li[data-session='" + sid + "']");
    if (li) li.remove();
    renderOffersCount();
    if (reason === "expired") toast("Une demande a expiré et repart dans la file.");
  }
  function accept(sid) {
    S.pendingAccept[sid] = true;
    send({ type: "accept", session: sid });
  }
  function decline(sid) {
    send({ type: "decline", session: sid });
    removeOffer(sid, "declined");
  }
  function oldestOffer() {
    var list = Object.keys(S.offers).map(function (k) { return S.offers[k]; });
    list.sort(function (a, b) { return a.deadline - b.deadline; });
    return list[0];
  }
  function renderOffersCount() {
    var n = Object.keys(S.offers).length;
    $("offers-count").textContent = n;
    $("offers-count").dataset.n = n;
    $("offers-panel").dataset.n = n;
    attention();
  }
  function ring(o) {
    if ($("sound").checked) {
      try {
        var ctx = new (window.AudioContext || window.webkitAudioContext)();
        var osc = ctx.createOscillator(), gain = ctx.createGain();
        osc.frequency.value = 660; gain.gain.value = 0.08;
        osc.connect(gain); gain.connect(ctx.destination);
        osc.start(); osc.stop(ctx.currentTime + 0.25);
        osc.onended = function () { ctx.close(); };
      } catch (e) { /* no audio device */ }
    }
    if (document.hidden && window.Notification && Notification.permission === "granted") {
      try { new Notification("Nouvelle demande", { body: topicLabel(o.topic), tag: "chatd-offer" }); } catch (e) { /* not allowed */ }
    }
  }

  // ---- chats --------------------------------------------------------------------------------
  function renderChatItem(c) {
    var li = document.querySelector("#chatlist li[data-session='" + c.sid + "']");
    if (!li) {
      li = el("li", { "data-chatd": "chat", "data-session": c.sid });
      var b = el("button", { type: "button", "class": "chat-button" });
      b.appendChild(el("span", { "class": "badge", "aria-hidden": "true" }));
      var mid = el("span", { "class": "mid" });
      mid.appendChild(el("span", { "class": "name" }));
      mid.appendChild(el("span", { "class": "waiting" }));
      b.appendChild(mid);
      b.appendChild(el("span", { "class": "unread" }));
      b.addEventListener("click", function () { openChat(c.sid); });
      li.appendChild(b);
      $("chatlist").appendChild(li);
    }
    var badge = li.querySelector(".badge");
    badge.textContent = c.letter;
    badge.style.background = c.color;
    li.querySelector(".name").textContent = "Conversation " + c.letter + " · " + topicLabel(c.visitor.topic);
    var w = li.querySelector(".waiting");
    if (c.closed) { w.textContent = "terminée"; w.className = "waiting"; }
    else if (c.waitingSince) {
      var s = (Date.now() - c.waitingSince) / 1000;
      w.textContent = "attend votre réponse depuis " + ago(Date.now() - c.waitingSince);
      w.className = "waiting" + (s > LATE_S ? " late" : "");
    } else { w.textContent = "à jour"; w.className = "waiting"; }
    var pt = presenceText(c);
    if (pt) w.textContent += " · " + pt;
    var u = li.querySelector(".unread");
    u.textContent = c.unread ? c.unread + " non lu" + (c.unread > 1 ? "s" : "") : "";
    u.hidden = !c.unread;
    li.classList.toggle("closed", !!c.closed);
    li.classList.toggle("current", S.current === c.sid);
    li.querySelector("button").setAttribute("aria-current", S.current === c.sid ? "true" : "false");
  }

  function openChat(sid) {
    if (document.body.dataset.drawer === "list") openDrawer("");
    if (S.photo && S.photo.sid !== sid) clearPhoto();
    var prev = S.chats[S.current];
    if (prev) { prev.draft = $("input").value; stopTyping(prev); }
    S.current = sid;
    S.order.forEach(function (id) { renderChatItem(S.chats[id]); });
    $("empty").hidden = !!sid;
    $("chat-open").hidden = !sid;
    $("notes-panel").hidden = !sid;
    if (!sid) return;
    var c = S.chats[sid];
    c.unread = 0;
    $("input").value = c.draft || "";
    renderCurrent();
    renderChatItem(c);
    renderCanned();
    markRead(c);
    attention();
  }

  function renderCurrent() {
    var c = S.chats[S.current];
    if (!c) return;
    var v = c.visitor;
    document.querySelector(".chat").style.setProperty("--chat-color", c.color);
    $("chat-badge").textContent = c.letter;
    $("chat-badge").style.background = c.color;
    var title = $("chat-title");
    title.textContent = "";
    title.appendChild(el("span", { "class": "long" }, "Conversation " + c.letter + " · "));
    title.appendChild(document.createTextNode(topicLabel(v.topic)));
    var ctx = ["langue " + (v.lang || "?").toUpperCase()];
    if (v.waited_s !== undefined) ctx.push("a attendu " + ago(v.waited_s * 1000));
    if (v.started) ctx.push("arrivée à " + clock(v.started));
    if (v.earlier_chats) ctx.push(v.earlier_chats + " conversation(s) avant");
    if (v.previous) {
      ctx.push("la dernière (" + topicLabel(v.previous.topic) + ") : " +
        (v.previous.disposition ? (DISPOSITIONS[v.previous.disposition] || v.previous.disposition) : (REASONS[v.previous.reason] || v.previous.reason)));
    }
    $("chat-context").textContent = ctx.join(" · ");
    renderPresence(c);
    $("reply-label").textContent = "Réponse à la conversation " + c.letter + " (" + topicLabel(v.topic) + ")";
    $("typing").hidden = !c.typing;
    var closed = !!c.closed;
    $("composer").hidden = closed;
    $("transfer").disabled = closed;
    $("close").disabled = closed && !needsOutcome(c);
    $("close").textContent = closed ? "Indiquer l'issue" : "Clôturer";
    $("close").hidden = closed && !needsOutcome(c);
    $("block").disabled = !!c.blocked || (closed && c.closed.reason === "gone");
    $("note-form").hidden = closed;
    var banner = $("closed-banner");
    banner.hidden = !closed;
    banner.textContent = "";
    if (closed) {
      banner.appendChild(document.createTextNode(c.closed.reason === "gone" ? "Cette conversation s'est terminée ou a été reprise pendant la coupure. "
        : (REASONS[c.closed.reason] || "Conversation terminée.") + " "));
      var rm = el("button", { type: "button", "class": "small" }, "Retirer de la liste");
      rm.addEventListener("click", function () { removeChat(c.sid); });
      banner.appendChild(rm);
    }
    renderMessages();
    renderNotes();
  }

  function renderMessages() {
    var c = S.chats[S.current];
    var ol = $("messages");
    ol.textContent = "";
    c.messages.forEach(function (x) {
      var li = el("li", { "data-chatd": "message", "data-from": x.from });
      if (x.attachment) li.appendChild(photoButton(x.attachment));
      if (x.text) li.appendChild(document.createTextNode(x.text));
      var meta = (x.from === "visitor" ? "Personne" : x.from === "agent" ? "Gendarme" : "Information") + " · " + clock(x.ts || Date.now());
      if (x.from === "agent") meta += " · " + (!x.seq ? "en attente d'envoi" : x.seq <= c.visitorRead ? "lu" : "envoyé");
      li.appendChild(el("span", { "class": "meta" }, meta));
      ol.appendChild(li);
    });
    ol.scrollTop = ol.scrollHeight;
  }

  function renderNotes() {
    var c = S.chats[S.current];
    var ol = $("notes");
    ol.textContent = "";
    if (!c) return;
    c.notes.forEach(function (n) {
      var li = el("li", { "data-chatd": "note" }, n.text);
      li.appendChild(el("span", { "class": "meta" }, (n.from_agent_name || n.from_agent || "moi") + " · " + clock(n.ts || Date.now()) + (n.nseq ? "" : " · en attente")));
      ol.appendChild(li);
    });
  }

  function markRead(c) {
    if (document.hidden || S.current !== c.sid || c.closed) return;
    var lastVisitor = 0;
    c.messages.forEach(function (x) { if (x.from === "visitor" && x.seq) lastVisitor = x.seq; });
    if (lastVisitor > c.readSent && send({ type: "read", session: c.sid, seq: lastVisitor })) c.readSent = lastVisitor;
  }

  // Load as the server counts it: each open chat takes its topic's weight in slots (a
  // violence chat, two), not one each.
  function weightOf(c) {
    var t = S.topics[c.visitor && c.visitor.topic];
    return (t && t.weight) || 1;
  }
  function renderLoad() {
    var load = 0;
    S.order.forEach(function (sid) { if (!S.chats[sid].closed) load += weightOf(S.chats[sid]); });
    $("load").textContent = "Charge " + load + " / " + (S.capacity || (S.me && S.me.capacity) || "?");
    $("load").title = "Places occupées sur votre capacité ; une conversation de sujet prioritaire (violences) en compte deux.";
  }

  function attention() {
    var n = Object.keys(S.offers).length, unread = 0, open = 0;
    S.order.forEach(function (sid) { unread += S.chats[sid].unread; if (!S.chats[sid].closed) open++; });
    n += unread;
    $("list-count").textContent = open + (unread ? " · " + unread + " non lu" + (unread > 1 ? "s" : "") : "") +
      (S.asyncCount ? " · " + S.asyncCount + " à traiter" : "");
    $("list-count").dataset.n = unread;
    document.title = (n ? "(" + n + ") " : "") + "Console — Brigade numérique";
  }

  // ---- composing ----------------------------------------------------------------------------
  // ---- photos ----------------------------------------------------------------------------------
  // Shown as thumbnails (same origin: the session cookie opens them); the full image in a
  // dialog, with a download the server audits. A gendarme may send one too (a diagram, a form):
  // it is uploaded first, then sent as a message whose cid makes a resend harmless.
  function photoButton(att) {
    var b = el("button", { type: "button", "class": "photo", "data-chatd": "photo", title: "Agrandir la photo" });
    var img = el("img", { alt: "Photo" });
    if (att.local) img.src = att.local; else showImage(img, att.thumb_url);
    b.appendChild(img);
    b.addEventListener("click", function () { openPhoto(att); });
    return b;
  }
  // Images are served with no-store (shared devices): each is fetched once per page and kept
  // as a blob until sign-out, not fetched again at every redraw of the conversation.
  var blobs = {};
  function showImage(img, url) {
    if (!blobs[url]) {
      blobs[url] = fetch(url, { credentials: "same-origin" }).then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.blob();
      }).then(function (b) { return URL.createObjectURL(b); });
      blobs[url].catch(function () { delete blobs[url]; });
    }
    blobs[url].then(function (src) { img.src = src; }, function () { img.alt = "Photo indisponible"; });
  }
  function forgetImages() {
    Object.keys(blobs).forEach(function (u) { blobs[u].then(URL.revokeObjectURL, function () {}); });
    blobs = {};
  }
  function openPhoto(att) {
    if (att.local) $("photo-full").src = att.local; else showImage($("photo-full"), att.url);
    $("photo-full").alt = "Photo de la conversation";
    $("photo-download").hidden = !att.url;
    if (att.url) {
      $("photo-download").href = att.url + (att.url.indexOf("?") === -1 ? "?" : "&") + "download=1";
      $("photo-download").setAttribute("download", "");
    }
    $("photo-dialog").showModal();
  }
  function clearPhoto() {
    if (S.photo && S.photo.local) URL.revokeObjectURL(S.photo.local);
    S.photo = null;
    $("photo-input").value = "";
    $("photo-preview").hidden = true;
    $("photo-preview-img").removeAttribute("src");
  }
  $("photo-input").addEventListener("change", function () {
    var file = $("photo-input").files[0];
    if (!file) return;
    if (!S.current) { toast("Ouvrez d'abord une conversation."); $("photo-input").value = ""; return; }
    clearPhoto();
    S.photo = { sid: S.current, file: file, local: URL.createObjectURL(file) };
    $("photo-preview-img").src = S.photo.local;
    $("photo-preview-text").textContent = "Photo prête : elle partira avec « Envoyer ».";
    $("photo-preview").hidden = false;
    $("input").focus();
  });
  $("photo-cancel").addEventListener("click", clearPhoto);
  var UPLOAD_ERRORS = {
    413: "Photo trop lourde.", 415: "Ce fichier n'est pas une photo acceptée (JPEG, PNG, WebP, HEIC).",
    422: "Cette image est illisible ou trop grande.", 429: "Trop de photos dans cette conversation.",
    409: "La conversation est terminée.", 404: "Conversation introuvable."
  };
  function upload(sid, file, tries) {
    var form = new FormData();
    form.append("session", sid);
    form.append("file", file);
    return fetch("/api/uploads", { method: "POST", body: form, credentials: "same-origin" }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) {
        if (r.ok) return data;
        var err = new Error(UPLOAD_ERRORS[r.status] || data.message || ("HTTP " + r.status));
        err.status = r.status;
        throw err;
      });
    }, function () {  // the network: try again a little later, a few times
      if (tries >= 4) throw new Error("Réseau indisponible : photo non envoyée.");
      return new Promise(function (ok) { setTimeout(ok, 1000 * (tries + 1)); }).then(function () { return upload(sid, file, tries + 1); });
    }).then(null, function (e) {
      if (e.status === 503 && tries < 4) {
        return new Promise(function (ok) { setTimeout(ok, 1500); }).then(function () { return upload(sid, file, tries + 1); });
      }
      throw e;
    });
  }
  function sendPhoto(c, text) {
    var photo = S.photo, cid = newCid();
    S.photo = null;
    $("photo-preview").hidden = true;
    $("photo-input").value = "";
    var mine = { seq: 0, from: "agent", text: text, ts: Date.now(), cid: cid, attachment: { local: photo.local } };
    c.messages.push(mine);
    c.waitingSince = null;
    renderMessages();
    upload(c.sid, photo.file, 0).then(function (up) {
      var item = { kind: "send", session: c.sid, cid: cid, text: text, attachment: up.id };
      S.outbox.push(item);
      saveOutbox();
      mine.attachment = { local: photo.local, id: up.id };
      send(sendFrame(item));
    }).catch(function (e) {
      c.messages = c.messages.filter(function (x) { return x !== mine; });
      if (S.current === c.sid) { renderMessages(); if (text && !$("input").value) $("input").value = text; }
      URL.revokeObjectURL(photo.local);
      toast("Photo non envoyée : " + e.message);
    });
  }

  function sendReply() {
    var sid = S.current, c = S.chats[sid];
    var text = $("input").value.trim();
    if (c && !c.closed && S.photo && S.photo.sid === sid) {
      if ([...text].length > 4000) { toast("Message trop long (4000 caractères au plus)."); return; }
      $("input").value = "";
      c.draft = "";
      stopTyping(c);
      sendPhoto(c, text);
      return;
    }
    if (!c || c.closed || !text) return;
    if ([...text].length > 4000) { toast("Message trop long (4000 caractères au plus)."); return; }
    var cid = newCid();
    S.outbox.push({ kind: "send", session: sid, cid: cid, text: text });
    saveOutbox();
    c.messages.push({ seq: 0, from: "agent", text: text, ts: Date.now(), cid: cid });
    c.waitingSince = null;
    $("input").value = "";
    c.draft = "";
    stopTyping(c);
    send({ type: "send", session: sid, cid: cid, text: text });
    renderMessages();
    renderChatItem(c);
  }
  $("composer").addEventListener("submit", function (ev) { ev.preventDefault(); sendReply(); });
  $("input").addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) { ev.preventDefault(); sendReply(); }
  });
  $("input").addEventListener("input", function () {
    var c = S.chats[S.current];
    if (!c || c.closed) return;
    if (!S.typingOn) { S.typingOn = true; send({ type: "typing", session: c.sid, on: true }); }
    clearTimeout(S.typingTimer);
    S.typingTimer = setTimeout(function () { stopTyping(c); }, 4000);
  });
  function stopTyping(c) {
    clearTimeout(S.typingTimer);
    if (S.typingOn && c) send({ type: "typing", session: c.sid, on: false });
    S.typingOn = false;
  }

  $("note-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var c = S.chats[S.current], text = $("note-input").value.trim();
    if (!c || !text) return;
    var cid = newCid();
    S.outbox.push({ kind: "note", session: c.sid, cid: cid, text: text });
    saveOutbox();
    c.notes.push({ nseq: 0, from_agent: S.me.login, from_agent_name: S.me.name, text: text, ts: Date.now(), cid: cid });
    $("note-input").value = "";
    send({ type: "note", session: c.sid, cid: cid, text: text });
    renderNotes();
  });

  // ---- transfer, close and block ---------------------------------------------------------
  // Nothing is preselected: a wrong transfer or outcome is worse than one more tap. The
  // colleague list is fetched before the dialog opens, so it is there when the choice is made.
  function statusLabel(st) {
    return { available: "disponible", away: "absent·e", offline: "hors ligne" }[st] || st;
  }
  $("transfer").addEventListener("click", function () {
    var sid = S.current;
    if (!sid) return;
    var btn = $("transfer");
    btn.disabled = true;
    api("GET", "/api/agents").then(function (data) { return data.agents; }, function () { return null; }).then(function (list) {
      btn.disabled = false;
      if (S.current !== sid || !S.chats[sid] || S.chats[sid].closed) return;
      var sel = $("transfer-target");
      sel.textContent = "";
      sel.appendChild(el("option", { value: "", disabled: "", selected: "" }, "— Choisir un collègue ou une file —"));
      var agents = el("optgroup", { label: "Un collègue" });
      (list || []).forEach(function (a) {
        if (a.login === S.me.login) return;
        var free = a.status !== "offline" && a.load < a.capacity;
        var opt = el("option", { value: "agent:" + a.login }, a.name + " — " + statusLabel(a.status) +
          (a.status === "offline" ? "" : " (" + a.load + " / " + a.capacity + ")"));
        if (!free) opt.disabled = true;
        agents.appendChild(opt);
      });
      if (agents.children.length) sel.appendChild(agents);
      var topics = el("optgroup", { label: "Une file d'attente (le premier gendarme disponible)" });
      Object.keys(S.topics).forEach(function (id) { topics.appendChild(el("option", { value: "topic:" + id }, topicLabel(id))); });
      sel.appendChild(topics);
      $("transfer-info").hidden = !!list;
      $("transfer-info").textContent = list ? "" : "La liste des collègues n'a pas pu être chargée : seules les files sont proposées.";
      $("transfer-note").value = "";
      $("transfer-dialog").dataset.session = sid;
      $("transfer-dialog").showModal();
    });
  });
  $("transfer-dialog").addEventListener("close", function () {
    var d = $("transfer-dialog");
    if (d.returnValue !== "ok") return;
    var v = $("transfer-target").value, sid = d.dataset.session, note = $("transfer-note").value.trim();
    if (!v || !S.chats[sid]) return;
    var frame = { type: "transfer", session: sid };
    if (v.indexOf("agent:") === 0) frame.to_agent = v.slice(6); else frame.to_topic = v.slice(6);
    if (note) frame.note = note;
    send(frame);
  });

  // A chat the person ended (quick exit, closed, gone) still needs its outcome recorded.
  function needsOutcome(c) { return !!c.closed && c.closed.by !== "agent" && !c.disposition && c.closed.reason !== "gone"; }
  $("close").addEventListener("click", function () {
    var c = S.chats[S.current];
    if (!c) return;
    $("disposition").value = "";
    $("close-info").hidden = !c.closed;
    $("close-info").textContent = c.closed ? "La personne a déjà quitté la conversation : indiquez son issue." : "";
    $("close-confirm").textContent = c.closed ? "Enregistrer l'issue" : "Clôturer";
    $("close-dialog").dataset.session = c.sid;
    $("close-dialog").showModal();
  });
  $("close-dialog").addEventListener("close", function () {
    var d = $("close-dialog");
    if (d.returnValue !== "ok") return;
    var sid = d.dataset.session, disposition = $("disposition").value;
    if (S.chats[sid] && disposition) {
      S.chats[sid].closing = disposition;
      send({ type: "close", session: sid, disposition: disposition });
    }
  });

  $("block").addEventListener("click", function () {
    if (!S.current) return;
    $("block-reason").value = "";
    $("block-hours").value = "24";
    $("block-sure").checked = false;
    $("block-dialog").dataset.session = S.current;
    $("block-dialog").showModal();
  });
  $("block-dialog").addEventListener("close", function () {
    var d = $("block-dialog");
    if (d.returnValue !== "ok") return;
    var sid = d.dataset.session;
    if (S.chats[sid] && $("block-sure").checked) {
      send({ type: "block", session: sid, hours: +$("block-hours").value, reason: $("block-reason").value.trim() });
    }
  });

  // ---- availability, sound, notifications ---------------------------------------------------
  $("availability").addEventListener("change", function () { chooseStatus($("availability").value); });
  $("status-action").addEventListener("click", function () { chooseStatus("available"); });
  try { $("sound").checked = localStorage.getItem("chatd.console.sound") === "1"; } catch (e) { /* none */ }
  $("sound").addEventListener("change", function () {
    try { localStorage.setItem("chatd.console.sound", $("sound").checked ? "1" : "0"); } catch (e) { /* none */ }
    if ($("sound").checked) $("sound-hint").hidden = true;
  });
  // Offers expire after 30 s and the sound is off until chosen: said once at sign-in.
  function soundHintSeen() {
    try { return localStorage.getItem("chatd.console.sound-hint") === "1"; } catch (e) { return false; }
  }
  $("sound-on").addEventListener("click", function () {
    $("sound").checked = true;
    $("sound").dispatchEvent(new Event("change"));
  });
  $("sound-hint-close").addEventListener("click", function () {
    $("sound-hint").hidden = true;
    try { localStorage.setItem("chatd.console.sound-hint", "1"); } catch (e) { /* none */ }
  });
  $("menu-toggle").addEventListener("click", function () {
    var open = $("extras").classList.toggle("open");
    $("menu-toggle").setAttribute("aria-expanded", open);
  });

  // ---- drawers (narrow screens): the chat list, and the notes with canned answers -----------
  function narrow() { return getComputedStyle(document.querySelector(".panebar")).display !== "none"; }
  function openDrawer(name) {
    document.body.dataset.drawer = name || "";
    $("drawer-backdrop").hidden = !name || !narrow();
    $("open-list").setAttribute("aria-expanded", name === "list");
    $("open-tools").setAttribute("aria-expanded", name === "tools");
    var panel = name === "list" ? $("list-panel") : name === "tools" ? $("tools-panel") : null;
    if (panel && narrow()) { var f = panel.querySelector("button, input, textarea"); if (f) f.focus(); }
  }
  $("open-list").addEventListener("click", function () { openDrawer(document.body.dataset.drawer === "list" ? "" : "list"); });
  $("open-tools").addEventListener("click", function () { openDrawer(document.body.dataset.drawer === "tools" ? "" : "tools"); });
  $("drawer-backdrop").addEventListener("click", function () { openDrawer(""); });
  document.querySelectorAll("[data-close-drawer]").forEach(function (b) { b.addEventListener("click", function () { openDrawer(""); }); });
  document.addEventListener("keydown", function (ev) { if (ev.key === "Escape" && document.body.dataset.drawer) openDrawer(""); });
  $("notify").addEventListener("click", function () {
    if (!window.Notification) { toast("Ce navigateur n'affiche pas de notifications."); return; }
    Notification.requestPermission().then(function (p) {
      toast(p === "granted" ? "Notifications activées." : "Notifications refusées par le navigateur.");
    });
  });

  // ---- canned answers -----------------------------------------------------------------------
  function loadCanned() {
    api("GET", "/api/canned").then(function (data) { S.canned = data; renderCanned(); }).catch(function () { /* retried at next sign-in */ });
  }
  function renderCanned() {
    var q = fold($("canned-search").value.trim());
    var c = S.chats[S.current];
    var topic = c && c.visitor.topic;
    var all = S.canned.mine.map(function (x) { return Object.assign({ mine: true }, x); }).concat(S.canned.shared);
    var list = all.filter(function (x) { return !q || fold(x.title + " " + x.text).indexOf(q) !== -1; });
    list.sort(function (a, b) {
      var ra = a.topics && a.topics.indexOf(topic) !== -1 ? 0 : 1, rb = b.topics && b.topics.indexOf(topic) !== -1 ? 0 : 1;
      return ra - rb;
    });
    var ul = $("canned-list");
    ul.textContent = "";
    list.forEach(function (x) {
      var li = el("li", { "data-chatd": "canned" });
      var b = el("button", { type: "button", title: "Insérer dans la réponse" });
      b.appendChild(el("strong", null, x.title));
      if (x.mine) b.appendChild(el("span", { "class": "mine" }, " · personnelle"));
      b.appendChild(el("span", { "class": "text" }, x.text));
      b.addEventListener("click", function () { insertCanned(x.text); });
      li.appendChild(b);
      if (x.mine) {
        var del = el("button", { type: "button", "class": "small" }, "Supprimer");
        del.addEventListener("click", function () {
          api("DELETE", "/api/canned/" + encodeURIComponent(x.id), {}).then(loadCanned).catch(function (e) { toast(e.message); });
        });
        li.appendChild(del);
      }
      ul.appendChild(li);
    });
  }
  function insertCanned(text) {
    var input = $("input");
    if (!S.current || S.chats[S.current].closed) { toast("Ouvrez d'abord une conversation."); return; }
    if (document.body.dataset.drawer === "tools") openDrawer("");
    var start = input.selectionStart || 0, end = input.selectionEnd || 0, v = input.value;
    input.value = v.slice(0, start) + text + v.slice(end);
    input.focus();
    input.selectionStart = input.selectionEnd = start + text.length;
  }
  $("canned-search").addEventListener("input", renderCanned);
  $("canned-search").addEventListener("keydown", function (ev) {
    if (ev.key === "Enter") {
      ev.preventDefault();
      var first = document.querySelector("#canned-list li button");
      if (first) first.click();
    }
  });
  $("canned-open").addEventListener("click", function () {
    if (narrow()) openDrawer("tools");
    $("canned-search").focus();
  });
  $("canned-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    api("POST", "/api/canned", { title: $("canned-new-title").value, text: $("canned-new-text").value })
      .then(function () {
        $("canned-new-title").value = ""; $("canned-new-text").value = ""; $("canned-search").value = "";
        loadCanned(); toast("Réponse enregistrée.");
      })
      .catch(function (e) { toast("Non enregistrée : " + e.message); });
  });

  // ---- keyboard -----------------------------------------------------------------------------
  document.addEventListener("keydown", function (ev) {
    if (!ev.altKey || $("app").hidden) return;
    var k = ev.key.toLowerCase(), o;
    if (k === "a" && (o = oldestOffer())) { ev.preventDefault(); accept(o.sid); }
    else if (k === "d" && (o = oldestOffer())) { ev.preventDefault(); decline(o.sid); }
    else if (k === "r") { ev.preventDefault(); if (narrow()) openDrawer("tools"); $("canned-search").focus(); }
    else if (/^[1-9]$/.test(k) && S.order[+k - 1]) { ev.preventDefault(); openChat(S.order[+k - 1]); $("input").focus(); }
  });
  document.addEventListener("visibilitychange", function () {
    var c = S.chats[S.current];
    if (!document.hidden && c) { c.unread = 0; renderChatItem(c); markRead(c); attention(); }
  });

  // ---- every second: countdowns and waiting timers ------------------------------------------
  setInterval(function () {
    Object.keys(S.offers).forEach(function (sid) {
      var li = document.querySelector("#offers li[data-session='" + sid + "']");
      if (li) tickOffer(S.offers[sid], li);
    });
    S.order.forEach(function (sid) { renderChatItem(S.chats[sid]); });
    if (S.current && S.chats[S.current]) renderPresence(S.chats[S.current]);
  }, 1000);

  // ---- supervision --------------------------------------------------------------------------
  function showView(name) {
    $("view-chats").hidden = name !== "chats";
    $("view-supervision").hidden = name !== "supervision";
    $("tab-chats").setAttribute("aria-pressed", name === "chats");
    $("tab-supervision").setAttribute("aria-pressed", name === "supervision");
    clearInterval(S.svTimer);
    if (name !== "supervision") { clearTimeout(S.svReadTimer); S.svRead = null; $("sv-transcript").hidden = true; }
    if (name === "supervision") { refreshSupervision(); S.svTimer = setInterval(refreshSupervision, 2000); }
  }
  $("tab-chats").addEventListener("click", function () { showView("chats"); });
  $("tab-supervision").addEventListener("click", function () { showView("supervision"); });

  function cells(tr, values) { values.forEach(function (v) { tr.appendChild(el("td", null, v)); }); return tr; }
  function refreshSupervision() {
    Promise.all([api("GET", "/api/stats"), api("GET", "/api/sessions")]).then(function (r) {
      var stats = r[0], open = r[1].sessions;
      var q = $("sv-queues");
      q.textContent = "";
      Object.keys(stats.queues).forEach(function (id) {
        var s = stats.queues[id];
        var tr = cells(el("tr", { "data-topic": id }), [topicLabel(id), String(s.waiting), s.waiting ? ago(s.longest_wait_s * 1000) : "—"]);
        if (s.longest_wait_s > LATE_S) tr.lastChild.className = "late";
        q.appendChild(tr);
      });
      $("sv-summary").textContent = stats.active_sessions + " conversation(s) ouvertes · " + stats.offers_pending + " demande(s) proposée(s)";
      var a = $("sv-agents");
      a.textContent = "";
      stats.agents.forEach(function (g) {
        var label = { available: "disponible", away: "absent·e", offline: "hors ligne" }[g.status] || g.status;
        a.appendChild(cells(el("tr", { "data-agent": g.login, "data-status": g.status }),
          [g.name, label, g.status === "offline" ? "—" : g.load + " / " + g.capacity]));
      });
      var t = $("sv-open");
      t.textContent = "";
      open.forEach(function (s) {
        var state = { queued: "en attente", offered: "proposée", active: "en cours" }[s.state] || s.state;
        var tr = cells(el("tr", { "data-session": s.session }), [topicLabel(s.topic), state, s.agent_name || s.agent || "—", ago(stats.server_time - s.created)]);
        var td = el("td");
        var b = el("button", { type: "button", "class": "small" }, "Lire");
        b.addEventListener("click", function () { readTranscript(s.session, s.agent, s.agent_name); });
        td.appendChild(b);
        tr.appendChild(td);
        t.appendChild(tr);
      });
      $("sv-updated").textContent = "· mis à jour à " + new Date().toLocaleTimeString("fr-FR");
    }).catch(function (e) { if (e.status !== 401) $("sv-updated").textContent = "· mise à jour impossible"; });
  }
  // A supervisor's reading follows the chat live (only what is new is fetched, every 2 s); it
  // can take the chat over or hand it to someone else, both told to the gendarme and audited.
  function readTranscript(sid, agent, agentName) {
    clearTimeout(S.svReadTimer);
    S.svRead = { sid: sid, seq: 0, nseq: 0, agent: agent, agentName: agentName };
    $("sv-messages").textContent = "";
    $("sv-transcript").hidden = false;
    pollTranscript(true);
  }
  function pollTranscript(first) {
    var r = S.svRead;
    if (!r) return;
    var q = first ? "" : "?after=" + r.seq + "&notes_after=" + r.nseq;
    api("GET", "/api/sessions/" + encodeURIComponent(r.sid) + q).then(function (t) {
      if (S.svRead !== r) return;
      var ol = $("sv-messages");
      t.messages.forEach(function (x) {
        if (x.seq <= r.seq) return;
        r.seq = x.seq;
        var li = el("li", { "data-from": x.from, "data-seq": x.seq });
        if (x.attachment) li.appendChild(photoButton(x.attachment));
        if (x.text) li.appendChild(document.createTextNode(x.text));
        li.appendChild(el("span", { "class": "meta" }, ({ visitor: "Personne", agent: "Gendarme", system: "Information" }[x.from] || x.from) + " · " + clock(x.ts)));
        ol.appendChild(li);
      });
      (t.notes || []).forEach(function (n) {
        if (n.nseq <= r.nseq) return;
        r.nseq = n.nseq;
        ol.appendChild(el("li", { "data-from": "system" }, "Note de " + (n.from_agent_name || n.from_agent) + " : " + n.text));
      });
      ol.scrollTop = ol.scrollHeight;
      r.state = t.state;
      $("sv-transcript-title").textContent = "Lecture · " + topicLabel(t.topic) + " · " +
        (t.agent_name || (t.agent && t.agent === r.agent ? r.agentName : t.agent) || "sans gendarme") + (t.state === "closed" ? " · terminée" : "");
      $("sv-take-over").disabled = $("sv-reassign").disabled = t.state === "closed" || t.agent === S.me.login;
      if (t.state !== "closed") S.svReadTimer = setTimeout(pollTranscript, 2000);
    }).catch(function (e) {
      if (S.svRead !== r) return;
      if (e.code === "not_found") { toast("Conversation introuvable."); return; }
      S.svReadTimer = setTimeout(pollTranscript, 4000);  // a passing failure: try again
    });
  }
  $("sv-close-transcript").addEventListener("click", function () {
    clearTimeout(S.svReadTimer);
    S.svRead = null;
    $("sv-transcript").hidden = true;
  });
  $("sv-take-over").addEventListener("click", function () {
    var r = S.svRead;
    if (!r || !confirm("Reprendre cette conversation ? Le gendarme qui la tient en est informé ; l'action est enregistrée.")) return;
    S.pendingAccept[r.sid] = true;
    S.takingOver = r.sid;
    send({ type: "take_over", session: r.sid });
  });
  $("sv-reassign").addEventListener("click", function () {
    var r = S.svRead;
    if (!r) return;
    api("GET", "/api/agents").then(function (d) { return d.agents; }, function () { return []; }).then(function (list) {
      var sel = $("reassign-target");
      sel.textContent = "";
      sel.appendChild(el("option", { value: "", disabled: "", selected: "" }, "— Choisir un gendarme ou une file —"));
      var agents = el("optgroup", { label: "Un gendarme" });
      list.forEach(function (a) {
        var opt = el("option", { value: "agent:" + a.login }, a.name + " — " + statusLabel(a.status) +
          (a.status === "offline" ? "" : " (" + a.load + " / " + a.capacity + ")"));
        if (a.status === "offline" || a.load >= a.capacity) opt.disabled = true;
        agents.appendChild(opt);
      });
      sel.appendChild(agents);
      var topics = el("optgroup", { label: "Une file d'attente" });
      Object.keys(S.topics).forEach(function (id) { topics.appendChild(el("option", { value: "topic:" + id }, topicLabel(id))); });
      sel.appendChild(topics);
      $("reassign-note").value = "";
      $("reassign-dialog").dataset.session = r.sid;
      $("reassign-dialog").showModal();
    });
  });
  $("reassign-dialog").addEventListener("close", function () {
    var d = $("reassign-dialog");
    if (d.returnValue !== "ok") return;
    var v = $("reassign-target").value, note = $("reassign-note").value.trim();
    if (!v) return;
    var frame = { type: "reassign", session: d.dataset.session };
    if (v.indexOf("agent:") === 0) frame.to_agent = v.slice(6); else frame.to_topic = v.slice(6);
    if (note) frame.note = note;
    S.reassigning = d.dataset.session;
    send(frame);
  });

  // ---- start --------------------------------------------------------------------------------
  fetch("/api/topics").then(function (r) { return r.json(); }).then(function (list) {
    list.forEach(function (t) { S.topics[t.id] = t; });
  }).catch(function () { /* labels fall back to ids */ }).then(function () {
    return api("GET", "/api/me").then(function (d) { begin(d.agent); });
  }).catch(function () { showSignin(); });
})();

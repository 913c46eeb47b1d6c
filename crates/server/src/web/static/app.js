// Frontdesk's only script: small progressive enhancements. Pages work without it.
"use strict";

document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = form instanceof HTMLFormElement ? form.dataset.confirm : undefined;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

document.addEventListener("focusin", (event) => {
  const el = event.target;
  if (el instanceof HTMLInputElement && el.classList.contains("copy")) {
    el.select();
  }
});

// WhatsApp simulator phone: the customer "sees" the business's messages (posting their
// read status), status ticks follow the JSON endpoint, and new messages reload the chat
// unless the person is typing. Photos are posted with the CSRF header (multipart forms
// cannot carry the token where the guard reads it).
(() => {
  const phone = document.getElementById("sim-phone");
  if (!phone) return;
  const csrf = phone.dataset.csrf;
  const chat = document.getElementById("sim-chat");
  const ticks = { accepted: "\u{1F553}", sent: "\u2713", delivered: "\u2713\u2713", received: "\u2713\u2713", read: "\u2713\u2713", failed: "\u26A0" };
  const post = (url, body) => fetch(url, { method: "POST", headers: { "x-csrf-token": csrf }, body, credentials: "same-origin" });
  const seen = () => post(phone.dataset.seen);
  const typing = () => {
    const el = document.activeElement;
    return el instanceof HTMLInputElement && el.value !== "";
  };
  const poll = async () => {
    try {
      const r = await fetch(phone.dataset.poll, { credentials: "same-origin" });
      if (!r.ok) return;
      const data = await r.json();
      const shown = Number(chat.dataset.count);
      if (data.messages.length !== shown) {
        if (!typing()) window.location.reload();
        return;
      }
      let unseen = false;
      for (const m of data.messages) {
        const li = chat.querySelector(`li[data-wamid="${CSS.escape(m.wamid)}"]`);
        if (!li) continue;
        li.dataset.status = m.status;
        const t = li.querySelector(".sim-ticks");
        if (t) {
          t.textContent = ticks[m.status] || "";
          t.classList.toggle("read", m.status === "read");
        }
        if (m.direction === "to_customer" && ["accepted", "sent", "delivered"].includes(m.status)) unseen = true;
      }
      if (unseen) seen();
    } catch (_) {
      // The next poll tries again.
    }
  };
  chat.scrollTop = chat.scrollHeight;
  seen();
  window.setInterval(poll, 2000);
  const image = document.getElementById("sim-image");
  if (image) {
    image.addEventListener("submit", async (event) => {
      event.preventDefault();
      const r = await post(image.action, new FormData(image));
      if (r.ok || r.redirected) window.location.reload();
      else window.alert("The photo was not sent (" + r.status + ").");
    });
  }
})();

// Team inbox: the composer's helpers (quick replies, emoji, file upload) and live updates.
// Changes arrive on the event stream (`/api/v1/events`); while it is not open (endpoint
// missing, a buffering proxy), the page polls every 3 s instead. Either way the changed
// parts are fetched as JSON and drawn with DOM APIs and textContent, never as HTML.
(() => {
  const inbox = document.getElementById("inbox");
  if (!inbox) return;
  const csrf = inbox.dataset.csrf;
  const open = inbox.dataset.open;
  const query = inbox.dataset.listQuery || "";
  const get = (url) => fetch(url, { credentials: "same-origin", headers: { accept: "application/json" } });
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  };
  const when = (iso) => (typeof iso === "string" && iso.length >= 16 ? iso.slice(0, 10) + " " + iso.slice(11, 16) + " UTC" : "");
  const tickFor = { queued: "\u{1F553}", accepted: "\u{1F553}", sent: "\u2713", delivered: "\u2713\u2713", read: "\u2713\u2713", failed: "\u26A0" };

  // Composer: a quick reply fills the box (already filled in with this conversation's
  // variables by the server); an emoji goes in at the cursor.
  const body = document.getElementById("reply-body");
  const quick = document.getElementById("quick-replies");
  if (quick && body) {
    quick.addEventListener("change", () => {
      const o = quick.selectedOptions[0];
      if (o && o.dataset.text) {
        body.value = o.dataset.text;
        body.focus();
      }
    });
  }
  document.addEventListener("click", (event) => {
    const b = event.target;
    if (!(b instanceof HTMLButtonElement) || !b.classList.contains("emoji-pick") || !body) return;
    const at = body.selectionStart ?? body.value.length;
    body.value = body.value.slice(0, at) + b.dataset.emoji + body.value.slice(body.selectionEnd ?? at);
    body.focus();
  });
  const upload = document.getElementById("upload-form");
  const composer = document.getElementById("composer");
  if (upload && composer) {
    upload.addEventListener("submit", async (event) => {
      event.preventDefault();
      const data = new FormData(upload);
      const caption = String(data.get("caption") || "");
      data.delete("caption");
      const r = await fetch("/api/v1/media", { method: "POST", credentials: "same-origin", headers: { "x-csrf-token": csrf }, body: data });
      if (!r.ok) {
        window.alert("The file was not accepted (" + r.status + ").");
        return;
      }
      const file = await r.json();
      const message = { type: "media", media_type: file.kind, source: { upload: file.id } };
      if (caption && file.kind !== "audio" && file.kind !== "sticker") message.caption = caption;
      if (file.kind === "document" && file.filename) message.filename = file.filename;
      const s = await fetch("/api/v1/messages", {
        method: "POST",
        credentials: "same-origin",
        headers: { "x-csrf-token": csrf, "content-type": "application/json" },
        body: JSON.stringify({ channel_id: composer.dataset.channel, to: { contact_id: composer.dataset.contact }, message }),
      });
      if (!s.ok) window.alert("The file was not sent (" + s.status + ").");
      upload.reset();
      refresh();
    });
  }

  // The list.
  const list = document.getElementById("conv-list");
  const renderList = (page) => {
    if (!list) return;
    const rows = page.items.map((c) => {
      const li = el("li", "conv" + (c.id === open ? " active" : ""));
      li.dataset.conversationId = c.id;
      const a = el("a");
      a.href = "/inbox/" + encodeURIComponent(c.id) + (query ? "?" + query : "");
      const who = c.contact.name || c.contact.username || c.contact.phone || "Customer";
      a.append(el("span", "conv-name", who));
      if (c.unread > 0) {
        const badge = el("span", "badge unread", String(c.unread));
        badge.dataset.testid = "conv-unread";
        a.append(badge);
      }
      a.append(el("span", "conv-preview", c.last_preview), el("span", "conv-meta", c.status + " \u00B7 " + when(c.last_message_at)));
      li.append(a);
      return li;
    });
    list.replaceChildren(...rows);
    for (const key of ["mine", "unassigned", "all"]) {
      const b = inbox.querySelector(`[data-unread="${key}"]`);
      if (b) {
        b.textContent = String(page.unread[key]);
        b.hidden = page.unread[key] === 0;
      }
    }
  };

  // The open conversation.
  const history = document.getElementById("conv-history");
  const messageItem = (m) => {
    const li = el("li", "msg " + (m.direction === "in" ? "in" : "out"));
    li.dataset.messageId = m.id;
    li.dataset.at = String(Date.parse(m.created_at));
    li.dataset.kind = m.kind;
    if (m.quoted) {
      const q = el("blockquote", "quote", m.quoted.preview);
      q.dataset.testid = "quoted";
      li.append(q);
    }
    if (m.media_url) {
      let media;
      if (m.kind === "image" || m.kind === "sticker") {
        media = el("img", "msg-image");
        media.alt = "image";
      } else if (m.kind === "audio" || m.kind === "video") {
        media = el(m.kind);
        media.controls = true;
      } else {
        media = el("a", null, "\u{1F4C4} document");
        media.href = m.media_url;
      }
      if (media.tagName !== "A") media.src = m.media_url;
      li.append(media);
    }
    const text = el("p", "msg-text", m.preview);
    text.dataset.testid = "message-text";
    li.append(text);
    const meta = el("span", "msg-meta", when(m.created_at));
    if (m.direction !== "in") {
      const t = el("span", "ticks");
      t.dataset.testid = "ticks";
      meta.append(" ", t);
    }
    li.append(meta);
    return li;
  };
  const updateStatus = (li, m) => {
    li.dataset.status = m.status;
    const t = li.querySelector(".ticks");
    if (t) {
      t.textContent = tickFor[m.status] || "";
      t.title = m.status;
      t.classList.toggle("read", m.status === "read");
    }
    if (m.status === "failed" && !li.querySelector(".msg-failed")) {
      const p = el("p", "error msg-failed", "Not delivered" + (m.error_code ? " (" + m.error_code + ")" : "") + (m.error_title ? ": " + m.error_title : ""));
      p.dataset.testid = "failed-reason";
      li.append(p);
    }
  };
  const noteItem = (n) => {
    const li = el("li", "note");
    li.dataset.noteId = n.id;
    li.dataset.testid = "note";
    // Mentions come as parts from the server; every part is text (textContent), never HTML.
    const text = el("p", "note-text");
    text.dataset.testid = "note-text";
    for (const part of n.parts || [{ kind: "text", text: n.body }]) {
      if (part.kind === "mention") {
        const m = el("span", "mention", "@" + part.name);
        m.dataset.userId = part.user_id;
        m.dataset.testid = "mention";
        text.append(m);
      } else {
        text.append(document.createTextNode(part.text));
      }
    }
    li.append(el("span", "note-author", "Note"), text, el("span", "msg-meta", when(n.created_at)));
    return li;
  };
  const renderConversation = (d) => {
    if (!history) return;
    let added = false;
    for (const m of [...d.messages].reverse()) {
      let li = history.querySelector(`li[data-message-id="${CSS.escape(m.id)}"]`);
      if (!li) {
        li = messageItem(m);
        history.append(li);
        added = true;
      }
      updateStatus(li, m);
    }
    for (const n of d.notes) {
      if (!history.querySelector(`li[data-note-id="${CSS.escape(n.id)}"]`)) {
        history.append(noteItem(n));
        added = true;
      }
    }
    if (added) history.scrollTop = history.scrollHeight;
    const status = document.querySelector("[data-testid=conversation-status]");
    if (status) status.textContent = d.status;
    const assignee = document.querySelector("[data-testid=conversation-assignee]");
    const select = document.querySelector("[data-testid=assign-form] select");
    if (assignee && select) {
      const name = (v) => {
        const o = v && [...select.options].find((x) => x.value === v);
        return o ? o.textContent : null;
      };
      const user = name(d.assignee_id ? "user:" + d.assignee_id : null);
      const team = name(d.team_id ? "team:" + d.team_id : null);
      assignee.textContent = user ? user : team ? team : "unassigned";
    }
  };

  // Older messages: the next page before the oldest shown, each put in its place by time
  // (notes of that time are on the page already).
  const older = document.querySelector("[data-testid=older-messages]");
  if (older && history) {
    older.addEventListener("click", async () => {
      older.disabled = true;
      try {
        const r = await get("/api/v1/conversations/" + encodeURIComponent(history.dataset.conversationId) + "?limit=100&cursor=" + encodeURIComponent(older.dataset.cursor));
        if (!r.ok) return;
        const d = await r.json();
        for (const m of d.messages) {
          if (history.querySelector(`li[data-message-id="${CSS.escape(m.id)}"]`)) continue;
          const li = messageItem(m);
          updateStatus(li, m);
          const at = Number(li.dataset.at);
          const after = [...history.children].find((x) => Number(x.dataset.at) > at);
          history.insertBefore(li, after || null);
        }
        if (d.next_cursor) older.dataset.cursor = d.next_cursor;
        else older.remove();
      } catch (_) {
        // Clicking again tries again.
      } finally {
        older.disabled = false;
      }
    });
  }

  let pending = null;
  let again = false;
  const refresh = () => {
    // One fetch at a time; a change announced while one runs fetches again after it.
    if (pending) {
      again = true;
      return;
    }
    pending = window.setTimeout(async () => {
      try {
        const [l, c] = await Promise.all([
          get("/api/v1/conversations" + (query ? "?" + query : "")),
          open ? get("/api/v1/conversations/" + encodeURIComponent(open) + "?limit=100") : null,
        ]);
        if (l && l.ok) renderList(await l.json());
        if (c && c.ok) renderConversation(await c.json());
      } catch (_) {
        // The next event or poll tries again.
      } finally {
        pending = null;
        if (again) {
          again = false;
          refresh();
        }
      }
    }, 100);
  };
  if (history) history.scrollTop = history.scrollHeight;
  let events = null;
  if (typeof EventSource === "function") {
    events = new EventSource("/api/v1/events");
    window.frontdeskEvents = events;
    for (const kind of ["message.new", "message.status", "conversation.updated", "note.new", "notification", "resync"]) {
      events.addEventListener(kind, refresh);
    }
    // Whatever changed between rendering the page and the stream opening (or while it
    // reconnected) is fetched once it is open.
    events.addEventListener("open", refresh);
    // A 404 (no endpoint) closes it for good; polling carries on below.
    events.onerror = () => {};
  }
  window.setInterval(() => {
    if (!events || events.readyState !== EventSource.OPEN) refresh();
  }, 3000);
})();

// Clinic queue board and waiting-room screen: kept current without a reload. A
// `queue.changed` event for this queue on the event stream refreshes at once; while the
// stream is not open (no endpoint, a buffering proxy, reconnecting) the page refreshes every
// 3 s instead. The board re-reads its own page and swaps the live section (the server
// renders it, escaped, with the caller's permissions and CSRF tokens); the screen reads its
// JSON and writes text only.
(() => {
  const live = document.querySelector("[data-live-queue]");
  if (!live) return;
  const queueId = live.dataset.liveQueue;
  const kind = live.dataset.liveKind;
  let busy = false;

  const editing = () => {
    const el = document.activeElement;
    return el instanceof HTMLElement && el !== document.body && el.closest("#queue-live") !== null
      && (el instanceof HTMLInputElement || el instanceof HTMLSelectElement || el instanceof HTMLTextAreaElement);
  };

  const fill = (list, labels) => {
    const items = labels.map((label) => {
      const li = document.createElement("li");
      li.textContent = label;
      return li;
    });
    list.replaceChildren(...items);
  };

  const refreshScreen = async () => {
    const r = await fetch(live.dataset.screenUrl, { credentials: "same-origin", cache: "no-store" });
    if (!r.ok) return;
    const s = await r.json();
    fill(document.getElementById("screen-now"), s.now_serving);
    fill(document.getElementById("screen-next"), s.up_next);
    document.getElementById("screen-waiting").textContent = String(s.waiting);
    document.querySelector("[data-testid=screen-paused]").hidden = !s.paused;
  };

  const refreshBoard = async () => {
    if (editing()) return;
    const r = await fetch(window.location.pathname, { credentials: "same-origin", cache: "no-store" });
    if (!r.ok || r.redirected) return;
    // Parsed inertly (no script runs in a DOMParser document), then adopted.
    const doc = new DOMParser().parseFromString(await r.text(), "text/html");
    const fresh = doc.getElementById("queue-live");
    const current = document.getElementById("queue-live");
    // Unchanged: leave the page alone (nothing flickers, nothing under the pointer moves).
    if (!fresh || !current || fresh.innerHTML === current.innerHTML || editing()) return;
    current.replaceWith(document.importNode(fresh, true));
  };

  const refresh = async () => {
    if (busy) return;
    busy = true;
    try {
      await (kind === "screen" ? refreshScreen() : refreshBoard());
    } catch (_) {
      // The next event or poll tries again.
    } finally {
      busy = false;
    }
  };

  let timer = null;
  const poll = () => { if (timer === null) timer = window.setInterval(refresh, 3000); };
  const stopPolling = () => { if (timer !== null) { window.clearInterval(timer); timer = null; } };
  poll();
  if (!("EventSource" in window)) return;
  const events = new EventSource("/api/v1/events");
  window.frontdeskEvents = events;
  const onEvent = (e) => {
    let data;
    try { data = JSON.parse(e.data); } catch (_) { return; }
    const id = data.queue_id || (data.data && data.data.queue_id);
    if (data.type === "queue.changed" && id === queueId) refresh();
  };
  events.addEventListener("message", onEvent);
  events.addEventListener("queue.changed", onEvent);
  events.addEventListener("open", () => { stopPolling(); refresh(); });
  events.addEventListener("error", () => { if (events.readyState !== EventSource.OPEN) poll(); });
})();

// Template editor: the preview redraws the message as a phone shows it while one types,
// with the examples in place of the variables (the server draws the same on load).
(() => {
  const form = document.getElementById("template-form");
  const preview = document.getElementById("template-preview");
  if (!form || !preview) return;
  const value = (name) => {
    const el = form.elements.namedItem(name);
    return el && "value" in el ? el.value.trim() : "";
  };
  const varsOf = (text) => {
    const out = [];
    for (const m of text.matchAll(/\{\{\s*([a-z0-9_]+)\s*\}\}/g)) {
      if (!out.includes(m[1])) out.push(m[1]);
    }
    return out;
  };
  const fill = (text, values) => {
    const vars = varsOf(text);
    let out = text;
    vars.forEach((v, i) => {
      if (values[i] !== undefined && values[i] !== "") out = out.split(`{{${v}}}`).join(values[i]);
    });
    return out;
  };
  const draw = () => {
    const parts = [];
    const format = value("header_format");
    if (format === "text") parts.push(fill(value("header_text"), [value("header_example")]));
    else if (format && format !== "none") parts.push(`[${format}]`);
    const examples = value("body_examples").split("\n").map((s) => s.trim()).filter((s) => s !== "");
    parts.push(fill(value("body_text"), examples));
    const footer = value("footer");
    if (footer) parts.push(footer);
    const labels = [];
    for (let n = 0; n < 10; n += 1) {
      const kind = value(`button_${n}_type`);
      if (!kind || kind === "none") continue;
      labels.push(`[${kind === "copy_code" ? "Copy code" : value(`button_${n}_text`)}]`);
    }
    if (labels.length) parts.push(labels.join(" "));
    preview.textContent = parts.join("\n");
  };
  form.addEventListener("input", draw);
  form.addEventListener("change", draw);
  draw();
})();

// Inbox template form: only the chosen template's inputs are shown (the form carries one
// set per approved template, named after it, and works without this script).
(() => {
  for (const select of document.querySelectorAll("select.template-choice")) {
    const form = select.form;
    if (!form) continue;
    const show = () => {
      for (const fs of form.querySelectorAll("fieldset.template-fill")) {
        const on = fs.dataset.template === select.value;
        fs.hidden = !on;
        for (const input of fs.querySelectorAll("input, textarea")) input.disabled = !on;
      }
    };
    select.addEventListener("change", show);
    show();
  }
})();

// Segment editor: a condition builder that writes the rule JSON into the form's textarea,
// and the live count (and first contacts) of whatever the textarea holds, asked of
// POST /api/v1/segments/preview a moment after each change. Built with DOM calls only.
(() => {
  const builder = document.getElementById("segment-builder");
  if (!builder) return;
  const form = builder.closest("form");
  const ruleBox = form.querySelector("textarea[name=rule]");
  const count = document.getElementById("segment-count");
  const sample = document.getElementById("segment-sample");
  const csrf = builder.dataset.csrf;
  const fields = JSON.parse(builder.dataset.fields || "[]");
  const tags = JSON.parse(builder.dataset.tags || "[]");
  const el = (tag, attrs = {}, ...kids) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    for (const k of kids) e.append(k);
    return e;
  };
  const select = (name, options) => {
    const s = el("select", { name, "data-role": name });
    for (const [v, label] of options) s.append(el("option", { value: v }, label));
    return s;
  };
  const what = [["tag", "has tag"], ["consent", "marketing consent"], ["within", "wrote within (days)"],
    ["older", "last wrote more than (days) ago"], ["never", "never wrote"], ["open", "has an open conversation"],
    ["attr:name", "name"], ["attr:email", "email"], ["attr:language", "language"], ["attr:company", "company"],
    ["attr:username", "username"], ...fields.map((f) => ["field:" + f.id, f.label])];
  const ops = [["eq", "is"], ["ne", "is not"], ["in", "is one of (comma-separated)"], ["contains", "contains"],
    ["gt", ">"], ["gte", "≥"], ["lt", "<"], ["lte", "≤"], ["is_set", "is set"], ["is_not_set", "is not set"]];

  const rows = el("div", { class: "segment-rows", "data-testid": "segment-rows" });
  const combine = select("combine", [["and", "Contacts matching all of"], ["or", "Contacts matching any of"]]);
  const add = el("button", { type: "button", "data-testid": "segment-add-condition" }, "Add condition");
  builder.append(el("p", {}, combine), rows, add);

  const valueOf = (row) => {
    const kind = row.querySelector("[data-role=what]").value;
    const op = row.querySelector("[data-role=op]");
    const val = row.querySelector("[data-role=value]");
    const v = val ? val.value.trim() : "";
    if (kind === "tag") return { has_tag: v };
    if (kind === "consent") return { consent: v };
    if (kind === "within") return { last_inbound: { within_days: Number(v) || 0 } };
    if (kind === "older") return { last_inbound: { older_than_days: Number(v) || 0 } };
    if (kind === "never") return { last_inbound: { never: true } };
    if (kind === "open") return { open_conversation: v === "yes" };
    const cond = { op: op.value };
    if (op.value === "in") cond.value = v.split(",").map((x) => x.trim()).filter((x) => x);
    else if (op.value !== "is_set" && op.value !== "is_not_set") cond.value = v;
    if (kind.startsWith("attr:")) return { attr: { name: kind.slice(5), ...cond } };
    const field = fields.find((f) => f.id === kind.slice(6));
    if (field && field.kind === "number" && typeof cond.value === "string" && cond.value !== "") {
      cond.value = Number(cond.value);
    }
    return { field: { id: kind.slice(6), ...cond } };
  };

  const shape = (row) => {
    const kind = row.querySelector("[data-role=what]").value;
    const slot = row.querySelector(".slot");
    slot.replaceChildren();
    if (kind === "tag") slot.append(select("value", tags.map((t) => [t.id, t.name])));
    else if (kind === "consent") slot.append(select("value", [["opt_in", "opted in"], ["opt_out", "opted out"], ["unknown", "unknown"]]));
    else if (kind === "within" || kind === "older") slot.append(el("input", { type: "number", min: "0", max: "36500", value: "30", "data-role": "value" }));
    else if (kind === "open") slot.append(select("value", [["yes", "yes"], ["no", "no"]]));
    else if (kind !== "never") {
      slot.append(select("op", ops));
      const field = fields.find((f) => "field:" + f.id === kind);
      if (field && field.kind === "choice") slot.append(select("value", field.options.map((o) => [o, o])));
      else slot.append(el("input", { type: "text", maxlength: "1000", "data-role": "value" }));
    }
  };

  const write = () => {
    const conds = [...rows.children].map(valueOf);
    ruleBox.value = JSON.stringify({ [combine.value]: conds });
    preview();
  };

  add.addEventListener("click", () => {
    const row = el("div", { class: "segment-row", "data-testid": "segment-condition" });
    const kind = select("what", what);
    const remove = el("button", { type: "button", class: "link" }, "remove");
    row.append(kind, el("span", { class: "slot" }), remove);
    kind.addEventListener("change", () => { shape(row); write(); });
    remove.addEventListener("click", () => { row.remove(); write(); });
    rows.append(row);
    shape(row);
    write();
  });
  builder.addEventListener("change", (e) => { if (e.target !== combine || rows.children.length) write(); });
  builder.addEventListener("input", () => write());
  combine.addEventListener("change", write);

  let timer = null;
  let asked = 0;
  const preview = () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const mine = ++asked;
      let rule;
      try { rule = JSON.parse(ruleBox.value); } catch { count.textContent = "rule is not valid JSON"; return; }
      const r = await fetch("/api/v1/segments/preview", {
        method: "POST", credentials: "same-origin",
        headers: { "x-csrf-token": csrf, "content-type": "application/json", accept: "application/json" },
        body: JSON.stringify({ rule }),
      });
      if (mine !== asked) return; // a newer question is on its way
      const body = await r.json().catch(() => ({}));
      if (!r.ok) {
        count.textContent = (body.error && body.error.message) || "cannot count this rule";
        sample.replaceChildren();
        return;
      }
      count.textContent = String(body.count);
      sample.replaceChildren(...body.contacts.map((c) =>
        el("li", {}, c.name || c.profile_name || c.username || c.phone || c.user_id || "(no name)")));
    }, 250);
  };
  ruleBox.addEventListener("input", preview);
  preview();
})();

// Import pages: a chosen CSV file is read into the form's textarea (so one form posts it),
// and a running import's page reloads itself until the job is done.
(() => {
  for (const input of document.querySelectorAll("input[type=file][data-csv-into]")) {
    input.addEventListener("change", async () => {
      const file = input.files && input.files[0];
      if (!file) return;
      const box = document.getElementById(input.dataset.csvInto);
      box.value = await file.text();
      const name = document.querySelector(`[data-filename-for="${input.dataset.csvInto}"]`);
      if (name) name.value = file.name;
    });
  }
  const reload = document.querySelector("[data-reload-every]");
  if (reload) {
    setTimeout(() => window.location.reload(), Number(reload.dataset.reloadEvery) * 1000);
  }
})();

// Note mentions: typing "@" in the note box lists the members who may read the
// conversation (rendered by the server into #mention-candidates), filtered as one types;
// arrows move, Enter or Tab (or a click) chooses, Escape closes. The box shows "@Name";
// on submit each chosen name becomes its token `@[Name](user:<id>)`, which the server
// resolves (so two members with one name stay apart).
(() => {
  const box = document.getElementById("note-body");
  const listbox = document.getElementById("mention-list");
  const source = document.getElementById("mention-candidates");
  const status = document.getElementById("mention-status");
  if (!box || !listbox || !source || !box.form) return;
  const members = [...source.querySelectorAll("li")].map((li) => ({ id: li.dataset.userId, name: li.dataset.name, token: li.dataset.token }));
  const fold = (s) => s.normalize("NFD").replace(/[\u0300-\u036f]/g, "").toLowerCase();
  const say = (text) => { if (status) status.textContent = text; };
  const picked = [];
  let query = null;
  let options = [];
  let active = -1;

  // The "@…" being typed just before the caret, if any.
  const typed = () => {
    const at = box.selectionStart;
    if (at === null || at !== box.selectionEnd) return null;
    const before = box.value.slice(0, at);
    const i = before.lastIndexOf("@");
    if (i < 0) return null;
    // An "@" inside a word (an email address) starts no mention.
    if (i > 0 && /[\p{L}\p{N}_.]/u.test(before[i - 1])) return null;
    const text = before.slice(i + 1);
    if (text.length > 40 || /[\n@[\]]/.test(text)) return null;
    return { start: i, end: at, text };
  };
  const close = () => {
    listbox.hidden = true;
    listbox.replaceChildren();
    options = [];
    active = -1;
    query = null;
    box.removeAttribute("aria-activedescendant");
  };
  const setActive = (i) => {
    active = i;
    [...listbox.children].forEach((li, j) => li.setAttribute("aria-selected", j === i ? "true" : "false"));
    box.setAttribute("aria-activedescendant", "mention-opt-" + i);
    listbox.children[i].scrollIntoView({ block: "nearest" });
  };
  const choose = (i) => {
    const m = options[i];
    if (!m || !query) return;
    const text = "@" + m.name;
    box.value = box.value.slice(0, query.start) + text + " " + box.value.slice(query.end);
    const caret = query.start + text.length + 1;
    box.setSelectionRange(caret, caret);
    picked.push({ text, token: m.token });
    close();
    box.focus();
    say(m.name + " will be mentioned");
  };
  const show = () => {
    const q = typed();
    if (!q) {
      if (!listbox.hidden) close();
      return;
    }
    query = q;
    const want = fold(q.text);
    const starts = (m) => fold(m.name).split(/\s+/).some((w) => w.startsWith(want));
    options = members.filter((m) => fold(m.name).includes(want))
      .sort((a, b) => Number(starts(b)) - Number(starts(a)))
      .slice(0, 8);
    if (options.length === 0) {
      listbox.hidden = true;
      listbox.replaceChildren();
      box.removeAttribute("aria-activedescendant");
      say("No member who may see this conversation matches");
      return;
    }
    listbox.replaceChildren(...options.map((m, i) => {
      const li = document.createElement("li");
      li.id = "mention-opt-" + i;
      li.setAttribute("role", "option");
      li.dataset.testid = "mention-option";
      li.textContent = m.name;
      // mousedown, not click: the box keeps its focus and caret.
      li.addEventListener("mousedown", (e) => {
        e.preventDefault();
        choose(i);
      });
      return li;
    }));
    listbox.hidden = false;
    setActive(0);
    say(options.length + (options.length === 1 ? " member" : " members") + ": arrows to choose, Enter to mention, Escape to close");
  };
  box.addEventListener("input", show);
  box.addEventListener("keydown", (e) => {
    if (listbox.hidden || options.length === 0) return;
    if (e.key === "ArrowDown") {
      e.preventDefault();
      setActive((active + 1) % options.length);
    } else if (e.key === "ArrowUp") {
      e.preventDefault();
      setActive((active - 1 + options.length) % options.length);
    } else if (e.key === "Enter" || e.key === "Tab") {
      e.preventDefault();
      choose(active);
    } else if (e.key === "Escape") {
      e.preventDefault();
      close();
    }
  });
  box.addEventListener("blur", close);

  // "@Name" (not followed by a letter or digit) → the token of the member chosen for it;
  // the same name chosen twice (two members) maps in the order they were chosen.
  const tokenize = (v) => {
    if (picked.length === 0) return v;
    const longest = [...picked].sort((a, b) => b.text.length - a.text.length);
    const used = new Set();
    let out = "";
    let i = 0;
    while (i < v.length) {
      if (v[i] === "@") {
        const hit = longest.find((p) => v.startsWith(p.text, i) && !/[\p{L}\p{N}_]/u.test(v[i + p.text.length] || ""));
        if (hit) {
          const same = picked.filter((p) => p.text === hit.text);
          const p = same.find((x) => !used.has(x)) || same[same.length - 1];
          used.add(p);
          out += p.token;
          i += hit.text.length;
          continue;
        }
      }
      out += v[i];
      i += 1;
    }
    return out;
  };
  box.form.addEventListener("submit", () => {
    box.value = tokenize(box.value);
  });
})();

// Mentions of the signed-in member (header): the unread count and the latest ten, fetched
// as JSON on load and whenever the event stream announces a `notification`; opening one
// marks it read. Shares the page's stream (inbox, queue board) when it has one.
(() => {
  const root = document.getElementById("notif");
  if (!root) return;
  const csrf = root.dataset.csrf;
  const toggle = document.getElementById("notif-toggle");
  const panel = document.getElementById("notif-panel");
  const count = document.getElementById("notif-count");
  const items = document.getElementById("notif-items");
  const empty = document.getElementById("notif-empty");
  const readAll = document.getElementById("notif-read-all");
  const markRead = (id) => fetch("/api/v1/notifications/read", {
    method: "POST",
    credentials: "same-origin",
    keepalive: true,
    headers: { "x-csrf-token": csrf, "content-type": "application/json", accept: "application/json" },
    body: JSON.stringify(id ? { id } : {}),
  });
  let busy = false;
  const load = async () => {
    if (busy) return;
    busy = true;
    try {
      const r = await fetch("/api/v1/notifications?limit=10", { credentials: "same-origin", headers: { accept: "application/json" } });
      if (!r.ok) return;
      const d = await r.json();
      count.textContent = String(d.unread);
      count.hidden = d.unread === 0;
      items.replaceChildren(...d.items.map((n) => {
        const li = document.createElement("li");
        if (!n.read) li.className = "unread";
        li.dataset.testid = "notif-item";
        const a = document.createElement("a");
        a.href = "/inbox/" + encodeURIComponent(n.conversation_id);
        a.textContent = (n.actor_name || "Someone") + " mentioned you";
        a.addEventListener("click", () => { if (!n.read) markRead(n.id); });
        const at = document.createElement("span");
        at.className = "msg-meta";
        at.textContent = " " + n.created_at.slice(0, 16).replace("T", " ") + " UTC";
        li.append(a, at);
        return li;
      }));
      empty.hidden = d.items.length > 0;
    } catch (_) {
      // The next event tries again.
    } finally {
      busy = false;
    }
  };
  toggle.addEventListener("click", () => {
    panel.hidden = !panel.hidden;
    toggle.setAttribute("aria-expanded", String(!panel.hidden));
  });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && !panel.hidden) {
      panel.hidden = true;
      toggle.setAttribute("aria-expanded", "false");
      toggle.focus();
    }
  });
  readAll.addEventListener("click", async () => {
    await markRead(null);
    load();
  });
  load();
  const events = window.frontdeskEvents || (typeof EventSource === "function" ? new EventSource("/api/v1/events") : null);
  if (events) {
    events.addEventListener("notification", load);
    events.addEventListener("open", load);
  } else {
    window.setInterval(load, 30000);
  }
})();

// Campaign page: once launched, its figures, chart bars and status are refreshed from the
// API every 2 s (every 5 s for ten minutes once it is over; textContent and attributes only).
(() => {
  const live = document.querySelector("[data-campaign-live]");
  if (!live) return;
  const id = live.dataset.campaignLive;
  const chart = live.querySelector("svg[data-max]");
  const tick = async () => {
    let body;
    try {
      const r = await fetch(`/api/v1/campaigns/${encodeURIComponent(id)}`, { credentials: "same-origin", headers: { accept: "application/json" } });
      if (!r.ok) return;
      body = await r.json();
    } catch { return; }
    const f = body.figures || {};
    for (const cell of live.querySelectorAll("[data-figure]")) {
      const v = f[cell.dataset.figure];
      if (typeof v === "number") cell.textContent = String(v);
    }
    if (chart) {
      const keys = ["queued", "sent", "delivered", "read", "replied", "clicked", "failed"];
      const max = Math.max(1, ...keys.map((k) => Number(f[k]) || 0));
      for (const k of keys) {
        const bar = chart.querySelector(`[data-bar="${k}"]`);
        if (bar) bar.setAttribute("width", String(Math.round(((Number(f[k]) || 0) * 360) / max)));
        const label = chart.querySelector(`[data-figure-text="${k}"]`);
        if (label) label.textContent = String(Number(f[k]) || 0);
      }
    }
    const status = document.querySelector("[data-campaign-status]");
    if (status && body.campaign) status.textContent = body.campaign.status;
    // Over: statuses and replies still arrive for a while, so keep looking, less often.
    const over = body.campaign && ["completed", "cancelled"].includes(body.campaign.status);
    if (over && ++quiet > 120) return;
    setTimeout(tick, over ? 5000 : 2000);
  };
  let quiet = 0;
  setTimeout(tick, 2000);
})();

/* ---- template media samples ---- */
// The editor's sample file: checked here against the header kind's types and size (the
// server checks again), uploaded to POST /api/v1/templates/samples with the form's CSRF
// token, and its id put in the hidden `header_sample` field the form saves.
(() => {
  const box = document.getElementById("tpl-sample");
  const form = document.getElementById("template-form");
  if (!box || !form) return;
  const input = box.querySelector("input[type=file]");
  const hidden = box.querySelector("input[name=header_sample]");
  const status = box.querySelector("[data-testid=tpl-sample-status]");
  const formatOf = () => {
    const el = form.elements.namedItem("header_format");
    return el && "value" in el ? el.value : "none";
  };
  const rule = (format) => ({
    types: (box.dataset[`${format}Types`] || "").split(",").filter((t) => t !== ""),
    max: Number(box.dataset[`${format}Max`] || 0),
  });
  const show = () => {
    const format = formatOf();
    const media = ["image", "video", "document"].includes(format);
    box.hidden = !media;
    if (media) input.accept = rule(format).types.join(",");
  };
  const say = (text) => { status.textContent = text; };
  input.addEventListener("change", async () => {
    const file = input.files && input.files[0];
    if (!file) return;
    const format = formatOf();
    const { types, max } = rule(format);
    if (!types.includes(file.type)) {
      say(`A ${format} sample is ${types.join(" or ")}.`);
      input.value = "";
      return;
    }
    if (file.size > max) {
      say(`A ${format} sample is at most ${Math.floor(max / 1048576)} MiB.`);
      input.value = "";
      return;
    }
    const channel = form.elements.namedItem("channel_id");
    const data = new FormData();
    data.append("channel_id", channel ? channel.value : "");
    data.append("format", format);
    data.append("file", file, file.name);
    const csrf = form.elements.namedItem("_csrf");
    say("Uploading the sample…");
    const r = await fetch("/api/v1/templates/samples", {
      method: "POST",
      credentials: "same-origin",
      headers: { "x-csrf-token": csrf ? csrf.value : "" },
      body: data,
    });
    if (!r.ok) {
      say(`The sample was not accepted (${r.status}).`);
      return;
    }
    const sample = await r.json();
    hidden.value = sample.id;
    const example = form.elements.namedItem("header_example");
    if (example) example.value = "";
    say(`Sample attached: ${sample.filename || "file"} (${Math.ceil(sample.size_bytes / 1024)} KiB).`);
    box.dataset.sample = sample.id;
  });
  form.addEventListener("change", (event) => {
    if (event.target && event.target.name === "header_format") show();
  });
  show();
})();

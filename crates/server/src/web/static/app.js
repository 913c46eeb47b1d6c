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

// sluis passkeys: the only script of the portal. A button with
// data-passkey="register", "mfa" or "login" runs that ceremony: it asks the
// portal for options, hands them to the browser's authenticator API and
// sends the answer back. The portal says where to go next.
"use strict";
(function () {
  function b64urlToBytes(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }
  function bytesToB64url(buf) {
    var bytes = new Uint8Array(buf), bin = "";
    for (var i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function creationOptions(o) {
    o.challenge = b64urlToBytes(o.challenge);
    o.user.id = b64urlToBytes(o.user.id);
    (o.excludeCredentials || []).forEach(function (c) { c.id = b64urlToBytes(c.id); });
    return o;
  }
  function requestOptions(o) {
    o.challenge = b64urlToBytes(o.challenge);
    (o.allowCredentials || []).forEach(function (c) { c.id = b64urlToBytes(c.id); });
    return o;
  }
  function credentialJSON(c) {
    var r = c.response, out = {
      id: c.id, rawId: bytesToB64url(c.rawId), type: c.type,
      clientExtensionResults: c.getClientExtensionResults ? c.getClientExtensionResults() : {},
      response: { clientDataJSON: bytesToB64url(r.clientDataJSON) }
    };
    if (c.authenticatorAttachment) out.authenticatorAttachment = c.authenticatorAttachment;
    if (r.attestationObject) {
      out.response.attestationObject = bytesToB64url(r.attestationObject);
      if (r.getTransports) out.response.transports = r.getTransports();
    } else {
      out.response.authenticatorData = bytesToB64url(r.authenticatorData);
      out.response.signature = bytesToB64url(r.signature);
      if (r.userHandle) out.response.userHandle = bytesToB64url(r.userHandle);
    }
    return out;
  }
  function post(url, csrf, body) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body || {})
    }).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (j) {
        if (!res.ok) {
          var e = new Error((j.error || "") + (j.error_id ? " Error ID: " + j.error_id : ""));
          e.fromPortal = !!j.error;
          throw e;
        }
        return j;
      });
    });
  }
  function statusOf(el) {
    return document.getElementById(el.getAttribute("data-status") || "passkey-status");
  }
  function show(el, msg) {
    var out = statusOf(el);
    if (out) out.textContent = msg;
  }
  // say returns the page's sentence (in the page's language) for a
  // situation: the status element carries them as data-* attributes.
  function say(el, what) {
    var out = statusOf(el);
    if (!out) return "";
    return out.getAttribute("data-" + what) || out.getAttribute("data-failed") || "";
  }
  // failure is what a person reads when a ceremony failed: the portal's
  // own sentence, or for the browser's errors (cancelled, timed out, a key
  // already there) a sentence with the next step, never the browser's
  // technical message.
  function failure(el, err) {
    if (err && err.fromPortal) return err.message;
    if (err && err.name === "InvalidStateError") return say(el, "exists");
    if (err && (err.name === "NotAllowedError" || err.name === "AbortError" || err.name === "TimeoutError")) return say(el, "cancelled");
    var m = say(el, "failed");
    return err && err.message && err.message.indexOf("Error ID: ") >= 0 ? m + err.message.slice(err.message.indexOf(" Error ID: ")) : m;
  }
  function run(button) {
    var kind = button.getAttribute("data-passkey");
    var csrf = button.getAttribute("data-csrf");
    var query = button.getAttribute("data-query") || "";
    var base = { register: "/passkeys", mfa: "/mfa/passkey", login: "/login/passkey" }[kind];
    if (!base) return;
    if (!window.PublicKeyCredential) { show(button, say(button, "unsupported")); return; }
    var extra = {};
    if (kind === "register") {
      var name = document.getElementById("passkey-name");
      extra.name = name ? name.value : "";
    }
    button.disabled = true;
    show(button, say(button, "waiting"));
    post(base + "/begin" + query, csrf, extra).then(function (opts) {
      var pk = opts.publicKey;
      if (kind === "register") return navigator.credentials.create({ publicKey: creationOptions(pk) });
      return navigator.credentials.get({ publicKey: requestOptions(pk), mediation: opts.mediation || undefined });
    }).then(function (cred) {
      return post(base + "/finish" + query, csrf, credentialJSON(cred));
    }).then(function (res) {
      show(button, res.message || say(button, "done"));
      if (res.redirect) window.location.assign(res.redirect);
      else button.disabled = false;
    }).catch(function (err) {
      show(button, failure(button, err));
      button.disabled = false;
    });
  }
  document.addEventListener("click", function (ev) {
    var b = ev.target.closest ? ev.target.closest("[data-passkey]") : null;
    if (b) { ev.preventDefault(); run(b); }
  });
})();

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
        if (!res.ok) throw new Error((j.error || ("The portal answered " + res.status + ".")) + (j.error_id ? " Error ID: " + j.error_id : ""));
        return j;
      });
    });
  }
  function show(el, msg) {
    var out = document.getElementById(el.getAttribute("data-status") || "passkey-status");
    if (out) out.textContent = msg;
  }
  function run(button) {
    var kind = button.getAttribute("data-passkey");
    var csrf = button.getAttribute("data-csrf");
    var query = button.getAttribute("data-query") || "";
    var base = { register: "/passkeys", mfa: "/mfa/passkey", login: "/login/passkey" }[kind];
    if (!base) return;
    if (!window.PublicKeyCredential) { show(button, "This browser does not support passkeys."); return; }
    var extra = {};
    if (kind === "register") {
      var name = document.getElementById("passkey-name");
      extra.name = name ? name.value : "";
    }
    button.disabled = true;
    show(button, "Waiting for your passkey...");
    post(base + "/begin" + query, csrf, extra).then(function (opts) {
      var pk = opts.publicKey;
      if (kind === "register") return navigator.credentials.create({ publicKey: creationOptions(pk) });
      return navigator.credentials.get({ publicKey: requestOptions(pk), mediation: opts.mediation || undefined });
    }).then(function (cred) {
      return post(base + "/finish" + query, csrf, credentialJSON(cred));
    }).then(function (res) {
      show(button, res.message || "Done.");
      if (res.redirect) window.location.assign(res.redirect);
      else button.disabled = false;
    }).catch(function (err) {
      show(button, err && err.message ? err.message : "The passkey was not accepted.");
      button.disabled = false;
    });
  }
  document.addEventListener("click", function (ev) {
    var b = ev.target.closest ? ev.target.closest("[data-passkey]") : null;
    if (b) { ev.preventDefault(); run(b); }
  });
})();

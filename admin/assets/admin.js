// sluis console: its only script. The button with data-passkey="login"
// runs the passkey step of the console's login: it asks for options,
// hands them to the browser's authenticator API and sends the answer
// back; the console says where to go next. Everything else on the
// console is a plain form.
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
  function requestOptions(o) {
    o.challenge = b64urlToBytes(o.challenge);
    (o.allowCredentials || []).forEach(function (c) { c.id = b64urlToBytes(c.id); });
    return o;
  }
  function credentialJSON(c) {
    var r = c.response, out = {
      id: c.id, rawId: bytesToB64url(c.rawId), type: c.type,
      clientExtensionResults: c.getClientExtensionResults ? c.getClientExtensionResults() : {},
      response: {
        clientDataJSON: bytesToB64url(r.clientDataJSON),
        authenticatorData: bytesToB64url(r.authenticatorData),
        signature: bytesToB64url(r.signature)
      }
    };
    if (r.userHandle) out.response.userHandle = bytesToB64url(r.userHandle);
    if (c.authenticatorAttachment) out.authenticatorAttachment = c.authenticatorAttachment;
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
          var e = new Error(j.error || ("The console answered " + res.status + "."));
          e.redirect = j.redirect;
          throw e;
        }
        return j;
      });
    });
  }
  function show(msg) {
    var out = document.getElementById("passkey-status");
    if (out) out.textContent = msg;
  }
  function run(button) {
    var csrf = button.getAttribute("data-csrf");
    if (!window.PublicKeyCredential) { show("This browser does not support passkeys."); return; }
    button.disabled = true;
    show("Waiting for your passkey...");
    post("/login/key/begin", csrf).then(function (opts) {
      return navigator.credentials.get({ publicKey: requestOptions(opts.publicKey) });
    }).then(function (cred) {
      return post("/login/key/finish", csrf, credentialJSON(cred));
    }).then(function (res) {
      show("Logged in.");
      window.location.assign(res.redirect || "/");
    }).catch(function (err) {
      show(err && err.message ? err.message : "The passkey was not accepted.");
      if (err && err.redirect) window.setTimeout(function () { window.location.assign(err.redirect); }, 3000);
      button.disabled = false;
    });
  }
  document.addEventListener("click", function (ev) {
    var b = ev.target.closest ? ev.target.closest("[data-passkey]") : null;
    if (b) { ev.preventDefault(); run(b); }
  });
})();

// tsunagu — the web app's page behaviour. Every form works without this script for a
// client that signs by itself; with it, the browser's device key (wallet.js) signs and the
// hidden fields are filled before the form is sent.

import { loadDevice, signLoginNonce, signResidentJws } from "./wallet.js";

const lang = () => document.body?.dataset.lang === "en" ? "en" : "ja";
const say = (ja, en) => (lang() === "en" ? en : ja);

/** Shows a message in a status element (role=status / alert). */
export function status(el, text, kind = "") {
  if (!el) return;
  el.hidden = false;
  el.textContent = text;
  el.className = `notice ${kind}`.trim();
  if (kind === "error") el.setAttribute("role", "alert");
}

/** The stored device, or null with a message shown. */
export async function deviceOrExplain(statusEl) {
  let device = null;
  try {
    device = await loadDevice();
  } catch (e) {
    status(statusEl, say(`端末の鍵を読み出せません: ${e.message}`, `Cannot read this device's key: ${e.message}`), "error");
    return null;
  }
  if (!device || !device.credential) {
    status(statusEl, say("この端末は登録されていません。先に端末を登録してください。",
      "This device is not registered. Register it first."), "error");
    return null;
  }
  return device;
}

// The login form: sign the hidden nonce with the device key.
function login(form) {
  form.addEventListener("submit", async (event) => {
    if (form.elements.signature.value) return; // signed by hand
    event.preventDefault();
    const statusEl = document.getElementById("login-status");
    const device = await deviceOrExplain(statusEl);
    if (!device) return;
    form.elements.credential.value = device.credential;
    form.elements.signature.value = await signLoginNonce(device, form.elements.nonce.value);
    form.submit();
  });
}

// The consent form: sign the exact payload the platform showed, then send the decision.
function consent(form) {
  form.addEventListener("submit", async (event) => {
    const decision = event.submitter?.value ?? "approve";
    if (decision !== "approve" || form.elements.consent_jws.value) {
      addDecision(form, decision);
      return;
    }
    event.preventDefault();
    const statusEl = document.getElementById("consent-status");
    const device = await deviceOrExplain(statusEl);
    if (!device) return;
    const payload = JSON.parse(form.elements.consent_payload.value);
    form.elements.consent_jws.value = await signResidentJws(device, payload);
    addDecision(form, "approve");
    form.submit();
  });
}

// form.submit() does not send the pressed button's name/value: carry it in a hidden field.
function addDecision(form, decision) {
  let input = form.querySelector('input[type="hidden"][name="decision"]');
  if (!input) {
    input = document.createElement("input");
    input.type = "hidden";
    input.name = "decision";
    form.append(input);
  }
  input.value = decision;
  for (const b of form.querySelectorAll('button[name="decision"]')) b.name = "";
}

/** Page behaviours by data attribute on a form or element. */
export const behaviours = { login, consent };

export function start(root = document) {
  for (const [name, fn] of Object.entries(behaviours)) {
    for (const el of root.querySelectorAll(`[data-${name}]`)) fn(el);
  }
}

if (typeof document !== "undefined") {
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", () => start());
  else start();
}

// tsunagu — the web app's page behaviour. Every form works without this script for a
// client that signs by itself; with it, the browser's device key (wallet.js) signs and the
// hidden fields are filled before the form is sent.

import {
  assertUserVerification, createDeviceKey, enrollmentSignedData, forgetDevice, loadDevice,
  registerUserVerification, requestPersistentStorage, saveDevice, signLoginNonce, signResidentJws,
  userVerificationAvailable,
} from "./wallet.js";
import { b64, b64url } from "./jose.js";
import { fetchAndVerifyHistory } from "./ledger.js";

const lang = () => document.body?.dataset.lang === "en" ? "en" : "ja";
const say = (ja, en) => (lang() === "en" ? en : ja);

/** Shows a message in a status element (role=status / alert). */
export function status(el, text, kind = "") {
  if (!el) return;
  el.hidden = false;
  el.textContent = text;
  el.className = `notice ${kind}`.trim();
  el.setAttribute("role", kind === "error" ? "alert" : "status");
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
    const nonce = form.elements.nonce.value;
    let assertion = null;
    try {
      // A gated device: the screen lock confirms the resident before the key is used.
      assertion = await assertUserVerification(device, nonce);
    } catch (e) {
      status(statusEl, uvFailed(e, "login"), "error");
      return;
    }
    form.elements.credential.value = device.credential;
    form.elements.signature.value = await signLoginNonce(device, nonce);
    if (assertion) hiddenField(form, "user_verification").value = JSON.stringify(assertion);
    form.submit();
  });
}

/** The hidden input `name` of `form`, added when missing. */
function hiddenField(form, name) {
  let input = form.querySelector(`input[type="hidden"][name="${name}"]`);
  if (!input) {
    input = document.createElement("input");
    input.type = "hidden";
    input.name = name;
    form.append(input);
  }
  return input;
}

/**
 * Signs `payload` with the device key into the form's `field`; for a device behind its
 * screen lock, the resident then confirms that exact JWS (WebAuthn over its SHA-256), sent as
 * `user_verification`. Nothing is filled in unless both succeed.
 */
async function signInto(form, field, device, payload) {
  const jws = await signResidentJws(device, payload);
  const assertion = await assertUserVerification(device, jws);
  form.elements[field].value = jws;
  if (assertion) hiddenField(form, "user_verification").value = JSON.stringify(assertion);
}

/** A failed signature or screen-lock confirmation, for the resident. */
function signFailed(e) {
  if (e?.name === "NotAllowedError" || e?.name === "AbortError") return uvFailed(e, "sign");
  return say(`署名できませんでした: ${explain(e)}`, `Could not sign: ${explain(e)}`);
}

/** What to tell the resident when the screen-lock confirmation did not happen. */
function uvFailed(e, step) {
  if (e?.name === "NotAllowedError" || e?.name === "AbortError") {
    return step === "enroll"
      ? say("画面ロックの確認が取り消されたか、時間切れになりました。何も登録されていません。もう一度お試しください。",
        "The screen-lock confirmation was cancelled or timed out. Nothing was registered; try again.")
      : say("画面ロックの確認が取り消されたか、時間切れになりました。もう一度お試しください。",
        "The screen-lock confirmation was cancelled or timed out. Try again.");
  }
  return say(`画面ロックで確認できませんでした: ${explain(e)}`, `The screen-lock confirmation failed: ${explain(e)}`);
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
    try {
      await signInto(form, "consent_jws", device, payload);
    } catch (e) {
      status(statusEl, signFailed(e), "error");
      return;
    }
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

// ---------------------------------------------------------------------------------------
// Pure helpers (unit-tested in web-tests/unit/pages.test.mjs)
// ---------------------------------------------------------------------------------------

const nowSeconds = () => Math.floor(Date.now() / 1000);

/** A fresh single-use nonce for a signed statement: 16 random bytes, base64url. */
export function randomNonce() {
  return b64url(globalThis.crypto.getRandomValues(new Uint8Array(16)));
}

/**
 * The consent payload the platform expects (SPEC §5), exactly these members:
 * {v: 1, purpose_id, consumer, provider, items, expires_at, terms_sha256, issued_at, nonce}.
 */
export function consentPayload({ purposeId, consumer, provider, items, expiresAt, termsSha256, issuedAt, nonce }) {
  if (!Array.isArray(items) || items.length === 0) throw new TypeError("consentPayload: choose at least one item");
  if (!Number.isSafeInteger(expiresAt)) throw new TypeError("consentPayload: expiresAt must be Unix seconds");
  return {
    v: 1,
    purpose_id: String(purposeId),
    consumer: String(consumer),
    provider: String(provider),
    items: items.map(String),
    expires_at: expiresAt,
    terms_sha256: String(termsSha256),
    issued_at: issuedAt ?? nowSeconds(),
    nonce: nonce ?? randomNonce(),
  };
}

/** A signed change's payload: {consent_id, action: "revoke"|"expiry", [expires_at], issued_at, nonce}. */
export function changePayload({ consentId, action, expiresAt, issuedAt, nonce }) {
  if (action !== "revoke" && action !== "expiry") throw new TypeError(`changePayload: unknown action ${action}`);
  const payload = { consent_id: String(consentId), action };
  if (action === "expiry") {
    if (!Number.isSafeInteger(expiresAt)) throw new TypeError("changePayload: an expiry change needs expiresAt");
    payload.expires_at = expiresAt;
  }
  payload.issued_at = issuedAt ?? nowSeconds();
  payload.nonce = nonce ?? randomNonce();
  return payload;
}

/**
 * The Unix time a consent picked as "valid until YYYY-MM-DD" ends: the end of that day in
 * Japan (23:59:59 JST), but no later than `maxSeconds`. Null when the date is malformed or
 * already over at `nowSec`.
 */
export function expiryFromDate(dateStr, nowSec, maxSeconds) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(dateStr ?? "");
  if (!m) return null;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const utc = Date.UTC(y, mo - 1, d, 23, 59, 59);
  const check = new Date(utc);
  if (check.getUTCFullYear() !== y || check.getUTCMonth() !== mo - 1 || check.getUTCDate() !== d) return null;
  let t = Math.floor(utc / 1000) - 9 * 3600;
  if (Number.isSafeInteger(maxSeconds) && t > maxSeconds) t = maxSeconds;
  return t > nowSec ? t : null;
}

const sameSet = (a, b) => a.length === b.length && a.every((x) => b.includes(x));

/**
 * What saving a purpose's form means: `{action: "grant" | "revoke" | "expiry" | "none"}`,
 * or `{error: "no_items"}`. The switch on with another choice of items is a new consent
 * (it replaces the active one); the same items with another date only changes the expiry.
 */
export function planConsent({ enabled, activeId, items, currentItems, expiresOn, currentExpiresOn }) {
  if (!enabled) return { action: activeId ? "revoke" : "none" };
  if (!items || items.length === 0) return { error: "no_items" };
  if (!activeId) return { action: "grant" };
  if (sameSet(items, currentItems ?? [])) {
    return { action: expiresOn === currentExpiresOn ? "none" : "expiry" };
  }
  return { action: "grant" };
}

/** The body of `POST /dev/simulated-card` for the card fields and the bytes to sign. */
export function simulatedCardRequest({ name, address, birthdate, sex }, signedBytes) {
  return {
    name: String(name ?? "").trim(),
    address: String(address ?? "").trim(),
    birthdate: String(birthdate ?? ""),
    sex: String(sex ?? ""),
    signed_data: b64(signedBytes),
  };
}

/** The enrollment request: the device's public key, the nonce, and a JPKI proof when given. */
export function enrollmentBody(publicJwk, nonce, card, signedBytes) {
  const body = { device_jwk: publicJwk, nonce };
  if (card) {
    body.proof = {
      type: "jpki",
      certificate_chain: card.certificate_chain,
      signed_data: b64(signedBytes),
      signature: card.signature,
    };
  }
  return body;
}

/** A history entry's ledger mark: text and class for a verification result. */
export function ledgerMark(result, language = "ja") {
  const pick = (ja, en) => (language === "en" ? en : ja);
  if (result === true) return { text: pick("台帳で確認済み", "verified in the ledger"), cls: "badge ok ledger-mark" };
  if (result === false) return { text: pick("台帳と一致しません", "not verified"), cls: "badge err ledger-mark" };
  return { text: pick("未確認", "not checked"), cls: "badge warn ledger-mark" };
}

// ---------------------------------------------------------------------------------------
// Talking to the platform
// ---------------------------------------------------------------------------------------

/** An error with the platform's stable code. */
class PlatformError extends Error {
  constructor(message, code) {
    super(message);
    this.code = code;
  }
}

const explain = (e) => (e?.code ? `${e.message} (${e.code})` : e?.message ?? String(e));

/** POSTs JSON and returns the JSON answer; a problem+json answer throws with its code. */
async function postJson(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json" },
    body: JSON.stringify(body),
    credentials: "same-origin",
  });
  let answer = null;
  try {
    answer = await response.json();
  } catch {
    answer = null;
  }
  if (!response.ok) {
    throw new PlatformError(answer?.detail ?? `${path}: HTTP ${response.status}`, answer?.code ?? `http_${response.status}`);
  }
  return answer;
}

/** Submits a form built from `fields` (navigates: the server answers with a redirect). */
function submitForm(action, fields) {
  const form = document.createElement("form");
  form.method = "post";
  form.action = action;
  form.hidden = true;
  for (const [name, value] of Object.entries(fields)) {
    const input = document.createElement("input");
    input.type = "hidden";
    input.name = name;
    input.value = value;
    form.append(input);
  }
  document.body.append(form);
  form.submit();
}

/** Logs the stored device in: a fresh login nonce, signed, posted to /login. */
async function logInWith(device) {
  const { nonce } = await postJson("/v1/auth/challenge", {});
  const assertion = await assertUserVerification(device, nonce);
  const signature = await signLoginNonce(device, nonce);
  const fields = { credential: device.credential, nonce, signature };
  if (assertion) fields.user_verification = JSON.stringify(assertion);
  submitForm("/login", fields);
}

/**
 * Shows, before anything is registered, whether the new key will be protected by the
 * device's screen lock — and plainly when it will not (issue 9, defect 6). Resolves the
 * relying party ID to register with, or null.
 */
async function showUserVerification() {
  const box = document.getElementById("uv-status");
  if (!box) return null;
  let rpId = box.dataset.webauthnRp || null;
  // Opened under another name than the platform's (an alias, an address): the browser would
  // refuse the relying party, so do not offer it.
  const host = location.hostname;
  if (rpId && host !== rpId && !host.endsWith(`.${rpId}`)) rpId = null;
  const available = await userVerificationAvailable();
  showUserVerificationState(!rpId ? "uv-no-platform" : available ? "uv-yes" : "uv-no-browser");
  return rpId && available ? rpId : null;
}

function showUserVerificationState(shown) {
  const box = document.getElementById("uv-status");
  if (!box) return;
  for (const p of box.querySelectorAll("p")) p.hidden = p.id !== shown;
}

// ---------------------------------------------------------------------------------------
// Enrollment
// ---------------------------------------------------------------------------------------

// The enrollment form: a new device key (or this browser's, to upgrade it with the
// simulated card), enrollment, then login.
function enroll(form) {
  const uvReady = showUserVerification();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const statusEl = document.getElementById("enroll-status");
    const button = form.querySelector("#enroll-button");
    if (button) button.disabled = true;
    try {
      const useCard = Boolean(form.elements.use_simcard?.checked);
      let device = null;
      try {
        device = await loadDevice();
      } catch (e) {
        throw new PlatformError(say(`この端末では鍵を保存できません: ${e.message}`, `This browser cannot keep the key: ${e.message}`), "storage");
      }
      const existing = Boolean(device?.credential);
      if (existing && !useCard) {
        status(statusEl, say("この端末は登録済みです。ログインします…", "This device is already registered. Logging in…"));
        await logInWith(device);
        return;
      }
      if (!existing) device = await createDeviceKey();
      status(statusEl, say("登録しています…", "Registering…"));
      const { nonce } = await postJson("/v1/enrollment/challenge", {});
      // A new key is gated by the screen lock where the browser and the platform allow it.
      let registration = null;
      const rpId = existing ? null : await uvReady;
      if (rpId) {
        status(statusEl, say("画面ロック(PIN・指紋・顔)で確認してください…", "Confirm with your screen lock (PIN, fingerprint or face)…"));
        try {
          registration = await registerUserVerification(rpId, device.thumbprint, nonce);
        } catch (e) {
          if (e?.name === "NotAllowedError" || e?.name === "AbortError") throw new PlatformError(uvFailed(e, "enroll"));
          // The browser cannot register a credential here after all (SecurityError,
          // NotSupportedError…): enroll without the screen lock, and say so plainly.
          console.warn("tsunagu: no WebAuthn registration:", e);
          showUserVerificationState("uv-no-browser");
          registration = null;
        }
      }
      let card = null;
      let signed = null;
      if (useCard) {
        signed = enrollmentSignedData(device.thumbprint, nonce);
        status(statusEl, say("模擬カードを発行して署名しています…", "Issuing the simulated card and signing…"));
        card = await postJson("/dev/simulated-card", simulatedCardRequest({
          name: form.elements.sim_name?.value,
          address: form.elements.sim_address?.value,
          birthdate: form.elements.sim_birthdate?.value,
          sex: form.elements.sim_sex?.value,
        }, signed));
      }
      const body = enrollmentBody(device.publicJwk, nonce, card, signed);
      if (registration) body.user_verification = registration.wire;
      const enrolled = await postJson("/v1/enrollment", body);
      if (registration) device.uv = registration.uv;
      Object.assign(device, {
        credential: enrolled.credential,
        deviceId: enrolled.device_id,
        accountId: enrolled.account_id,
        level: enrolled.level,
      });
      await saveDevice(device);
      requestPersistentStorage().catch(() => null);
      status(statusEl, enrolled.level === "verified"
        ? say("本人確認済みとして登録しました。ログインします…", "Registered as verified. Logging in…")
        : say("仮IDとして登録しました。ログインします…", "Registered with a provisional ID. Logging in…"), "ok");
      try {
        await logInWith(device);
      } catch (e) {
        // The device is registered; only this login did not happen (a cancelled screen lock…).
        const why = e?.name === "NotAllowedError" || e?.name === "AbortError" ? uvFailed(e, "login") : explain(e);
        status(statusEl, say(`この端末は登録されました。ログインできませんでした: ${why} ログインページからログインしてください。`,
          `This device is registered, but logging in did not work: ${why} Log in from the login page.`), "error");
      }
    } catch (e) {
      status(statusEl, say(`登録できませんでした: ${explain(e)}`, `Registration failed: ${explain(e)}`), "error");
      if (button) button.disabled = false;
    }
  });
}

// ---------------------------------------------------------------------------------------
// 情報提供の管理
// ---------------------------------------------------------------------------------------

// A purpose's form: the switch, the per-item choice and the expiry become a signed consent,
// a signed revocation, or a signed expiry change, sent to the matching URL.
function consentForm(form) {
  form.addEventListener("submit", async (event) => {
    if (form.elements.consent_jws.value || form.elements.change_jws.value) return; // signed by hand
    event.preventDefault();
    const statusEl = form.querySelector(".form-status") ?? document.getElementById("consents-status");
    const d = form.dataset;
    let currentItems = [];
    try {
      currentItems = JSON.parse(d.currentItems || "[]");
    } catch {
      currentItems = [];
    }
    const items = [...form.querySelectorAll('input[name="item"]:checked')].map((i) => i.value);
    const plan = planConsent({
      enabled: form.elements.enabled.checked,
      activeId: d.consentId || null,
      items,
      currentItems,
      expiresOn: form.elements.expires_on.value,
      currentExpiresOn: d.currentExpiresOn || "",
    });
    if (plan.error === "no_items") {
      status(statusEl, say("提供する情報を一つ以上選んでください。", "Choose at least one item to share."), "error");
      return;
    }
    if (plan.action === "none") {
      status(statusEl, say("変更はありません。", "Nothing to change."));
      return;
    }
    let expiresAt = null;
    if (plan.action !== "revoke") {
      expiresAt = expiryFromDate(form.elements.expires_on.value, nowSeconds(), Number(d.maxExpires));
      if (expiresAt === null) {
        status(statusEl, say("有効期限には今日以降の日付を選んでください。", "Pick an expiry date from today on."), "error");
        return;
      }
    }
    const device = await deviceOrExplain(statusEl);
    if (!device) return;
    try {
      if (plan.action === "grant") {
        const payload = consentPayload({
          purposeId: d.purpose, consumer: d.consumer, provider: d.provider, items, expiresAt, termsSha256: d.terms,
        });
        await signInto(form, "consent_jws", device, payload);
        form.action = "/app/consents";
      } else {
        const payload = changePayload({ consentId: d.consentId, action: plan.action, expiresAt });
        await signInto(form, "change_jws", device, payload);
        form.action = `/app/consents/${encodeURIComponent(d.consentId)}/${plan.action}`;
      }
    } catch (e) {
      status(statusEl, signFailed(e), "error");
      return;
    }
    form.submit();
  });
}

// A revoke button of a consent: signs the revocation.
function consentChange(form) {
  form.addEventListener("submit", async (event) => {
    if (form.elements.change_jws.value) return; // signed by hand
    event.preventDefault();
    const statusEl = document.getElementById("consents-status");
    const device = await deviceOrExplain(statusEl);
    if (!device) return;
    try {
      const payload = changePayload({ consentId: form.dataset.consentId, action: form.dataset.consentChange || "revoke" });
      await signInto(form, "change_jws", device, payload);
    } catch (e) {
      status(statusEl, signFailed(e), "error");
      return;
    }
    form.submit();
  });
}

// ---------------------------------------------------------------------------------------
// History: the ledger marks
// ---------------------------------------------------------------------------------------

async function history(section) {
  const marks = [...section.querySelectorAll("[data-leaf-index]")];
  const statusEl = document.getElementById("ledger-status");
  if (marks.length === 0) return;
  for (const el of marks) el.textContent = say("確認中…", "checking…");
  try {
    const query = new URLSearchParams({ limit: "50" });
    if (section.dataset.before) query.set("before", section.dataset.before);
    const response = await fetch(`/app/history.json?${query}`, {
      headers: { accept: "application/json" }, credentials: "same-origin",
    });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const data = await response.json();
    const verified = await fetchAndVerifyHistory("", data.items);
    let good = 0;
    for (const el of marks) {
      const result = verified.results.get(Number(el.dataset.leafIndex));
      if (result === true) good += 1;
      const mark = ledgerMark(result, lang());
      el.textContent = mark.text;
      el.className = mark.cls;
      el.dataset.verified = result === true ? "true" : result === false ? "false" : "unknown";
    }
    const size = document.getElementById("tree-size");
    if (size) {
      size.textContent = String(verified.sth.tree_size);
      size.dataset.treeSize = String(verified.sth.tree_size);
      size.dataset.verified = verified.headOk === false ? "false" : "true";
    }
    const head = verified.headOk === true
      ? say("署名済みツリーヘッドの署名も確認しました。", "The tree head's signature was checked too.")
      : verified.headOk === null
        ? say("このブラウザは Ed25519 に対応していないため、ツリーヘッドの署名は確認できませんでした。", "This browser lacks Ed25519, so the tree head's signature was not checked.")
        : say(`ツリーヘッドの署名が正しくありません: ${verified.headReason}`, `The tree head's signature is not valid: ${verified.headReason}`);
    status(statusEl, say(
      `台帳(${verified.sth.tree_size} 件)で ${good} / ${marks.length} 件を確認しました。${head}`,
      `${good} of ${marks.length} entries verified against the ledger of ${verified.sth.tree_size} entries. ${head}`,
    ), verified.headOk === false || good < marks.length ? "error" : "ok");
  } catch (e) {
    for (const el of marks) {
      const mark = ledgerMark(undefined, lang());
      el.textContent = mark.text;
      el.className = mark.cls;
    }
    status(statusEl, say(`台帳で確認できませんでした: ${explain(e)}`, `Could not check against the ledger: ${explain(e)}`), "error");
  }
}

// ---------------------------------------------------------------------------------------
// Devices
// ---------------------------------------------------------------------------------------

// Revoking this browser's own device: revoke, forget the key here, and go to the start.
function deviceRevoke(form) {
  if (!("current" in form.dataset)) return;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const statusEl = document.getElementById("devices-status");
    try {
      const response = await fetch(form.action, {
        method: "POST",
        body: new URLSearchParams(new FormData(form)),
        credentials: "same-origin",
      });
      if (!response.ok) {
        const page = new DOMParser().parseFromString(await response.text(), "text/html");
        const message = page.querySelector('[role="alert"] p')?.textContent ?? `HTTP ${response.status}`;
        const code = page.querySelector(".error-code")?.textContent;
        throw new PlatformError(message, code);
      }
      // Revoking ends the session and lands on the start page; anything else (the login
      // page after an expired session) means nothing was revoked.
      if (new URL(response.url, location.href).pathname !== "/") {
        throw new PlatformError(say("セッションが切れています。ログインし直してください。", "Your session has ended. Log in again."), "unauthorized");
      }
      await forgetDevice();
      location.assign("/");
    } catch (e) {
      status(statusEl, say(`無効にできませんでした: ${explain(e)}`, `Could not revoke: ${explain(e)}`), "error");
    }
  });
}

/** Page behaviours by data attribute on a form or element (`data-<name>`). */
export const behaviours = {
  login,
  consent,
  enroll,
  "consent-form": consentForm,
  "consent-change": consentChange,
  history,
  "device-revoke": deviceRevoke,
};

export function start(root = document) {
  for (const [name, fn] of Object.entries(behaviours)) {
    for (const el of root.querySelectorAll(`[data-${name}]`)) fn(el);
  }
}

if (typeof document !== "undefined") {
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", () => start());
  else start();
}

// tsunagu — the service console's and the committee console's page behaviour.
//
// Every form works without this script for a client that signs by itself (the `assertion`
// and `vote_jws` fields). With it, the browser signs:
//
//   * service console sign-in: the operator picks the service's private key file (PKCS#8
//     PEM, ES256); it is imported as a non-extractable key, signs one client assertion and is
//     dropped — it is never stored;
//   * committee sign-in: the member picks their key file; it is imported as a
//     non-extractable key, kept in IndexedDB (database "tsunagu-committee", separate from the
//     resident wallet's) for the session, and signs the sign-in assertion;
//   * votes: the stored member key signs {service_id, decision, comment, issued_at, nonce}
//     with header kid = the member id, into the hidden field `vote_jws`;
//   * committee sign-out forgets the stored key.

import { b64url, importPkcs8Pem, signJws } from "./jose.js";

const DB_NAME = "tsunagu-committee";
const DB_VERSION = 1;
const STORE = "member";
const RECORD_KEY = "current";

/** Lifetime of the assertions this script signs (the platform accepts at most 300 s). */
export const ASSERTION_LIFETIME = 120;

const lang = () => (globalThis.document?.body?.dataset.lang === "en" ? "en" : "ja");
const say = (ja, en) => (lang() === "en" ? en : ja);

// ---------------------------------------------------------------------------------------
// Signing (no DOM, no storage: also used by the Node tests)
// ---------------------------------------------------------------------------------------

/** A random base64url string of `bytes` random bytes (jti, nonces). */
export function randomId(bytes = 16) {
  const b = new Uint8Array(bytes);
  globalThis.crypto.getRandomValues(b);
  return b64url(b);
}

/**
 * A client assertion (RFC 7523 shape): a compact ES256 JWS with header {typ: "JWT", kid} and
 * claims {iss, sub (both `issuer`), aud, jti, iat, exp}.
 */
export async function clientAssertion(privateKey, { issuer, audience, kid, now = Date.now(), lifetime = ASSERTION_LIFETIME }) {
  if (typeof issuer !== "string" || issuer === "") throw new TypeError("clientAssertion: issuer is required");
  if (typeof audience !== "string" || audience === "") throw new TypeError("clientAssertion: audience is required");
  if (lifetime <= 0 || lifetime > 300) throw new RangeError("clientAssertion: lifetime must be 1-300 seconds");
  const iat = Math.floor(now / 1000);
  const header = { typ: "JWT" };
  if (kid) header.kid = kid;
  return signJws(privateKey, header, { iss: issuer, sub: issuer, aud: audience, jti: randomId(), iat, exp: iat + lifetime });
}

/** The payload of a committee vote, as the platform verifies it. */
export function votePayload({ serviceId, decision, comment = "", overrides = [], now = Date.now(), nonce = randomId() }) {
  if (typeof serviceId !== "string" || serviceId === "") throw new TypeError("votePayload: serviceId is required");
  if (!["approve", "reject", "suspend", "reinstate"].includes(decision)) {
    throw new TypeError(`votePayload: unknown decision ${JSON.stringify(decision)}`);
  }
  const payload = { service_id: serviceId, decision, comment: String(comment), issued_at: Math.floor(now / 1000), nonce };
  // Only an approval overrides lint error findings, each named by its code.
  if (decision === "approve" && overrides.length > 0) payload.override = [...overrides].map(String);
  return payload;
}

/** A vote signed with a member record ({privateKey, memberId}); header kid = the member id. */
export async function signVote(member, fields) {
  if (!member?.privateKey || typeof member.memberId !== "string" || member.memberId === "") {
    throw new TypeError("signVote: a member record with privateKey and memberId is required");
  }
  return signJws(member.privateKey, { kid: member.memberId }, votePayload(fields));
}

/** Imports a PEM key file's text as a member record (non-extractable key). */
export async function memberRecord(pem, memberId) {
  const key = await importPkcs8Pem(pem);
  return {
    privateKey: key.privateKey,
    publicJwk: key.publicJwk,
    thumbprint: key.thumbprint,
    memberId,
    savedAt: new Date().toISOString(),
  };
}

// ---------------------------------------------------------------------------------------
// IndexedDB: the committee member's key for the session
// ---------------------------------------------------------------------------------------

function idb() {
  const factory = globalThis.indexedDB;
  if (!factory) throw new Error("IndexedDB is not available here (private browsing or an old browser?)");
  return factory;
}

function done(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

function openDb() {
  const request = idb().open(DB_NAME, DB_VERSION);
  request.onupgradeneeded = () => {
    const db = request.result;
    if (!db.objectStoreNames.contains(STORE)) db.createObjectStore(STORE);
  };
  return done(request);
}

async function withStore(mode, fn) {
  const db = await openDb();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const request = fn(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(request.result);
      tx.onerror = () => reject(tx.error ?? request.error);
      tx.onabort = () => reject(tx.error ?? new Error("IndexedDB transaction aborted"));
    });
  } finally {
    db.close();
  }
}

/** Keeps the member record (its key must be non-extractable). */
export async function saveMemberKey(record) {
  const key = record?.privateKey;
  if (!key || key.type !== "private" || key.extractable !== false) {
    throw new TypeError("saveMemberKey: the record needs a non-extractable private CryptoKey");
  }
  await withStore("readwrite", (store) => store.put(record, RECORD_KEY));
}

/** The stored member record, or null. */
export async function loadMemberKey() {
  return (await withStore("readonly", (store) => store.get(RECORD_KEY))) ?? null;
}

/** Forgets the stored member key. */
export async function forgetMemberKey() {
  await withStore("readwrite", (store) => store.delete(RECORD_KEY));
}

// ---------------------------------------------------------------------------------------
// Page behaviours (by data attribute)
// ---------------------------------------------------------------------------------------

function status(el, text, kind = "") {
  if (!el) return;
  el.hidden = false;
  el.textContent = text;
  el.className = `notice ${kind}`.trim();
  el.setAttribute("role", kind === "error" ? "alert" : "status");
}

async function readKeyFile(input) {
  const file = input?.files?.[0];
  if (!file) return null;
  return file.text();
}

function busy(form, on) {
  for (const b of form.querySelectorAll("button")) b.disabled = on;
}

// Service console sign-in: sign an assertion with the picked key file, then post it.
function consoleLogin(form) {
  form.addEventListener("submit", async (event) => {
    if (form.elements.assertion.value.trim()) return; // signed by hand
    event.preventDefault();
    const statusEl = document.getElementById("console-login-status");
    const serviceId = form.elements.service_id.value.trim();
    busy(form, true);
    try {
      const pem = await readKeyFile(document.getElementById("service-key-file"));
      if (!pem) {
        status(statusEl, say("秘密鍵ファイルを選んでください。", "Choose the private key file."), "error");
        return;
      }
      if (!serviceId) {
        status(statusEl, say("サービスIDを入れてください。", "Enter the service ID."), "error");
        return;
      }
      const key = await importPkcs8Pem(pem);
      form.elements.assertion.value = await clientAssertion(key.privateKey, {
        issuer: serviceId,
        audience: form.dataset.audience,
        kid: key.thumbprint,
      });
      status(statusEl, say("署名しました。ログインしています…", "Signed. Signing in…"));
      form.submit();
    } catch (e) {
      status(statusEl, say(`鍵ファイルを使えません: ${e.message}`, `Cannot use the key file: ${e.message}`), "error");
    } finally {
      busy(form, false);
    }
  });
}

// Committee sign-in: import the member key, keep it for the session, sign the assertion.
function committeeLogin(form) {
  form.addEventListener("submit", async (event) => {
    if (form.elements.assertion.value.trim()) return; // signed by hand
    event.preventDefault();
    const statusEl = document.getElementById("committee-login-status");
    const memberId = form.elements.member_id.value.trim();
    busy(form, true);
    try {
      const pem = await readKeyFile(document.getElementById("member-key-file"));
      if (!pem) {
        status(statusEl, say("委員の秘密鍵ファイルを選んでください。", "Choose your member key file."), "error");
        return;
      }
      if (!memberId) {
        status(statusEl, say("委員IDを入れてください。", "Enter your member ID."), "error");
        return;
      }
      const record = await memberRecord(pem, memberId);
      await saveMemberKey(record);
      form.elements.assertion.value = await clientAssertion(record.privateKey, {
        issuer: memberId,
        audience: form.dataset.audience,
        kid: memberId,
      });
      status(statusEl, say("署名しました。ログインしています…", "Signed. Signing in…"));
      form.submit();
    } catch (e) {
      status(statusEl, say(`鍵ファイルを使えません: ${e.message}`, `Cannot use the key file: ${e.message}`), "error");
    } finally {
      busy(form, false);
    }
  });
}

// form.submit() does not send the pressed button: carry the decision in a hidden field.
function carryDecision(form, decision) {
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

// A vote: sign {service_id, decision, comment, issued_at, nonce, override?} with the stored
// member key; an approval names the error findings it overrides (the boxes ticked).
function vote(form) {
  form.addEventListener("submit", async (event) => {
    const decision = event.submitter?.value ?? "";
    if (form.elements.vote_jws.value.trim()) {
      carryDecision(form, decision);
      return; // signed by hand
    }
    event.preventDefault();
    const serviceId = form.dataset.serviceId;
    const statusEl = document.getElementById(`vote-status-${serviceId}`);
    const memberId = document.getElementById("committee")?.dataset.memberId ?? "";
    busy(form, true);
    try {
      const member = await loadMemberKey();
      if (!member) {
        status(statusEl, say(
          "この端末に委員の鍵がありません。いったんログアウトし、鍵ファイルでログインし直してください。",
          "This device holds no member key. Sign out and sign in again with your key file.",
        ), "error");
        return;
      }
      if (member.memberId !== memberId) {
        status(statusEl, say(
          `この端末の鍵は委員 ${member.memberId} のものです。ログインし直してください。`,
          `The key on this device belongs to member ${member.memberId}. Sign in again.`,
        ), "error");
        return;
      }
      form.elements.vote_jws.value = await signVote(member, {
        serviceId,
        decision,
        comment: form.elements.comment?.value ?? "",
        overrides: [...form.querySelectorAll('input[name="override"]:checked')].map((b) => b.value),
      });
      carryDecision(form, decision);
      status(statusEl, say("署名しました。送信しています…", "Signed. Sending…"));
      form.submit();
    } catch (e) {
      status(statusEl, say(`署名できません: ${e.message}`, `Cannot sign: ${e.message}`), "error");
    } finally {
      busy(form, false);
    }
  });
}

// Committee sign-out: forget the stored key first.
function committeeLogout(form) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await forgetMemberKey();
    } catch (e) {
      console.warn("tsunagu committee: could not forget the key", e);
    }
    form.submit();
  });
}

/** Page behaviours by data attribute. */
export const behaviours = {
  "console-login": consoleLogin,
  "committee-login": committeeLogin,
  vote,
  "committee-logout": committeeLogout,
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

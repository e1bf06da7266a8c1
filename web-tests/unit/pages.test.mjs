// Tests for the pure parts of crates/web/static/js/pages.js — run with
// `node --test web-tests/unit/`. (The behaviours that touch the DOM are exercised by the
// browser tests.)

import { test, describe } from "node:test";
import assert from "node:assert/strict";

import {
  changePayload, consentPayload, enrollmentBody, expiryFromDate, ledgerMark, planConsent,
  randomNonce, simulatedCardRequest,
} from "../../crates/web/static/js/pages.js";
import { createDeviceKey, enrollmentSignedData, signResidentJws } from "../../crates/web/static/js/wallet.js";
import { b64Decode, b64urlDecode, jcs, verifyJwsEs256 } from "../../crates/web/static/js/jose.js";

const text = (bytes) => new TextDecoder().decode(bytes);

describe("signed statements", () => {
  test("consentPayload has exactly the members the platform expects", () => {
    const p = consentPayload({
      purposeId: "allergy-to-daycare", consumer: "svc-c", provider: "svc-p", items: ["allergy"],
      expiresAt: 1_900_000_000, termsSha256: "ab".repeat(32), issuedAt: 1_800_000_000, nonce: "n-1",
    });
    assert.deepEqual(Object.keys(p).sort(), [
      "consumer", "expires_at", "issued_at", "items", "nonce", "provider", "purpose_id", "terms_sha256", "v",
    ]);
    assert.equal(p.v, 1);
    assert.deepEqual(p.items, ["allergy"]);
    assert.equal(p.expires_at, 1_900_000_000);
    assert.equal(p.issued_at, 1_800_000_000);
    assert.throws(() => consentPayload({ items: [], expiresAt: 1 }), TypeError);
    assert.throws(() => consentPayload({ items: ["a"], expiresAt: "soon" }), TypeError);
  });

  test("consentPayload defaults issued_at to now and a fresh nonce", () => {
    const before = Math.floor(Date.now() / 1000);
    const a = consentPayload({ purposeId: "p", consumer: "c", provider: "s", items: ["x"], expiresAt: before + 60, termsSha256: "t" });
    const b = consentPayload({ purposeId: "p", consumer: "c", provider: "s", items: ["x"], expiresAt: before + 60, termsSha256: "t" });
    assert.ok(a.issued_at >= before && a.issued_at <= before + 2);
    assert.notEqual(a.nonce, b.nonce);
    assert.equal(b64urlDecode(a.nonce).length, 16);
    assert.notEqual(randomNonce(), randomNonce());
  });

  test("changePayload: revoke without, expiry with expires_at", () => {
    const r = changePayload({ consentId: "c1", action: "revoke", issuedAt: 5, nonce: "n" });
    assert.deepEqual(r, { consent_id: "c1", action: "revoke", issued_at: 5, nonce: "n" });
    const e = changePayload({ consentId: "c1", action: "expiry", expiresAt: 99, issuedAt: 5, nonce: "n" });
    assert.deepEqual(e, { consent_id: "c1", action: "expiry", expires_at: 99, issued_at: 5, nonce: "n" });
    assert.throws(() => changePayload({ consentId: "c1", action: "expiry" }), TypeError);
    assert.throws(() => changePayload({ consentId: "c1", action: "delete" }), TypeError);
  });

  test("a signed consent verifies with the device key and carries the JCS of the payload", async () => {
    const device = await createDeviceKey();
    const payload = consentPayload({
      purposeId: "p", consumer: "c", provider: "tsunagu", items: ["name", "birthdate"],
      expiresAt: 2_000_000_000, termsSha256: "t", issuedAt: 1_900_000_000, nonce: "n",
    });
    const token = await signResidentJws(device, payload);
    assert.equal(await verifyJwsEs256(token, device.publicJwk), true);
    assert.equal(text(b64urlDecode(token.split(".")[1])), jcs(payload));
  });
});

describe("the expiry picker", () => {
  const now = Date.UTC(2030, 0, 10, 3, 0, 0) / 1000; // 2030-01-10 12:00 JST

  test("a date ends at 23:59:59 in Japan", () => {
    assert.equal(expiryFromDate("2030-02-01", now, null), Date.UTC(2030, 1, 1, 14, 59, 59) / 1000);
    assert.equal(expiryFromDate("2030-01-10", now, null), Date.UTC(2030, 0, 10, 14, 59, 59) / 1000);
  });

  test("capped at the longest consent, refused when past or malformed", () => {
    const max = now + 30 * 86_400;
    assert.equal(expiryFromDate("2031-01-01", now, max), max);
    assert.equal(expiryFromDate("2030-01-09", now, max), null);
    assert.equal(expiryFromDate("2030-02-30", now, max), null);
    assert.equal(expiryFromDate("next week", now, max), null);
    assert.equal(expiryFromDate("", now, max), null);
    assert.equal(expiryFromDate(undefined, now, max), null);
  });
});

describe("what saving a purpose means", () => {
  const base = { activeId: "c1", currentItems: ["allergy", "class"], currentExpiresOn: "2030-05-01" };

  test("switch off revokes an active consent, does nothing otherwise", () => {
    assert.deepEqual(planConsent({ ...base, enabled: false, items: ["allergy"] }), { action: "revoke" });
    assert.deepEqual(planConsent({ enabled: false, activeId: null, items: [] }), { action: "none" });
  });

  test("switch on: a new consent, an expiry change, or nothing", () => {
    assert.deepEqual(planConsent({ enabled: true, activeId: null, items: ["allergy"], currentItems: [] }), { action: "grant" });
    assert.deepEqual(planConsent({ ...base, enabled: true, items: ["class", "allergy"], expiresOn: "2030-05-01" }), { action: "none" });
    assert.deepEqual(planConsent({ ...base, enabled: true, items: ["allergy", "class"], expiresOn: "2030-06-01" }), { action: "expiry" });
    assert.deepEqual(planConsent({ ...base, enabled: true, items: ["allergy"], expiresOn: "2030-05-01" }), { action: "grant" });
    assert.deepEqual(planConsent({ ...base, enabled: true, items: [], expiresOn: "2030-05-01" }), { error: "no_items" });
  });
});

describe("enrollment requests", () => {
  test("the simulated card request carries the exact bytes to sign, base64", () => {
    const signed = enrollmentSignedData("tp", "nonce-1");
    const body = simulatedCardRequest({ name: " 前橋　花子 ", address: "前橋市", birthdate: "1988-04-01", sex: "2" }, signed);
    assert.deepEqual(Object.keys(body).sort(), ["address", "birthdate", "name", "sex", "signed_data"]);
    assert.equal(body.name, "前橋　花子");
    assert.equal(text(b64Decode(body.signed_data)), '{"device_jwk_thumbprint":"tp","nonce":"nonce-1"}');
  });

  test("enrollmentBody: provisional without a card, a jpki proof with one", () => {
    const jwk = { kty: "EC", crv: "P-256", x: "x", y: "y" };
    assert.deepEqual(enrollmentBody(jwk, "n", null, null), { device_jwk: jwk, nonce: "n" });
    const signed = enrollmentSignedData("tp", "n");
    const body = enrollmentBody(jwk, "n", { certificate_chain: ["Y2VydA=="], signature: "c2ln" }, signed);
    assert.deepEqual(body.proof.certificate_chain, ["Y2VydA=="]);
    assert.equal(body.proof.type, "jpki");
    assert.equal(body.proof.signature, "c2ln");
    assert.equal(text(b64Decode(body.proof.signed_data)), text(signed));
  });
});

test("ledger marks: verified, not verified, not checked", () => {
  assert.deepEqual(ledgerMark(true, "ja"), { text: "台帳で確認済み", cls: "badge ok ledger-mark" });
  assert.deepEqual(ledgerMark(true, "en"), { text: "verified in the ledger", cls: "badge ok ledger-mark" });
  assert.equal(ledgerMark(false, "en").cls, "badge err ledger-mark");
  assert.equal(ledgerMark(undefined, "en").text, "not checked");
});

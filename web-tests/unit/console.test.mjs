// Tests for crates/web/static/js/console.js — run with `node --test web-tests/unit/`.

import { test, describe } from "node:test";
import assert from "node:assert/strict";
import nodeCrypto from "node:crypto";

import {
  clientAssertion, votePayload, signVote, memberRecord, randomId, saveMemberKey, ASSERTION_LIFETIME,
} from "../../crates/web/static/js/console.js";
import { parseJws, verifyJwsEs256 } from "../../crates/web/static/js/jose.js";

const text = (bytes) => new TextDecoder().decode(bytes);

/** A P-256 key pair made by Node itself: PKCS#8 PEM and public JWK. */
function nodeKey() {
  const { privateKey, publicKey } = nodeCrypto.generateKeyPairSync("ec", { namedCurve: "P-256" });
  return {
    pem: privateKey.export({ format: "pem", type: "pkcs8" }),
    jwk: publicKey.export({ format: "jwk" }),
  };
}

describe("client assertions", () => {
  test("clientAssertion: ES256 JWT with iss = sub, aud, jti, iat, exp, verifiable by the public key", async () => {
    const { pem, jwk } = nodeKey();
    const member = await memberRecord(pem, "m1");
    const now = Date.UTC(2026, 10, 22, 3, 0, 0);
    const jwt = await clientAssertion(member.privateKey, {
      issuer: "svc_abc", audience: "https://city.example.jp/console", kid: member.thumbprint, now,
    });
    assert.ok(await verifyJwsEs256(jwt, jwk), "verifies with Node's public key");
    const parsed = parseJws(jwt);
    assert.deepEqual(parsed.header, { alg: "ES256", kid: member.thumbprint, typ: "JWT" });
    const claims = JSON.parse(text(parsed.payload));
    assert.equal(claims.iss, "svc_abc");
    assert.equal(claims.sub, "svc_abc");
    assert.equal(claims.aud, "https://city.example.jp/console");
    assert.equal(claims.iat, Math.floor(now / 1000));
    assert.equal(claims.exp, claims.iat + ASSERTION_LIFETIME);
    assert.ok(claims.exp - claims.iat <= 300, "the platform accepts at most five minutes");
    assert.match(claims.jti, /^[A-Za-z0-9_-]{22}$/);

    const again = JSON.parse(text(parseJws(await clientAssertion(member.privateKey, {
      issuer: "svc_abc", audience: "https://city.example.jp/console", now,
    })).payload));
    assert.notEqual(again.jti, claims.jti, "every assertion has its own jti");
  });

  test("clientAssertion refuses what the platform would refuse", async () => {
    const member = await memberRecord(nodeKey().pem, "m1");
    await assert.rejects(clientAssertion(member.privateKey, { issuer: "", audience: "x" }), TypeError);
    await assert.rejects(clientAssertion(member.privateKey, { issuer: "a", audience: "" }), TypeError);
    await assert.rejects(clientAssertion(member.privateKey, { issuer: "a", audience: "x", lifetime: 301 }), RangeError);
  });
});

describe("votes", () => {
  test("votePayload has exactly the fields the platform reads", () => {
    const p = votePayload({ serviceId: "svc_1", decision: "approve", comment: "ok", now: 1_800_000_000_500, nonce: "n1" });
    assert.deepEqual(p, { service_id: "svc_1", decision: "approve", comment: "ok", issued_at: 1_800_000_000, nonce: "n1" });
    assert.throws(() => votePayload({ serviceId: "svc_1", decision: "approve!" }), TypeError);
    assert.throws(() => votePayload({ serviceId: "", decision: "approve" }), TypeError);
    assert.match(votePayload({ serviceId: "s", decision: "suspend" }).nonce, /^[A-Za-z0-9_-]{22}$/);
  });

  test("votePayload: an approval names the error findings it overrides; nothing else does", () => {
    const p = votePayload({ serviceId: "svc_1", decision: "approve", overrides: ["no_retention"], now: 0, nonce: "n" });
    assert.deepEqual(p.override, ["no_retention"]);
    const r = votePayload({ serviceId: "svc_1", decision: "reject", overrides: ["no_retention"], now: 0, nonce: "n" });
    assert.equal("override" in r, false);
    const plain = votePayload({ serviceId: "svc_1", decision: "approve", now: 0, nonce: "n" });
    assert.equal("override" in plain, false, "no findings: no member");
  });

  test("signVote: kid is the member id, the signature verifies with the member's key", async () => {
    const { pem, jwk } = nodeKey();
    const member = await memberRecord(pem, "member-7");
    assert.equal(member.privateKey.extractable, false, "the stored key cannot be read out");
    assert.deepEqual(member.privateKey.usages, ["sign"]);
    const jws = await signVote(member, { serviceId: "svc_9", decision: "reinstate", comment: "再開" });
    assert.ok(await verifyJwsEs256(jws, jwk));
    const parsed = parseJws(jws);
    assert.equal(parsed.header.kid, "member-7");
    const payload = JSON.parse(text(parsed.payload));
    assert.equal(payload.service_id, "svc_9");
    assert.equal(payload.decision, "reinstate");
    assert.equal(payload.comment, "再開");
    assert.ok(Math.abs(payload.issued_at - Date.now() / 1000) < 5);
    await assert.rejects(signVote({ privateKey: member.privateKey }, { serviceId: "s", decision: "approve" }), TypeError);
  });

  test("memberRecord refuses a key that is not P-256 PKCS#8", async () => {
    const { privateKey } = nodeCrypto.generateKeyPairSync("ec", { namedCurve: "P-384" });
    await assert.rejects(memberRecord(privateKey.export({ format: "pem", type: "pkcs8" }), "m1"));
    await assert.rejects(memberRecord("not a key", "m1"));
  });

  test("saveMemberKey refuses an extractable key before touching storage", async () => {
    const pair = await globalThis.crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"]);
    await assert.rejects(saveMemberKey({ privateKey: pair.privateKey, memberId: "m1" }), TypeError);
  });

  test("randomId gives distinct base64url strings", () => {
    const ids = new Set(Array.from({ length: 100 }, () => randomId()));
    assert.equal(ids.size, 100);
  });
});

// Tests for crates/web/static/js/ledger.js — run with `node --test web-tests/unit/`.
//
// The RFC 9162 proof vectors are read from ../../../shared/vectors/rfc9162 relative to this
// file (the `shared/` directory next to the repository); without them those tests are
// skipped with a notice.

import { test, describe } from "node:test";
import assert from "node:assert/strict";
import nodeCrypto from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";

import {
  leafHash, nodeHash, verifyInclusion, verifyConsistency, verifyTreeHead,
  verifyHistoryItem, fetchAndVerifyHistory,
} from "../../crates/web/static/js/ledger.js";
import { b64, b64Decode, jcs, thumbprint, utf8 } from "../../crates/web/static/js/jose.js";

const subtle = globalThis.crypto.subtle;
const hex = (bytes) => Buffer.from(bytes).toString("hex");

// ---------------------------------------------------------------------------------------
// A reference Merkle tree straight from RFC 9162 §2.1 (MTH, PATH, PROOF), hashed with
// node:crypto so it shares no code with ledger.js.
// ---------------------------------------------------------------------------------------

const sha = (...parts) => new Uint8Array(nodeCrypto.createHash("sha256").update(Buffer.concat(parts)).digest());
const refLeaf = (input) => sha(Buffer.of(0), input);
const refNode = (l, r) => sha(Buffer.of(1), l, r);
const split = (n) => { let k = 1; while (k * 2 < n) k *= 2; return k; }; // largest power of 2 < n

function mth(leaves) {
  if (leaves.length === 0) return sha(Buffer.alloc(0));
  if (leaves.length === 1) return leaves[0];
  const k = split(leaves.length);
  return refNode(mth(leaves.slice(0, k)), mth(leaves.slice(k)));
}

function auditPath(m, leaves) {
  if (leaves.length <= 1) return [];
  const k = split(leaves.length);
  return m < k
    ? [...auditPath(m, leaves.slice(0, k)), mth(leaves.slice(k))]
    : [...auditPath(m - k, leaves.slice(k)), mth(leaves.slice(0, k))];
}

function subproof(m, leaves, complete) {
  const n = leaves.length;
  if (m === n) return complete ? [] : [mth(leaves)];
  const k = split(n);
  return m <= k
    ? [...subproof(m, leaves.slice(0, k), complete), mth(leaves.slice(k))]
    : [...subproof(m - k, leaves.slice(k), false), mth(leaves.slice(0, k))];
}
const consistencyProof = (m, leaves) => subproof(m, leaves, true);

const inputs = Array.from({ length: 21 }, (_, i) => utf8(JSON.stringify({ event: "test", i })));
const leaves = inputs.map(refLeaf);

// ---------------------------------------------------------------------------------------

describe("hashing", () => {
  test("leafHash and nodeHash use the 0x00 / 0x01 prefixes", async () => {
    // RFC 6962 / transparency-dev: the hash of the empty leaf.
    assert.equal(hex(await leafHash(new Uint8Array())),
      "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
    const a = leaves[0];
    const b = leaves[1];
    assert.deepEqual(await leafHash(inputs[3]), leaves[3]);
    assert.deepEqual(await nodeHash(a, b), refNode(a, b));
    assert.notDeepEqual(await nodeHash(a, b), await nodeHash(b, a));
  });
});

describe("proofs against a reference tree", () => {
  test("every inclusion proof in trees of 1..21 leaves verifies; wrong ones do not", async () => {
    for (let n = 1; n <= 21; n++) {
      const tree = leaves.slice(0, n);
      const rootHash = mth(tree);
      for (let i = 0; i < n; i++) {
        const proof = { leafIndex: i, treeSize: n, leafHash: tree[i], auditPath: auditPath(i, tree), rootHash };
        assert.equal(await verifyInclusion(proof), true, `${i} in ${n}`);
        assert.equal(await verifyInclusion({ ...proof, leafHash: tree[(i + 1) % n] }), n === 1, `wrong leaf ${i}/${n}`);
        if (n > 1) {
          assert.equal(await verifyInclusion({ ...proof, leafIndex: (i + 1) % n }), false, `wrong index ${i}/${n}`);
        }
        // (A different tree size with the same path shape cannot be detected from the path:
        // the root binds the size. Sizes at or below the index always fail.)
        assert.equal(await verifyInclusion({ ...proof, treeSize: i }), false, `size ${i} <= index`);
        assert.equal(await verifyInclusion({ ...proof, auditPath: [...proof.auditPath, rootHash] }), false);
        if (proof.auditPath.length) {
          assert.equal(await verifyInclusion({ ...proof, auditPath: proof.auditPath.slice(1) }), false);
        }
      }
    }
  });

  test("every consistency proof between trees of 1..21 leaves verifies; wrong ones do not", async () => {
    for (let n = 1; n <= 21; n++) {
      const secondRoot = mth(leaves.slice(0, n));
      for (let m = 1; m <= n; m++) {
        const firstRoot = mth(leaves.slice(0, m));
        const proof = consistencyProof(m, leaves.slice(0, n));
        const args = { first: m, second: n, firstRoot, secondRoot, proof };
        assert.equal(await verifyConsistency(args), true, `${m} -> ${n}`);
        if (m < n) {
          assert.equal(await verifyConsistency({ ...args, firstRoot: secondRoot }), false, `root ${m} -> ${n}`);
          assert.equal(await verifyConsistency({ ...args, secondRoot: firstRoot }), false);
          assert.equal(await verifyConsistency({ ...args, first: m + 1 === n ? m - 1 || n : m + 1 }), false);
          assert.equal(await verifyConsistency({ ...args, proof: proof.slice(0, -1) }), false);
          assert.equal(await verifyConsistency({ ...args, proof: [...proof, secondRoot] }), false);
        }
      }
    }
  });

  test("bad input gives false, never an exception", async () => {
    const tree = leaves.slice(0, 5);
    const rootHash = mth(tree);
    const good = { leafIndex: 2, treeSize: 5, leafHash: tree[2], auditPath: auditPath(2, tree), rootHash };
    const variants = [
      { leafIndex: 5 }, { leafIndex: -1 }, { leafIndex: 1.5 }, { treeSize: 0 }, { leafIndex: 2 ** 64 },
      { leafIndex: "2" }, { leafHash: tree[2].slice(1) }, { leafHash: null }, { auditPath: "x" },
      { auditPath: [new Uint8Array(31), ...good.auditPath.slice(1)] }, { auditPath: [null] }, { rootHash: undefined },
    ];
    assert.equal(await verifyInclusion(good), true);
    for (const v of variants) assert.equal(await verifyInclusion({ ...good, ...v }), false, JSON.stringify(v));
    assert.equal(await verifyInclusion(undefined), false);
    assert.equal(await verifyConsistency(undefined), false);
    assert.equal(await verifyConsistency({ first: 2, second: 5, firstRoot: rootHash, secondRoot: rootHash, proof: [1] }), false);
  });
});

// ---------------------------------------------------------------------------------------
// RFC 9162 vectors (transparency-dev/merkle). Every case must give !wantErr.
// ---------------------------------------------------------------------------------------

const VECTORS = fileURLToPath(new URL("../../../shared/vectors/rfc9162", import.meta.url));

function jsonFiles(dir) {
  return readdirSync(dir).sort().flatMap((name) => {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) return jsonFiles(p);
    return name.endsWith(".json") ? [p] : [];
  });
}

const decodeAll = (list) => (list ?? []).map(b64Decode);

describe("RFC 9162 vectors", () => {
  if (!existsSync(VECTORS)) {
    console.log(`# notice: RFC 9162 vectors not found at ${VECTORS}; skipping them`);
    test.skip(`vectors missing at ${VECTORS}`);
    return;
  }

  const inclusion = jsonFiles(path.join(VECTORS, "inclusion"));
  const consistency = jsonFiles(path.join(VECTORS, "consistency"));

  test("the vector set is complete", () => {
    assert.ok(inclusion.length >= 50, `${inclusion.length} inclusion cases`);
    assert.ok(consistency.length >= 50, `${consistency.length} consistency cases`);
  });

  for (const file of inclusion) {
    const rel = path.relative(VECTORS, file);
    test(`${rel}`, async () => {
      const v = JSON.parse(readFileSync(file, "utf8"));
      const ok = await verifyInclusion({
        leafIndex: v.leafIdx,
        treeSize: v.treeSize,
        leafHash: b64Decode(v.leafHash),
        auditPath: decodeAll(v.proof),
        rootHash: b64Decode(v.root),
      });
      assert.equal(ok, !v.wantErr, `${v.desc}: wantErr=${v.wantErr}`);
    });
  }

  for (const file of consistency) {
    const rel = path.relative(VECTORS, file);
    test(`${rel}`, async () => {
      const v = JSON.parse(readFileSync(file, "utf8"));
      const ok = await verifyConsistency({
        first: v.size1,
        second: v.size2,
        firstRoot: b64Decode(v.root1),
        secondRoot: b64Decode(v.root2),
        proof: decodeAll(v.proof),
      });
      assert.equal(ok, !v.wantErr, `${v.desc}: wantErr=${v.wantErr}`);
    });
  }
});

// ---------------------------------------------------------------------------------------
// Signed tree heads and history entries
// ---------------------------------------------------------------------------------------

async function ledgerKey() {
  const pair = await subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
  const { kty, crv, x } = await subtle.exportKey("jwk", pair.publicKey);
  const publicJwk = { kty, crv, x };
  const kid = await thumbprint(publicJwk);
  return { privateKey: pair.privateKey, publicJwk, kid };
}

// Signs a tree head the way crates/ledger/src/sth.rs does.
async function signTreeHead(key, treeSize, root, timestamp = 1_700_000_000) {
  const root_hash = b64(root);
  const signed = utf8(jcs({ root_hash, timestamp, tree_size: treeSize }));
  const signature = new Uint8Array(await subtle.sign({ name: "Ed25519" }, key.privateKey, signed));
  return { tree_size: treeSize, root_hash, timestamp, key_id: key.kid, signature: b64(signature) };
}

// A JWKS like the platform's: a signing key (ES256) and the ledger key, with metadata.
async function jwksFor(key) {
  const es = await subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"]);
  const { kty, crv, x, y } = await subtle.exportKey("jwk", es.publicKey);
  const esJwk = { kty, crv, x, y };
  return {
    keys: [
      { ...esJwk, kid: await thumbprint(esJwk), alg: "ES256", use: "sig" },
      { ...key.publicJwk, kid: key.kid, alg: "EdDSA", use: "sig" },
    ],
  };
}

describe("signed tree heads", () => {
  test("a head signed with the ledger key verifies; changed ones do not", async () => {
    const key = await ledgerKey();
    const jwks = await jwksFor(key);
    const sth = await signTreeHead(key, 7, mth(leaves.slice(0, 7)));
    assert.deepEqual(await verifyTreeHead(sth, jwks), { ok: true });

    const otherRoot = b64(mth(leaves.slice(0, 6)));
    const sig = b64Decode(sth.signature);
    sig[0] ^= 1;
    for (const change of [{ tree_size: 8 }, { timestamp: sth.timestamp + 1 }, { root_hash: otherRoot },
      { signature: b64(sig) }]) {
      const result = await verifyTreeHead({ ...sth, ...change }, jwks);
      assert.deepEqual(result, { ok: false, reason: "bad signature" }, JSON.stringify(change));
    }
  });

  test("the key is found by kid, or by thumbprint when no key names it", async () => {
    const key = await ledgerKey();
    const sth = await signTreeHead(key, 1, leaves[0]);
    assert.deepEqual(await verifyTreeHead(sth, { keys: [key.publicJwk] }), { ok: true });
    const named = { keys: [{ ...key.publicJwk, kid: "ledger-1" }] };
    assert.deepEqual(await verifyTreeHead({ ...sth, key_id: "ledger-1" }, named), { ok: true });
  });

  test("wrong key, unknown key, non-Ed25519 key, malformed heads", async () => {
    const key = await ledgerKey();
    const other = await ledgerKey();
    const sth = await signTreeHead(key, 3, mth(leaves.slice(0, 3)));

    // another Ed25519 key published under the same kid
    const impostor = { keys: [{ ...other.publicJwk, kid: key.kid }] };
    assert.deepEqual(await verifyTreeHead(sth, impostor), { ok: false, reason: "bad signature" });

    const unknown = await verifyTreeHead(sth, await jwksFor(other));
    assert.equal(unknown.ok, false);
    assert.match(unknown.reason, /no key/);

    const ec = (await jwksFor(other)).keys[0];
    const notEd = await verifyTreeHead({ ...sth, key_id: ec.kid }, { keys: [ec] });
    assert.deepEqual(notEd, { ok: false, reason: "the ledger key is not Ed25519" });

    const jwks = await jwksFor(key);
    for (const bad of [
      null, {}, { ...sth, root_hash: "AAAA" }, { ...sth, root_hash: "not base64!" }, { ...sth, signature: "AAAA" },
      { ...sth, tree_size: -1 }, { ...sth, tree_size: "3" }, { ...sth, timestamp: 1.5 }, { ...sth, key_id: 5 },
    ]) {
      const result = await verifyTreeHead(bad, jwks);
      assert.equal(result.ok, false, JSON.stringify(bad));
      assert.equal(typeof result.reason, "string");
    }
    assert.equal((await verifyTreeHead(sth, null)).ok, false);
    assert.equal((await verifyTreeHead(sth, { keys: "x" })).ok, false);
  });

  test("without Ed25519 in WebCrypto the answer is {ok: null, reason: 'unsupported'}", async () => {
    const key = await ledgerKey();
    const sth = await signTreeHead(key, 1, leaves[0]);
    const jwks = await jwksFor(key);
    const original = subtle.importKey;
    subtle.importKey = function (format, keyData, algorithm, ...rest) {
      const name = typeof algorithm === "string" ? algorithm : algorithm?.name;
      if (name === "Ed25519") return Promise.reject(new DOMException("no Ed25519", "NotSupportedError"));
      return original.call(this, format, keyData, algorithm, ...rest);
    };
    try {
      // A fresh module instance, so that the cached support probe starts over.
      const fresh = await import("../../crates/web/static/js/ledger.js?without-ed25519");
      assert.deepEqual(await fresh.verifyTreeHead(sth, jwks), { ok: null, reason: "unsupported" });
    } finally {
      subtle.importKey = original;
    }
  });
});

// What the server returns for GET /v1/ledger/proof/inclusion (crates/api/src/ledger.rs).
const serverProof = (index, size) => ({
  leaf_index: index,
  tree_size: size,
  leaf_hash: b64(leaves[index]),
  audit_path: auditPath(index, leaves.slice(0, size)).map(b64),
});

// What GET /v1/me/history returns per entry (the fields used here).
const historyItem = (index) => ({
  leaf_index: index,
  leaf_input: b64(inputs[index]),
  leaf_hash: b64(leaves[index]),
  outcome: "recorded",
});

describe("history entries", () => {
  test("verifyHistoryItem: good entries verify, altered ones do not", async () => {
    const key = await ledgerKey();
    const size = 13;
    const sth = await signTreeHead(key, size, mth(leaves.slice(0, size)));
    for (let i = 0; i < size; i++) {
      assert.equal(await verifyHistoryItem(historyItem(i), sth, serverProof(i, size)), true, `entry ${i}`);
    }

    const item = historyItem(4);
    const proof = serverProof(4, size);
    const alteredInput = b64(utf8(JSON.stringify({ event: "test", i: 400 })));
    assert.equal(await verifyHistoryItem({ ...item, leaf_input: alteredInput }, sth, proof), false);
    assert.equal(await verifyHistoryItem({ ...item, leaf_input: alteredInput, leaf_hash: undefined }, sth, proof), false);
    assert.equal(await verifyHistoryItem({ ...item, leaf_index: 5 }, sth, proof), false);
    assert.equal(await verifyHistoryItem(item, sth, serverProof(4, size - 1)), false);
    assert.equal(await verifyHistoryItem(item, sth, { ...proof, leaf_hash: b64(leaves[5]) }), false);
    assert.equal(await verifyHistoryItem(item, sth, { ...proof, audit_path: proof.audit_path.slice(1) }), false);
    assert.equal(await verifyHistoryItem(item, { ...sth, root_hash: b64(leaves[0]) }, proof), false);
    assert.equal(await verifyHistoryItem(item, sth, { ...proof, audit_path: ["%%%"] }), false);
    assert.equal(await verifyHistoryItem(item, sth, null), false);
    assert.equal(await verifyHistoryItem({}, sth, proof), false);
  });

  test("an expired entry (no leaf_input) is checked through its leaf_hash", async () => {
    const key = await ledgerKey();
    const sth = await signTreeHead(key, 9, mth(leaves.slice(0, 9)));
    const expired = { ...historyItem(2), leaf_input: null, outcome: "expired" };
    assert.equal(await verifyHistoryItem(expired, sth, serverProof(2, 9)), true);
    assert.equal(await verifyHistoryItem({ ...expired, leaf_hash: b64(leaves[3]) }, sth, serverProof(2, 9)), false);
    assert.equal(await verifyHistoryItem({ ...expired, leaf_hash: null }, sth, serverProof(2, 9)), false);
  });

  // A fake platform: JWKS, STH and inclusion proofs over the reference tree.
  async function fakePlatform(size, { breakSignature = false, failProofFor = -1 } = {}) {
    const key = await ledgerKey();
    const jwks = await jwksFor(key);
    const sth = await signTreeHead(key, size, mth(leaves.slice(0, size)));
    if (breakSignature) sth.timestamp += 1;
    const requested = [];
    const json = (status, body) => ({ ok: status === 200, status, json: async () => body });
    const fetchImpl = async (url) => {
      const u = new URL(url);
      requested.push(u.pathname + u.search);
      if (u.origin !== "https://city.example") return json(404, {});
      if (u.pathname === "/.well-known/jwks.json") return json(200, jwks);
      if (u.pathname === "/v1/ledger/sth") return json(200, sth);
      if (u.pathname === "/v1/ledger/proof/inclusion") {
        const index = Number(u.searchParams.get("leaf_index"));
        const treeSize = Number(u.searchParams.get("tree_size"));
        if (index === failProofFor) return json(500, { error: "boom" });
        if (index >= treeSize || treeSize > size) return json(400, { error: "invalid_range" });
        return json(200, serverProof(index, treeSize));
      }
      return json(404, {});
    };
    return { sth, fetchImpl, requested };
  }

  test("fetchAndVerifyHistory: verifies the head and every entry in the tree", async () => {
    const { sth, fetchImpl, requested } = await fakePlatform(11);
    const items = [historyItem(10), historyItem(7), { ...historyItem(3), leaf_input: b64(utf8("forged")) },
      historyItem(0), { leaf_index: 11, leaf_input: null }]; // 11 is newer than the head
    const out = await fetchAndVerifyHistory("https://city.example", items, fetchImpl);
    assert.deepEqual(out.sth, sth);
    assert.equal(out.headOk, true);
    assert.deepEqual([...out.results].sort((a, b) => a[0] - b[0]), [[0, true], [3, false], [7, true], [10, true]]);
    assert.ok(requested.includes("/v1/ledger/proof/inclusion?leaf_index=7&tree_size=11"));
    assert.ok(!requested.some((r) => r.includes("leaf_index=11")));
  });

  test("fetchAndVerifyHistory: a bad head signature fails every entry; a missing proof fails one", async () => {
    const bad = await fakePlatform(6, { breakSignature: true });
    const items = [historyItem(1), historyItem(2)];
    const out = await fetchAndVerifyHistory("https://city.example/", items, bad.fetchImpl);
    assert.equal(out.headOk, false);
    assert.equal(out.headReason, "bad signature");
    assert.deepEqual([...out.results.values()], [false, false]);

    const flaky = await fakePlatform(6, { failProofFor: 2 });
    const out2 = await fetchAndVerifyHistory("https://city.example", items, flaky.fetchImpl);
    assert.equal(out2.headOk, true);
    assert.equal(out2.results.get(1), true);
    assert.equal(out2.results.get(2), false);
  });
});

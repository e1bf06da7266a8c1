// tsunagu — verifying the platform's RFC 9162 transparency log in the browser.
//
// Every event about a resident is a leaf in a Merkle tree whose head the platform signs
// with Ed25519. With this module the resident's own browser checks, without trusting the
// server's word, that
//   1. the signed tree head (STH) is signed by the ledger key published in the JWKS, and
//   2. each history entry is included in that tree (an RFC 9162 §2.1.3 inclusion proof).
// `verifyConsistency` (RFC 9162 §2.1.4) lets an auditor check that a later tree extends an
// earlier one.
//
// All verification functions return booleans (or a result object) and never throw on
// malformed input: a bad proof is simply not a valid proof.

import {
  b64Decode, bytesEqual, concatBytes, jcs, publicMembers, sha256, subtle, thumbprint, toBytes, utf8,
} from "./jose.js";

const HASH_LEN = 32;

// ---------------------------------------------------------------------------------------
// RFC 9162 §2.1.1 hashing
// ---------------------------------------------------------------------------------------

/** Leaf hash: SHA-256(0x00 || leafInput). */
export async function leafHash(leafInputBytes) {
  return sha256(concatBytes(Uint8Array.of(0x00), toBytes(leafInputBytes)));
}

/** Interior node hash: SHA-256(0x01 || left || right). */
export async function nodeHash(left, right) {
  return sha256(concatBytes(Uint8Array.of(0x01), toBytes(left), toBytes(right)));
}

// Tree sizes and indices are plain numbers; sizes beyond 2^53 cannot be represented exactly
// and are refused. (Arithmetic below uses division, not bitwise operators, which would
// truncate to 32 bits.)
const isIndex = (n) => Number.isSafeInteger(n) && n >= 0;
const isHash = (h) => h instanceof Uint8Array && h.length === HASH_LEN;
const isBytes = (h) => h instanceof Uint8Array;
const lsb = (n) => n % 2 === 1;
const half = (n) => Math.floor(n / 2);
const isPowerOfTwo = (n) => {
  while (n > 1 && n % 2 === 0) n /= 2;
  return n === 1;
};

// ---------------------------------------------------------------------------------------
// Inclusion proofs, RFC 9162 §2.1.3.2
// ---------------------------------------------------------------------------------------

/**
 * verifyInclusion({leafIndex, treeSize, leafHash, auditPath, rootHash}) → Promise<boolean>
 *
 * Verifies that `leafHash` is the leaf at `leafIndex` in the tree of `treeSize` leaves
 * whose root is `rootHash`, given the `auditPath` (array of 32-byte hashes). All hashes are
 * Uint8Arrays. Returns true or false; malformed input gives false.
 */
export async function verifyInclusion(proof) {
  try {
    const { leafIndex, treeSize, leafHash, auditPath, rootHash } = proof;
    const path = auditPath ?? [];
    if (!isIndex(leafIndex) || !isIndex(treeSize) || leafIndex >= treeSize) return false;
    if (!isHash(leafHash) || !isBytes(rootHash) || !Array.isArray(path) || !path.every(isHash)) {
      return false;
    }
    let fn = leafIndex;
    let sn = treeSize - 1;
    let r = leafHash;
    for (const p of path) {
      if (sn === 0) return false; // the path is longer than the tree is deep
      if (lsb(fn) || fn === sn) {
        r = await nodeHash(p, r);
        // Skip the levels where this node has no right sibling (the right edge of the tree).
        while (!lsb(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      } else {
        r = await nodeHash(r, p);
      }
      fn = half(fn);
      sn = half(sn);
    }
    return sn === 0 && bytesEqual(r, rootHash);
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------
// Consistency proofs, RFC 9162 §2.1.4.2
// ---------------------------------------------------------------------------------------

/**
 * verifyConsistency({first, second, firstRoot, secondRoot, proof}) → Promise<boolean>
 *
 * Verifies that the tree of `second` leaves with root `secondRoot` extends the tree of
 * `first` leaves with root `firstRoot`, given the consistency `proof` (array of 32-byte
 * hashes). Equal sizes need an empty proof and equal roots; a proof from the empty tree
 * (first = 0) proves nothing and is refused. Returns true or false; never throws.
 */
export async function verifyConsistency(args) {
  try {
    const { first, second, firstRoot, secondRoot, proof } = args;
    const path = proof ?? [];
    if (!isIndex(first) || !isIndex(second) || first === 0 || first > second) return false;
    if (!isBytes(firstRoot) || !isBytes(secondRoot) || !Array.isArray(path)) return false;
    if (first === second) return path.length === 0 && bytesEqual(firstRoot, secondRoot);
    // 1. An empty proof cannot link two different trees.
    if (path.length === 0 || !path.every(isHash)) return false;
    // 2. If `first` is an exact power of two, its root is itself a node of the new tree.
    const nodes = isPowerOfTwo(first) ? [firstRoot, ...path] : path;
    // 3.–4.
    let fn = first - 1;
    let sn = second - 1;
    while (lsb(fn)) {
      fn = half(fn);
      sn = half(sn);
    }
    // 5.
    let fr = nodes[0];
    let sr = nodes[0];
    // 6.
    for (const c of nodes.slice(1)) {
      if (sn === 0) return false;
      if (lsb(fn) || fn === sn) {
        fr = await nodeHash(c, fr);
        sr = await nodeHash(c, sr);
        while (!lsb(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      } else {
        sr = await nodeHash(sr, c);
      }
      fn = half(fn);
      sn = half(sn);
    }
    // 7.
    return sn === 0 && bytesEqual(fr, firstRoot) && bytesEqual(sr, secondRoot);
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------
// Signed tree heads
// ---------------------------------------------------------------------------------------

const ED25519 = { name: "Ed25519" };

// RFC 8037 Appendix A.2 public key: a known-good Ed25519 JWK, used only to detect whether
// this browser's WebCrypto implements Ed25519 at all.
const PROBE_JWK = { kty: "OKP", crv: "Ed25519", x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" };
let ed25519Support;

/** Whether WebCrypto here implements Ed25519 (cached). */
export function ed25519Supported() {
  ed25519Support ??= subtle()
    .importKey("jwk", PROBE_JWK, ED25519, false, ["verify"])
    .then(() => true, () => false);
  return ed25519Support;
}

/**
 * The bytes the ledger key signs for a tree head: UTF-8 of
 * JCS({root_hash, timestamp, tree_size}) with root_hash as the same base64 string.
 */
export function treeHeadSigningInput(sth) {
  return utf8(jcs({ root_hash: sth.root_hash, timestamp: sth.timestamp, tree_size: sth.tree_size }));
}

/**
 * Checks a signed tree head `{tree_size, root_hash, timestamp, key_id, signature}` against
 * the platform's JWKS (`{keys: [...]}`): the key whose `kid` equals `key_id` (or, when no key
 * names it, whose RFC 7638 thumbprint does) must be an Ed25519 key and the signature must
 * verify. Returns `{ok: true}`, `{ok: false, reason}`, or `{ok: null, reason: "unsupported"}`
 * when this browser's WebCrypto has no Ed25519.
 */
export async function verifyTreeHead(sth, jwks) {
  try {
    if (!sth || typeof sth !== "object") return { ok: false, reason: "no tree head" };
    const { tree_size, root_hash, timestamp, key_id, signature } = sth;
    if (!isIndex(tree_size) || !Number.isSafeInteger(timestamp) || typeof key_id !== "string") {
      return { ok: false, reason: "malformed tree head" };
    }
    let root;
    let sig;
    try {
      root = b64Decode(root_hash);
      sig = b64Decode(signature);
    } catch {
      return { ok: false, reason: "malformed tree head" };
    }
    if (root.length !== HASH_LEN) return { ok: false, reason: "root_hash is not 32 bytes" };
    if (sig.length !== 64) return { ok: false, reason: "signature is not 64 bytes" };

    const keys = Array.isArray(jwks?.keys) ? jwks.keys : [];
    let jwk = keys.find((k) => k?.kid === key_id);
    if (!jwk) {
      for (const k of keys) {
        try {
          if ((await thumbprint(k)) === key_id) { jwk = k; break; }
        } catch { /* keys of other types are skipped */ }
      }
    }
    if (!jwk) return { ok: false, reason: `no key ${key_id} in the JWKS` };
    if (jwk.kty !== "OKP" || jwk.crv !== "Ed25519") return { ok: false, reason: "the ledger key is not Ed25519" };

    if (!(await ed25519Supported())) return { ok: null, reason: "unsupported" };
    let key;
    try {
      key = await subtle().importKey("jwk", publicMembers(jwk), ED25519, false, ["verify"]);
    } catch {
      return { ok: false, reason: "the ledger key is malformed" };
    }
    const good = await subtle().verify(ED25519, key, sig, treeHeadSigningInput(sth));
    return good ? { ok: true } : { ok: false, reason: "bad signature" };
  } catch (e) {
    return { ok: false, reason: `verification error: ${e?.message ?? e}` };
  }
}

// ---------------------------------------------------------------------------------------
// History entries
// ---------------------------------------------------------------------------------------

/**
 * Verifies one history entry against a tree head with the inclusion `proof` served at
 * `GET /v1/ledger/proof/inclusion?leaf_index=N&tree_size=M`
 * (`{leaf_index, tree_size, leaf_hash, audit_path}`, hashes in base64).
 *
 * The hash of the entry's own `leaf_input` must equal the proof's `leaf_hash` and the audit
 * path must lead to `sth.root_hash` at `sth.tree_size`. An entry whose payload has expired
 * (`leaf_input` null) is checked through its `leaf_hash`: that proves the entry is in the
 * log, not what it said. Returns a boolean; never throws.
 */
export async function verifyHistoryItem(item, sth, proof) {
  try {
    if (item.leaf_index !== proof.leaf_index || proof.tree_size !== sth.tree_size) return false;
    const claimed = b64Decode(proof.leaf_hash);
    let hash;
    if (typeof item.leaf_input === "string") {
      hash = await leafHash(b64Decode(item.leaf_input));
    } else if (item.leaf_input == null && typeof item.leaf_hash === "string") {
      hash = b64Decode(item.leaf_hash);
    } else {
      return false;
    }
    if (typeof item.leaf_hash === "string" && !bytesEqual(b64Decode(item.leaf_hash), hash)) return false;
    if (!bytesEqual(hash, claimed)) return false;
    return await verifyInclusion({
      leafIndex: proof.leaf_index,
      treeSize: sth.tree_size,
      leafHash: hash,
      auditPath: (proof.audit_path ?? []).map(b64Decode),
      rootHash: b64Decode(sth.root_hash),
    });
  } catch {
    return false;
  }
}

/**
 * Fetches the JWKS and the current signed tree head from `baseUrl` (empty: this page's
 * origin), checks the head's signature, then fetches and verifies an inclusion proof for
 * each history item with leaf_index < tree_size.
 *
 * Returns `{sth, headOk, headReason, results}`: `headOk` is true, false, or null (Ed25519
 * unsupported in this browser — proofs are still checked against the unsigned head);
 * `results` maps leaf_index → true|false. When the head's signature is bad the proofs would
 * prove nothing, so every result is false.
 */
export async function fetchAndVerifyHistory(baseUrl, items, fetchImpl = globalThis.fetch) {
  const base = baseUrl || globalThis.location?.origin;
  const getJson = async (path) => {
    const response = await fetchImpl(new URL(path, base).toString(), { headers: { accept: "application/json" } });
    if (!response.ok) throw new Error(`GET ${path}: HTTP ${response.status}`);
    return response.json();
  };

  const [jwks, sth] = await Promise.all([getJson("/.well-known/jwks.json"), getJson("/v1/ledger/sth")]);
  const head = await verifyTreeHead(sth, jwks);
  const results = new Map();
  const todo = (items ?? []).filter((it) => isIndex(it?.leaf_index) && it.leaf_index < sth.tree_size);

  if (head.ok === false) {
    for (const it of todo) results.set(it.leaf_index, false);
    return { sth, headOk: false, headReason: head.reason, results };
  }

  // A few proofs at a time: a history page has up to 200 entries.
  let next = 0;
  const worker = async () => {
    while (next < todo.length) {
      const item = todo[next++];
      let ok = false;
      try {
        const proof = await getJson(
          `/v1/ledger/proof/inclusion?leaf_index=${item.leaf_index}&tree_size=${sth.tree_size}`,
        );
        ok = await verifyHistoryItem(item, sth, proof);
      } catch {
        ok = false; // an unavailable proof is not a proof
      }
      results.set(item.leaf_index, ok);
    }
  };
  await Promise.all(Array.from({ length: Math.min(4, todo.length) }, worker));
  return { sth, headOk: head.ok, headReason: head.reason ?? null, results };
}

// Tests for crates/web/static/js/wallet.js — run with `node --test web-tests/unit/`.

import { test, describe, afterEach } from "node:test";
import assert from "node:assert/strict";
import nodeCrypto from "node:crypto";

import {
  createDeviceKey, saveDevice, loadDevice, forgetDevice,
  enrollmentSignedData, signLoginNonce, signResidentJws,
} from "../../crates/web/static/js/wallet.js";
import { b64urlDecode, jcs, thumbprint, utf8, verifyJwsEs256 } from "../../crates/web/static/js/jose.js";

const subtle = globalThis.crypto.subtle;
const text = (bytes) => new TextDecoder().decode(bytes);
const nodeVerify = (publicJwk, message, signature) =>
  nodeCrypto.verify(
    "sha256", message,
    { key: nodeCrypto.createPublicKey({ key: publicJwk, format: "jwk" }), dsaEncoding: "ieee-p1363" },
    signature,
  );

describe("device key", () => {
  test("createDeviceKey: non-extractable P-256 signing key, bare public JWK, thumbprint", async () => {
    const record = await createDeviceKey();
    assert.equal(record.privateKey.type, "private");
    assert.equal(record.privateKey.extractable, false);
    assert.deepEqual(record.privateKey.usages, ["sign"]);
    assert.deepEqual(record.privateKey.algorithm, { name: "ECDSA", namedCurve: "P-256" });
    await assert.rejects(subtle.exportKey("jwk", record.privateKey));
    await assert.rejects(subtle.exportKey("pkcs8", record.privateKey));

    assert.deepEqual(Object.keys(record.publicJwk).sort(), ["crv", "kty", "x", "y"]);
    assert.equal(record.publicJwk.kty, "EC");
    assert.equal(record.publicJwk.crv, "P-256");
    assert.equal(record.thumbprint, await thumbprint(record.publicJwk));
    assert.equal(record.credential, null);
    assert.equal(record.deviceId, null);
    assert.equal(record.accountId, null);
    assert.equal(record.level, null);
    assert.ok(!Number.isNaN(Date.parse(record.createdAt)));
  });

  test("two devices get different keys", async () => {
    const [a, b] = await Promise.all([createDeviceKey(), createDeviceKey()]);
    assert.notEqual(a.thumbprint, b.thumbprint);
  });
});

describe("signatures", () => {
  test("enrollmentSignedData is the UTF-8 of JCS({device_jwk_thumbprint, nonce})", () => {
    const bytes = enrollmentSignedData("tp-1", "n-ö");
    assert.ok(bytes instanceof Uint8Array);
    // Same bytes as the Rust CLI tests build by hand (crates/cli/tests/common/mod.rs).
    assert.equal(text(bytes), '{"device_jwk_thumbprint":"tp-1","nonce":"n-ö"}');
    assert.deepEqual(bytes, utf8(jcs({ nonce: "n-ö", device_jwk_thumbprint: "tp-1" })));
    assert.throws(() => enrollmentSignedData("tp", 1), TypeError);
  });

  test("signLoginNonce: ES256 over the nonce's UTF-8 bytes, verified by node:crypto", async () => {
    const record = await createDeviceKey();
    const nonce = "Qm9uam91ci1ub25jZQ";
    const sig = b64urlDecode(await signLoginNonce(record, nonce));
    assert.equal(sig.length, 64);
    assert.equal(nodeVerify(record.publicJwk, utf8(nonce), sig), true);
    assert.equal(nodeVerify(record.publicJwk, utf8(nonce + "x"), sig), false);
  });

  test("signResidentJws: header {alg, kid: thumbprint}, payload JCS, verifies", async () => {
    const record = await createDeviceKey();
    const payload = { service_id: "svc-1", items: ["allergy"], purpose: "給食", granted: true };
    const token = await signResidentJws(record, payload);
    const [h, p, s] = token.split(".");
    assert.equal(text(b64urlDecode(h)), `{"alg":"ES256","kid":"${record.thumbprint}"}`);
    assert.equal(text(b64urlDecode(p)), jcs(payload));
    assert.equal(await verifyJwsEs256(token, record.publicJwk), true);
    assert.equal(nodeVerify(record.publicJwk, utf8(`${h}.${p}`), b64urlDecode(s)), true);
  });
});

// ---------------------------------------------------------------------------------------
// Storage. Node has no IndexedDB: first check the clear error, then run the wallet against a
// tiny in-memory fake that implements just the IDB calls wallet.js makes, asynchronously and
// with structured cloning (CryptoKeys are cloneable, as in browsers).
// ---------------------------------------------------------------------------------------

function fakeIndexedDB() {
  const databases = new Map(); // name -> {version, stores: Map<name, Map>}
  const later = (fn) => setTimeout(fn, 0);
  const request = () => ({ result: undefined, error: null, onsuccess: null, onerror: null });

  const connection = (db) => ({
    objectStoreNames: { contains: (n) => db.stores.has(n) },
    createObjectStore(n) { db.stores.set(n, new Map()); },
    close() {},
    transaction(storeName, mode) {
      const tx = { oncomplete: null, onerror: null, onabort: null, error: null };
      const data = db.stores.get(storeName);
      if (!data) throw new DOMException("no such store", "NotFoundError");
      const op = (fn) => {
        const req = request();
        later(() => {
          req.result = fn();
          req.onsuccess?.();
          later(() => tx.oncomplete?.());
        });
        return req;
      };
      const writable = () => {
        if (mode !== "readwrite") throw new DOMException("read-only transaction", "ReadOnlyError");
      };
      tx.objectStore = () => ({
        put(value, key) { writable(); const copy = structuredClone(value); return op(() => (data.set(key, copy), key)); },
        get(key) { return op(() => (data.has(key) ? structuredClone(data.get(key)) : undefined)); },
        delete(key) { writable(); return op(() => (data.delete(key), undefined)); },
      });
      return tx;
    },
  });

  return {
    databases,
    open(name, version) {
      const req = request();
      later(() => {
        let db = databases.get(name);
        const upgrade = !db || db.version < version;
        if (!db) databases.set(name, (db = { version, stores: new Map() }));
        db.version = version;
        req.result = connection(db);
        if (upgrade) req.onupgradeneeded?.();
        req.onsuccess?.();
      });
      return req;
    },
  };
}

describe("storage", () => {
  afterEach(() => { delete globalThis.indexedDB; });

  test("without IndexedDB, save/load/forget fail with a clear error", async () => {
    assert.equal(globalThis.indexedDB, undefined);
    const record = await createDeviceKey();
    await assert.rejects(saveDevice(record), /IndexedDB is not available/);
    await assert.rejects(loadDevice(), /IndexedDB is not available/);
    await assert.rejects(forgetDevice(), /IndexedDB is not available/);
  });

  test("save, load (the key still signs), update, forget", async () => {
    const fake = fakeIndexedDB();
    globalThis.indexedDB = fake;
    assert.equal(await loadDevice(), null);

    const record = await createDeviceKey();
    await saveDevice(record);
    assert.ok(fake.databases.get("tsunagu-wallet").stores.get("device").has("current"));

    const loaded = await loadDevice();
    assert.deepEqual(loaded.publicJwk, record.publicJwk);
    assert.equal(loaded.thumbprint, record.thumbprint);
    assert.equal(loaded.privateKey.extractable, false);
    const token = await signResidentJws(loaded, { hello: "world" });
    assert.equal(await verifyJwsEs256(token, record.publicJwk), true);

    await saveDevice({ ...loaded, credential: "cred-1", deviceId: "dev-1", accountId: "acc-1", level: "verified" });
    const enrolled = await loadDevice();
    assert.equal(enrolled.credential, "cred-1");
    assert.equal(enrolled.level, "verified");

    await forgetDevice();
    assert.equal(await loadDevice(), null);
  });

  test("refuses to store an extractable key or an incomplete record", async () => {
    globalThis.indexedDB = fakeIndexedDB();
    const pair = await subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"]);
    const record = await createDeviceKey();
    await assert.rejects(saveDevice({ ...record, privateKey: pair.privateKey }), TypeError);
    await assert.rejects(saveDevice({ ...record, privateKey: pair.publicKey }), TypeError);
    await assert.rejects(saveDevice({ ...record, thumbprint: undefined }), TypeError);
    await assert.rejects(saveDevice(null), TypeError);
  });
});

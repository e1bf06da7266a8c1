// Tests for crates/web/static/js/jose.js — run with `node --test web-tests/unit/`.

import { test, describe } from "node:test";
import assert from "node:assert/strict";
import nodeCrypto from "node:crypto";

import {
  b64, b64Decode, b64url, b64urlDecode, utf8, jcs, thumbprint,
  signJws, signBytesB64url, verifyJwsEs256, importPkcs8Pem, parseJws, lowS,
} from "../../crates/web/static/js/jose.js";

const subtle = globalThis.crypto.subtle;
const text = (bytes) => new TextDecoder().decode(bytes);

describe("base64 and base64url", () => {
  test("round trips every length 0..64 and matches Node's Buffer", () => {
    for (let n = 0; n <= 64; n++) {
      const bytes = nodeCrypto.randomBytes(n);
      assert.equal(b64(bytes), bytes.toString("base64"));
      assert.equal(b64url(bytes), bytes.toString("base64url"));
      assert.deepEqual(b64Decode(b64(bytes)), new Uint8Array(bytes));
      assert.deepEqual(b64urlDecode(b64url(bytes)), new Uint8Array(bytes));
    }
  });

  test("RFC 4648 §10 vectors", () => {
    const cases = [["", ""], ["f", "Zg=="], ["fo", "Zm8="], ["foo", "Zm9v"], ["foob", "Zm9vYg=="],
      ["fooba", "Zm9vYmE="], ["foobar", "Zm9vYmFy"]];
    for (const [plain, enc] of cases) {
      assert.equal(b64(utf8(plain)), enc);
      assert.equal(b64url(utf8(plain)), enc.replace(/=+$/, ""));
      assert.equal(text(b64Decode(enc)), plain);
    }
  });

  test("the url alphabet uses - and _", () => {
    const bytes = Uint8Array.of(0xfb, 0xff, 0xbf);
    assert.equal(b64(bytes), "+/+/");
    assert.equal(b64url(bytes), "-_-_");
  });

  test("malformed input is refused", () => {
    // bad padding, bad length, bad character, non-zero trailing bits, whitespace
    for (const bad of ["Zg=", "Z", "Zm9v!", "Zh==", "Zm 9v", "Zg===", "=Zg="]) {
      assert.throws(() => b64Decode(bad), SyntaxError, bad);
    }
    assert.deepEqual(b64Decode("Zm9vYg"), utf8("foob")); // unpadded standard base64 is accepted
    assert.throws(() => b64urlDecode("Zg=="), SyntaxError);
    assert.throws(() => b64urlDecode("+/+/"), SyntaxError);
    assert.throws(() => b64urlDecode("Zh"), SyntaxError); // non-zero trailing bits
  });

  test("utf8 encodes non-ASCII", () => {
    assert.deepEqual(utf8("€"), Uint8Array.of(0xe2, 0x82, 0xac));
    assert.deepEqual(utf8("😀"), Uint8Array.of(0xf0, 0x9f, 0x98, 0x80));
  });
});

describe("JCS (RFC 8785)", () => {
  test("§3.2.2: whitespace, numbers, strings and literals", () => {
    const input = JSON.parse(`{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\\u20ac$\\u000F\\u000aA'\\u0042\\u0022\\u005c\\\\\\"\\/",
  "literals": [null, true, false]
}`);
    assert.equal(
      jcs(input),
      '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],' +
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}',
    );
  });

  test("§3.2.3: members sorted by UTF-16 code units", () => {
    const input = JSON.parse(`{
  "\\u20ac": "Euro Sign",
  "\\r": "Carriage Return",
  "\\ufb33": "Hebrew Letter Dalet With Dagesh",
  "1": "One",
  "\\ud83d\\ude00": "Emoji: Grinning Face",
  "\\u0080": "Control",
  "\\u00f6": "Latin Small Letter O With Diaeresis"
}`);
    assert.equal(
      jcs(input),
      '{"\\r":"Carriage Return","1":"One","\u0080":"Control",' +
        '"\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign",' +
        '"\ud83d\ude00":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
    );
  });

  test("sorting is by UTF-16 units, not code points (U+1F600 sorts before U+FB33)", () => {
    assert.equal(jcs({ "\ufb33": 1, "\u{1f600}": 2 }), '{"\u{1f600}":2,"\ufb33":1}');
  });

  test("Appendix B: IEEE 754 doubles", () => {
    const cases = [
      ["0000000000000000", "0"], ["8000000000000000", "0"],
      ["0000000000000001", "5e-324"], ["8000000000000001", "-5e-324"],
      ["7fefffffffffffff", "1.7976931348623157e+308"], ["ffefffffffffffff", "-1.7976931348623157e+308"],
      ["4340000000000000", "9007199254740992"], ["c340000000000000", "-9007199254740992"],
      ["4430000000000000", "295147905179352830000"], ["44b52d02c7e14af5", "9.999999999999997e+22"],
      ["44b52d02c7e14af6", "1e+23"], ["44b52d02c7e14af7", "1.0000000000000001e+23"],
      ["444b1ae4d6e2ef4e", "999999999999999700000"], ["444b1ae4d6e2ef4f", "999999999999999900000"],
      ["444b1ae4d6e2ef50", "1e+21"], ["3eb0c6f7a0b5ed8c", "9.999999999999997e-7"],
      ["3eb0c6f7a0b5ed8d", "0.000001"], ["41b3de4355555553", "333333333.3333332"],
      ["41b3de4355555554", "333333333.33333325"], ["41b3de4355555555", "333333333.3333333"],
      ["41b3de4355555556", "333333333.3333334"], ["41b3de4355555557", "333333333.33333343"],
      ["becbf647612f3696", "-0.0000033333333333333333"], ["43143ff3c1cb0959", "1424953923781206.2"],
    ];
    const view = new DataView(new ArrayBuffer(8));
    for (const [bits, expected] of cases) {
      view.setBigUint64(0, BigInt("0x" + bits));
      assert.equal(jcs(view.getFloat64(0)), expected, bits);
    }
  });

  test("more numbers: 1e21, 1e-7, -0, 0.1+0.2, integers", () => {
    assert.equal(jcs(1e21), "1e+21");
    assert.equal(jcs(1e20), "100000000000000000000");
    assert.equal(jcs(1e-7), "1e-7");
    assert.equal(jcs(1e-6), "0.000001");
    assert.equal(jcs(-0), "0");
    assert.equal(jcs(0.1 + 0.2), "0.30000000000000004");
    assert.equal(jcs([1, -1, 10, 1.5, -2.25]), "[1,-1,10,1.5,-2.25]");
  });

  test("NaN and infinities are refused (Appendix B)", () => {
    for (const v of [NaN, Infinity, -Infinity]) assert.throws(() => jcs(v), TypeError);
    assert.throws(() => jcs({ a: [NaN] }), TypeError);
  });

  test("string escaping: control characters, quotes, backslash, slash, non-ASCII", () => {
    let controls = "";
    for (let c = 0; c < 0x20; c++) controls += String.fromCharCode(c);
    assert.equal(
      jcs(controls),
      '"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r\\u000e\\u000f' +
        '\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\\u0019\\u001a\\u001b\\u001c' +
        '\\u001d\\u001e\\u001f"',
    );
    assert.equal(jcs('"\\/\u007f\u2028é'), '"\\"\\\\/\u007f\u2028é"');
  });

  test("lone surrogates are refused, pairs are kept literally", () => {
    assert.throws(() => jcs("\ud800"), TypeError);
    assert.throws(() => jcs({ "\udc00": 1 }), TypeError);
    assert.equal(jcs("\ud83d\ude00"), '"\u{1f600}"');
  });

  test("nesting, no whitespace, undefined members omitted, non-JSON values refused", () => {
    assert.equal(jcs({ b: [{ z: 1, a: null }], a: { y: true, x: "s" }, u: undefined }),
      '{"a":{"x":"s","y":true},"b":[{"a":null,"z":1}]}');
    assert.equal(jcs([]), "[]");
    assert.equal(jcs({}), "{}");
    assert.equal(jcs(new Date(0)), '"1970-01-01T00:00:00.000Z"');
    assert.throws(() => jcs([undefined]), TypeError);
    assert.throws(() => jcs(1n), TypeError);
    assert.throws(() => jcs(() => 1), TypeError);
    assert.throws(() => jcs(new Map()), TypeError);
    assert.throws(() => jcs(new Uint8Array(2)), TypeError);
  });

  test("agrees with the Rust server's sth signing input", () => {
    // crates/ledger/src/sth.rs: the_signed_bytes_are_the_jcs_of_the_three_fields
    assert.equal(
      jcs({ tree_size: 3, timestamp: 10, root_hash: b64(new Uint8Array(32)) }),
      '{"root_hash":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","timestamp":10,"tree_size":3}',
    );
  });
});

describe("RFC 7638 thumbprints", () => {
  // Independent computation: hash the required members, in lexicographic order and without
  // whitespace, written out by hand.
  const nodeThumbprint = (canonical) => nodeCrypto.createHash("sha256").update(canonical).digest("base64url");

  test("EC P-256: agrees with a hand-written canonical form hashed by node:crypto", async () => {
    for (let i = 0; i < 5; i++) {
      const { publicKey } = nodeCrypto.generateKeyPairSync("ec", { namedCurve: "P-256" });
      const jwk = publicKey.export({ format: "jwk" });
      const canonical = `{"crv":"P-256","kty":"EC","x":"${jwk.x}","y":"${jwk.y}"}`;
      assert.equal(await thumbprint({ ...jwk, kid: "ignored", alg: "ES256", use: "sig" }), nodeThumbprint(canonical));
    }
  });

  test("EC P-256: the RFC 7515 Appendix A.3 key", async () => {
    // The thumbprint was computed once with Python's hashlib:
    //   sha256(b'{"crv":"P-256","kty":"EC","x":"f83O…VEU","y":"x_FE…5a0"}'), base64url.
    const jwk = {
      kty: "EC", crv: "P-256",
      x: "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
      y: "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
    };
    assert.equal(await thumbprint(jwk), "oKIywvGUpTVTyxMQ3bwIIeQUudfr_CkLMjCE19ECD-U");
  });

  test("OKP Ed25519: the RFC 8037 Appendix A.3 thumbprint", async () => {
    const jwk = { kty: "OKP", crv: "Ed25519", x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" };
    assert.equal(await thumbprint(jwk), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
  });

  test("RSA: the RFC 7638 §3.1 example", async () => {
    const jwk = {
      kty: "RSA",
      n: "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
      e: "AQAB", alg: "RS256", kid: "2011-04-29",
    };
    assert.equal(await thumbprint(jwk), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
  });

  test("incomplete or unknown keys are refused", async () => {
    await assert.rejects(thumbprint({ kty: "EC", crv: "P-256", x: "AA" }), TypeError);
    await assert.rejects(thumbprint({ kty: "oct", k: "AA" }), TypeError);
  });
});

describe("ES256 JWS", () => {
  const newKey = async () => {
    const pair = await subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"]);
    const { kty, crv, x, y } = await subtle.exportKey("jwk", pair.publicKey);
    return { privateKey: pair.privateKey, publicJwk: { kty, crv, x, y } };
  };

  test("signs, verifies, and the segments are JCS", async () => {
    const { privateKey, publicJwk } = await newKey();
    const kid = await thumbprint(publicJwk);
    const payload = { z: 1, a: "あ", list: [true, null] };
    const token = await signJws(privateKey, { kid, typ: "consent+jwt" }, payload);
    assert.equal(await verifyJwsEs256(token, publicJwk), true);

    const [h, p, s] = token.split(".");
    assert.equal(text(b64urlDecode(h)), jcs({ alg: "ES256", kid, typ: "consent+jwt" }));
    assert.equal(text(b64urlDecode(p)), jcs(payload));
    assert.equal(b64urlDecode(s).length, 64);
    assert.deepEqual(parseJws(token).header, { alg: "ES256", kid, typ: "consent+jwt" });
  });

  test("a header alg cannot be overridden", async () => {
    const { privateKey, publicJwk } = await newKey();
    const token = await signJws(privateKey, { alg: "none" }, {});
    assert.equal(parseJws(token).header.alg, "ES256");
    assert.equal(await verifyJwsEs256(token, publicJwk), true);
  });

  test("tampering, another key, or garbage fail without throwing", async () => {
    const { privateKey, publicJwk } = await newKey();
    const other = await newKey();
    const token = await signJws(privateKey, { kid: "k" }, { amount: 1 });
    const [h, , s] = token.split(".");
    const forged = `${h}.${b64url(utf8(jcs({ amount: 2 })))}.${s}`;
    assert.equal(await verifyJwsEs256(forged, publicJwk), false);
    assert.equal(await verifyJwsEs256(token, other.publicJwk), false);
    const noneHeader = b64url(utf8('{"alg":"none"}'));
    assert.equal(await verifyJwsEs256(`${noneHeader}.${token.split(".")[1]}.${s}`, publicJwk), false);
    for (const junk of ["", "a.b", "a.b.c", `${token}.x`, `${h}.!!.${s}`, null]) {
      assert.equal(await verifyJwsEs256(junk, publicJwk), false);
    }
  });

  test("verifies the RFC 7515 Appendix A.3 example", async () => {
    const token =
      "eyJhbGciOiJFUzI1NiJ9" +
      ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ" +
      ".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
    const jwk = {
      kty: "EC", crv: "P-256",
      x: "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
      y: "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
    };
    assert.equal(await verifyJwsEs256(token, jwk), true);
  });

  test("signBytesB64url gives r||s that node:crypto verifies as ieee-p1363", async () => {
    const { privateKey, publicJwk } = await newKey();
    const message = utf8("nonce-123");
    const sig = b64urlDecode(await signBytesB64url(privateKey, message));
    assert.equal(sig.length, 64);
    const key = nodeCrypto.createPublicKey({ key: publicJwk, format: "jwk" });
    assert.equal(nodeCrypto.verify("sha256", message, { key, dsaEncoding: "ieee-p1363" }, sig), true);
  });

  test("signatures come out low-S (s ≤ n/2) and still verify; a high-S twin is turned into it", async () => {
    const n = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
    const sOf = (sig) => BigInt(`0x${Buffer.from(sig.subarray(32)).toString("hex")}`);
    const { privateKey, publicJwk } = await newKey();
    const key = nodeCrypto.createPublicKey({ key: publicJwk, format: "jwk" });
    for (let i = 0; i < 40; i++) {
      const message = utf8(`statement ${i}`);
      const sig = b64urlDecode(await signBytesB64url(privateKey, message));
      assert.ok(sOf(sig) <= n >> 1n, `signature ${i} is low-S`);
      assert.equal(nodeCrypto.verify("sha256", message, { key, dsaEncoding: "ieee-p1363" }, sig), true);
      // Its high-S twin (n - s) verifies too, and lowS gives back the low one.
      const twin = new Uint8Array(sig);
      const high = (n - sOf(sig)).toString(16).padStart(64, "0");
      twin.set(Buffer.from(high, "hex"), 32);
      assert.equal(nodeCrypto.verify("sha256", message, { key, dsaEncoding: "ieee-p1363" }, twin), true);
      assert.deepEqual(lowS(twin), sig);
    }
  });
});

describe("importPkcs8Pem", () => {
  test("imports a node:crypto PKCS#8 key, non-extractable, and its JWS verifies in node:crypto", async () => {
    const { privateKey: nodeKey, publicKey } = nodeCrypto.generateKeyPairSync("ec", { namedCurve: "P-256" });
    const pem = nodeKey.export({ type: "pkcs8", format: "pem" });
    assert.match(pem, /^-----BEGIN PRIVATE KEY-----/);

    const imported = await importPkcs8Pem(pem);
    assert.equal(imported.privateKey.extractable, false);
    assert.deepEqual(imported.privateKey.usages, ["sign"]);
    await assert.rejects(subtle.exportKey("jwk", imported.privateKey));
    await assert.rejects(subtle.exportKey("pkcs8", imported.privateKey));

    const expected = publicKey.export({ format: "jwk" });
    assert.deepEqual(imported.publicJwk, { kty: "EC", crv: "P-256", x: expected.x, y: expected.y });
    assert.equal(imported.thumbprint, await thumbprint(expected));

    const token = await signJws(imported.privateKey, { kid: imported.thumbprint }, { vote: "approve" });
    const [h, p, s] = token.split(".");
    const ok = nodeCrypto.verify(
      "sha256", Buffer.from(`${h}.${p}`), { key: publicKey, dsaEncoding: "ieee-p1363" }, b64urlDecode(s),
    );
    assert.equal(ok, true);
    assert.equal(await verifyJwsEs256(token, imported.publicJwk), true);
  });

  test("tolerates CRLF line endings and surrounding text", async () => {
    const { privateKey } = nodeCrypto.generateKeyPairSync("ec", { namedCurve: "P-256" });
    const pem = "key file\r\n" + privateKey.export({ type: "pkcs8", format: "pem" }).replace(/\n/g, "\r\n");
    const imported = await importPkcs8Pem(pem);
    assert.equal(imported.publicJwk.crv, "P-256");
  });

  test("refuses other keys and formats with a clear message", async () => {
    const sec1 = nodeCrypto.generateKeyPairSync("ec", { namedCurve: "P-256" })
      .privateKey.export({ type: "sec1", format: "pem" });
    await assert.rejects(importPkcs8Pem(sec1), /SEC1.*openssl pkcs8/);
    const p384 = nodeCrypto.generateKeyPairSync("ec", { namedCurve: "P-384" })
      .privateKey.export({ type: "pkcs8", format: "pem" });
    await assert.rejects(importPkcs8Pem(p384), /not a P-256/);
    await assert.rejects(importPkcs8Pem("hello"), /BEGIN PRIVATE KEY/);
  });
});

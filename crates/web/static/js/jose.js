// tsunagu — small JOSE toolkit for the browser (and Node ≥ 20).
//
// Everything here uses WebCrypto (`globalThis.crypto.subtle`) only; there are no
// dependencies and no build step. It covers exactly what the tsunagu web app needs:
//
//   * base64 / base64url codecs and UTF-8 encoding,
//   * RFC 8785 JSON Canonicalization Scheme (JCS) — the exact bytes tsunagu signs and hashes,
//   * RFC 7638 JWK thumbprints (the `kid` of every key on the platform),
//   * ES256 compact JWS signing (RFC 7515) and verification,
//   * importing a PKCS#8 PEM P-256 key file as a NON-extractable signing key.

/**
 * WebCrypto's SubtleCrypto, or a clear error where it is missing (browsers only offer it in
 * secure contexts: HTTPS or localhost).
 */
export function subtle() {
  const s = globalThis.crypto?.subtle;
  if (!s) throw new Error("WebCrypto is unavailable: the page must be served over HTTPS (or from localhost)");
  return s;
}

const ES256 = { name: "ECDSA", hash: "SHA-256" };
const P256 = { name: "ECDSA", namedCurve: "P-256" };

// ---------------------------------------------------------------------------------------
// Bytes, base64 and UTF-8
// ---------------------------------------------------------------------------------------

const STD_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** Accepts a Uint8Array, any other ArrayBufferView, or an ArrayBuffer; returns a Uint8Array. */
export function toBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  throw new TypeError("expected bytes (Uint8Array, ArrayBufferView or ArrayBuffer)");
}

function encode(bytes, alphabet, pad) {
  const b = toBytes(bytes);
  let out = "";
  let i = 0;
  for (; i + 2 < b.length; i += 3) {
    const n = (b[i] << 16) | (b[i + 1] << 8) | b[i + 2];
    out += alphabet[n >> 18] + alphabet[(n >> 12) & 63] + alphabet[(n >> 6) & 63] + alphabet[n & 63];
  }
  const rest = b.length - i;
  if (rest === 1) {
    const n = b[i] << 16;
    out += alphabet[n >> 18] + alphabet[(n >> 12) & 63] + (pad ? "==" : "");
  } else if (rest === 2) {
    const n = (b[i] << 16) | (b[i + 1] << 8);
    out += alphabet[n >> 18] + alphabet[(n >> 12) & 63] + alphabet[(n >> 6) & 63] + (pad ? "=" : "");
  }
  return out;
}

// Strict decoder: only characters of `alphabet`, padding (if any) only at the end and only
// as much as needed, and no non-zero leftover bits (so every byte string has exactly one
// accepted encoding). Throws a SyntaxError on anything else.
function decode(str, alphabet, what) {
  if (typeof str !== "string") throw new TypeError(`${what}: expected a string`);
  let s = str;
  if (s.length % 4 === 0 && s.endsWith("=")) s = s.slice(0, s.endsWith("==") ? -2 : -1);
  if (s.length % 4 === 1) throw new SyntaxError(`${what}: bad length`);
  const out = new Uint8Array(Math.floor((s.length * 3) / 4));
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (let i = 0; i < s.length; i++) {
    const v = alphabet.indexOf(s[i]);
    if (v < 0) throw new SyntaxError(`${what}: invalid character at ${i}`);
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
    acc &= (1 << bits) - 1; // keep only the bits not yet emitted
  }
  if (acc !== 0) throw new SyntaxError(`${what}: non-canonical trailing bits`);
  return out;
}

/** base64url without padding (RFC 4648 §5), as used throughout JOSE. */
export function b64url(bytes) {
  return encode(bytes, URL_ALPHABET, false);
}

/** Decodes unpadded base64url into a Uint8Array; throws SyntaxError on malformed input. */
export function b64urlDecode(str) {
  if (typeof str === "string" && str.includes("=")) throw new SyntaxError("base64url: padding is not allowed");
  return decode(str, URL_ALPHABET, "base64url");
}

/** Standard base64 with padding (RFC 4648 §4), as the ledger API uses for hashes. */
export function b64(bytes) {
  return encode(bytes, STD_ALPHABET, true);
}

/** Decodes standard base64 (padding optional) into a Uint8Array; throws SyntaxError on malformed input. */
export function b64Decode(str) {
  return decode(str, STD_ALPHABET, "base64");
}

/** The UTF-8 bytes of a string. */
export function utf8(str) {
  if (typeof str !== "string") throw new TypeError("utf8: expected a string");
  return new TextEncoder().encode(str);
}

/** Constant-time-ish equality of two byte arrays (length leaks, content does not). */
export function bytesEqual(a, b) {
  const x = toBytes(a);
  const y = toBytes(b);
  if (x.length !== y.length) return false;
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= x[i] ^ y[i];
  return diff === 0;
}

/** Concatenates byte arrays. */
export function concatBytes(...parts) {
  const arrays = parts.map(toBytes);
  const out = new Uint8Array(arrays.reduce((n, a) => n + a.length, 0));
  let at = 0;
  for (const a of arrays) {
    out.set(a, at);
    at += a.length;
  }
  return out;
}

/** SHA-256 of bytes, as a Uint8Array. */
export async function sha256(bytes) {
  return new Uint8Array(await subtle().digest("SHA-256", toBytes(bytes)));
}

// ---------------------------------------------------------------------------------------
// RFC 8785 JSON Canonicalization Scheme
// ---------------------------------------------------------------------------------------

// A lone (unpaired) surrogate. With the `u` flag, properly paired surrogates are matched as
// one astral code point, so only lone ones match. I-JSON (RFC 7493), which RFC 8785
// requires, forbids them.
const LONE_SURROGATE = /\p{Surrogate}/u;

function jcsString(s) {
  if (LONE_SURROGATE.test(s)) throw new TypeError("jcs: string contains a lone surrogate");
  // JSON.stringify escapes exactly as RFC 8785 §3.2.2.2 requires: \b \t \n \f \r \" \\,
  // other control characters as lowercase \u00xx, everything else (incl. "/" and non-ASCII)
  // literally.
  return JSON.stringify(s);
}

function isPlainObject(v) {
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/**
 * RFC 8785 canonical JSON text of `value`.
 *
 * - object members sorted by their names' UTF-16 code units (the default sort order of
 *   JavaScript strings), members whose value is `undefined` omitted (as JSON.stringify does);
 * - numbers in ECMAScript Number-to-String form (-0 becomes "0"); NaN/±Infinity are refused;
 * - strings escaped as JSON.stringify does; lone surrogates are refused;
 * - no whitespace.
 * Values with a `toJSON` method (e.g. Date) are serialized through it. BigInt, functions,
 * symbols, `undefined` inside arrays and non-plain objects (Map, typed arrays, …) throw a
 * TypeError instead of being silently changed.
 */
export function jcs(value) {
  if (value !== null && typeof value === "object" && typeof value.toJSON === "function") {
    value = value.toJSON();
  }
  switch (typeof value) {
    case "string":
      return jcsString(value);
    case "boolean":
      return value ? "true" : "false";
    case "number":
      if (!Number.isFinite(value)) throw new TypeError(`jcs: ${value} has no JSON form`);
      return JSON.stringify(value); // Number-to-String; JSON.stringify(-0) === "0"
    case "object": {
      if (value === null) return "null";
      if (Array.isArray(value)) {
        return "[" + value.map((v) => {
          if (v === undefined) throw new TypeError("jcs: undefined in an array");
          return jcs(v);
        }).join(",") + "]";
      }
      if (!isPlainObject(value)) {
        throw new TypeError(`jcs: cannot canonicalize a ${value.constructor?.name ?? "non-plain"} object`);
      }
      const members = [];
      for (const key of Object.keys(value).sort()) {
        if (value[key] === undefined) continue;
        members.push(jcsString(key) + ":" + jcs(value[key]));
      }
      return "{" + members.join(",") + "}";
    }
    default:
      throw new TypeError(`jcs: a ${typeof value} has no JSON form`);
  }
}

// ---------------------------------------------------------------------------------------
// RFC 7638 JWK thumbprints
// ---------------------------------------------------------------------------------------

// The members that define a key, per key type (RFC 7638 §3.2, RFC 8037 §2).
const REQUIRED_MEMBERS = {
  EC: ["crv", "kty", "x", "y"],
  OKP: ["crv", "kty", "x"],
  RSA: ["e", "kty", "n"],
};

/** The public part of a JWK: only the members that define the key (no d, kid, alg, use…). */
export function publicMembers(jwk) {
  const names = REQUIRED_MEMBERS[jwk?.kty];
  if (!names) throw new TypeError(`unsupported JWK key type ${JSON.stringify(jwk?.kty)}`);
  const out = {};
  for (const name of names) {
    if (typeof jwk[name] !== "string" || jwk[name] === "") {
      throw new TypeError(`JWK member "${name}" is missing`);
    }
    out[name] = jwk[name];
  }
  return out;
}

/**
 * RFC 7638 SHA-256 thumbprint (base64url) of an EC, OKP or RSA JWK. The required members
 * in lexicographic order without whitespace are exactly their JCS form.
 */
export async function thumbprint(jwk) {
  return b64url(await sha256(utf8(jcs(publicMembers(jwk)))));
}

// ---------------------------------------------------------------------------------------
// ES256 signatures and compact JWS
// ---------------------------------------------------------------------------------------

/**
 * Raw ES256 signature (r||s, 64 bytes — WebCrypto's IEEE P1363 output, which is also the
 * JWS format) over `bytes`, base64url.
 */
export async function signBytesB64url(privateKey, bytes) {
  return b64url(lowS(new Uint8Array(await subtle().sign(ES256, privateKey, toBytes(bytes)))));
}

/** The order of P-256's base point. */
const P256_N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;

/**
 * An r||s P-256 signature in its low-S form (s ≤ n/2), the one form the platform keeps as
 * evidence: WebCrypto returns either twin, and a statement confirmed with the screen lock must be
 * the very statement the platform stores.
 */
export function lowS(signature) {
  if (signature.length !== 64) throw new TypeError("lowS: expected a 64-byte r||s signature");
  let s = 0n;
  for (const byte of signature.subarray(32)) s = (s << 8n) | BigInt(byte);
  if (s <= P256_N >> 1n) return signature;
  let t = P256_N - s;
  const out = new Uint8Array(signature);
  for (let i = 63; i >= 32; i--) {
    out[i] = Number(t & 0xffn);
    t >>= 8n;
  }
  return out;
}

/**
 * Compact JWS (RFC 7515) with ES256. The protected header is `header` plus `alg: "ES256"`,
 * serialized with JCS; the payload is the UTF-8 of `jcs(payloadObject)`.
 */
export async function signJws(privateKey, header, payloadObject) {
  const protectedHeader = b64url(utf8(jcs({ ...header, alg: "ES256" })));
  const payload = b64url(utf8(jcs(payloadObject)));
  const signingInput = `${protectedHeader}.${payload}`;
  return `${signingInput}.${await signBytesB64url(privateKey, utf8(signingInput))}`;
}

/** Splits a compact JWS without verifying it: `{header, payload (bytes), signingInput, signature}`. */
export function parseJws(compact) {
  if (typeof compact !== "string") throw new TypeError("JWS: expected a string");
  const parts = compact.split(".");
  if (parts.length !== 3) throw new SyntaxError("JWS: a compact JWS has exactly three parts");
  const header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(b64urlDecode(parts[0])));
  if (header === null || typeof header !== "object" || Array.isArray(header)) {
    throw new SyntaxError("JWS: the header is not a JSON object");
  }
  return {
    header,
    payload: b64urlDecode(parts[1]),
    signingInput: `${parts[0]}.${parts[1]}`,
    signature: b64urlDecode(parts[2]),
  };
}

/** Imports the public EC P-256 JWK as an ECDSA verification key. */
export async function importEs256PublicJwk(publicJwk) {
  const jwk = publicMembers(publicJwk);
  if (jwk.kty !== "EC" || jwk.crv !== "P-256") throw new TypeError("not an EC P-256 key");
  return subtle().importKey("jwk", jwk, P256, false, ["verify"]);
}

/**
 * Verifies a compact ES256 JWS against a public P-256 JWK. Returns true or false; malformed
 * input of any kind gives false (never throws).
 */
export async function verifyJwsEs256(compact, publicJwk) {
  try {
    const jws = parseJws(compact);
    if (jws.header.alg !== "ES256" || "crit" in jws.header) return false;
    if (jws.signature.length !== 64) return false;
    const key = await importEs256PublicJwk(publicJwk);
    return await subtle().verify(ES256, key, jws.signature, utf8(jws.signingInput));
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------
// PKCS#8 key files
// ---------------------------------------------------------------------------------------

/**
 * Imports a PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----") P-256 key, as written by
 * `tsunagu admin keygen` / `tsunagu connector keygen`, for signing in the browser.
 *
 * Returns `{privateKey, publicJwk, thumbprint}`: `privateKey` is a NON-extractable ECDSA
 * CryptoKey with usages ["sign"]; `publicJwk` holds only kty, crv, x, y; `thumbprint` is its
 * RFC 7638 thumbprint (the key's `kid`). The key material never leaves the browser.
 */
export async function importPkcs8Pem(pem) {
  if (typeof pem !== "string") throw new TypeError("expected the text of a PEM file");
  if (pem.includes("-----BEGIN EC PRIVATE KEY-----")) {
    throw new Error(
      "this is a SEC1 'EC PRIVATE KEY' file; convert it to PKCS#8 with " +
        "`openssl pkcs8 -topk8 -nocrypt -in key.pem -out key.p8.pem`",
    );
  }
  if (pem.includes("-----BEGIN ENCRYPTED PRIVATE KEY-----")) {
    throw new Error("encrypted PKCS#8 keys are not supported; use an unencrypted key file");
  }
  const m = /-----BEGIN PRIVATE KEY-----([A-Za-z0-9+/=\s]+)-----END PRIVATE KEY-----/.exec(pem);
  if (!m) throw new Error("no '-----BEGIN PRIVATE KEY-----' block found");
  const der = b64Decode(m[1].replace(/\s+/g, ""));

  // Import once as extractable only to read the public coordinates …
  let jwk;
  try {
    const extractable = await subtle().importKey("pkcs8", der, P256, true, ["sign"]);
    jwk = await subtle().exportKey("jwk", extractable);
  } catch (e) {
    throw new Error(`not a P-256 (ES256) PKCS#8 private key: ${e?.message ?? e}`);
  }
  const publicJwk = { kty: "EC", crv: "P-256", x: jwk.x, y: jwk.y };
  delete jwk.d; // drop the private scalar from the exported copy
  // … then import again, non-extractable, for actual use.
  const privateKey = await subtle().importKey("pkcs8", der, P256, false, ["sign"]);
  der.fill(0);
  return { privateKey, publicJwk, thumbprint: await thumbprint(publicJwk) };
}

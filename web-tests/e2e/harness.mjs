// Browser-test harness: a real `tsunagu serve` over HTTPS with a CA made for the run
// (`tsunagu dev tls`), a simulated JPKI CA and a committee member key made here, services
// applied over the API, and Debian's Chromium driven by playwright-core. Node's requests trust
// the run's CA only; Chromium trusts exactly the run's server key
// (`--ignore-certificate-errors-spki-list`), never "any certificate".
//
//   TSUNAGU_BIN   the binary (default: ../../target/debug/tsunagu)
//   CHROMIUM      the browser (default: /usr/bin/chromium)
//   SCREENSHOTS   where screenshots go (default: ../out/screenshots; .ci/run and
//                 `npm run screenshots` point it at docs/screenshots)

import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync, mkdirSync, rmSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createServer } from "node:net";
import https from "node:https";
import crypto from "node:crypto";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
export const repo = resolve(here, "../..");
// Absolute: the platform runs in its own temporary directory.
export const bin = resolve(process.env.TSUNAGU_BIN ?? join(repo, "target/debug/tsunagu"));
export const screenshotDir = resolve(process.env.SCREENSHOTS ?? join(here, "../out/screenshots"));

export const b64url = (buf) => Buffer.from(buf).toString("base64url");

/** JCS (RFC 8785) for the plain JSON values the tests sign. */
export function jcs(v) {
  if (v === null || typeof v !== "object") return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(jcs).join(",")}]`;
  return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${jcs(v[k])}`).join(",")}}`;
}

/** An ES256 key pair with its public JWK, PKCS#8 PEM and JWS signing. */
export function es256Key(kid) {
  const { privateKey, publicKey } = crypto.generateKeyPairSync("ec", { namedCurve: "P-256" });
  const jwk = publicKey.export({ format: "jwk" });
  const pub = { kty: "EC", crv: "P-256", x: jwk.x, y: jwk.y, ...(kid ? { kid, alg: "ES256", use: "sig" } : {}) };
  return {
    kid,
    jwk: pub,
    pem: privateKey.export({ format: "pem", type: "pkcs8" }),
    jws(header, payload) {
      const h = b64url(JSON.stringify({ alg: "ES256", ...header }));
      const p = b64url(typeof payload === "string" ? payload : jcs(payload));
      const sig = crypto.sign("sha256", Buffer.from(`${h}.${p}`), { key: privateKey, dsaEncoding: "ieee-p1363" });
      return `${h}.${p}.${b64url(sig)}`;
    },
  };
}

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A fetch-like request over HTTPS that trusts only `ca` (Node's fetch takes no CA). */
export function fetchWithCa(ca, url, { method = "GET", headers = {}, body } = {}) {
  return new Promise((ok, fail) => {
    const req = https.request(url, { method, headers, ca }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        ok({
          ok: res.statusCode >= 200 && res.statusCode < 300,
          status: res.statusCode,
          headers: res.headers,
          text: async () => text,
          json: async () => JSON.parse(text),
        });
      });
    });
    req.on("error", fail);
    if (body !== undefined) req.write(String(body));
    req.end();
  });
}

/** Base64 of the SHA-256 of a certificate's SubjectPublicKeyInfo: Chromium's SPKI pin. */
function spkiPin(pem) {
  const spki = new crypto.X509Certificate(pem).publicKey.export({ type: "spki", format: "der" });
  return crypto.createHash("sha256").update(spki).digest("base64");
}

/** A running platform. */
export class Platform {
  /** `host`: the name in the platform's public URL and the browser's address bar (WebAuthn
   * needs a domain name such as `localhost`; the default `127.0.0.1` offers none). */
  static async start({ quorum = 1, host = "127.0.0.1" } = {}) {
    const dir = mkdtempSync(join(tmpdir(), "tsunagu-web-"));
    execFileSync(bin, ["dev", "jpki", "init", "--dir", "ca"], { cwd: dir, stdio: "ignore" });
    execFileSync(bin, ["dev", "tls", "--out", "tls", "--host", "127.0.0.1", "--host", "localhost"], {
      cwd: dir,
      stdio: "ignore",
    });
    const tls = {
      ca: readFileSync(join(dir, "tls/ca.pem")),
      cert: readFileSync(join(dir, "tls/server.pem")),
      key: readFileSync(join(dir, "tls/server-key.pem")),
    };
    tls.spki = spkiPin(tls.cert);
    const member = es256Key("m1");
    writeFileSync(join(dir, "m1.pem"), member.pem);
    const port = await freePort();
    const toml = (o) => `{ ${Object.entries(o).map(([k, v]) => `${k} = ${JSON.stringify(v)}`).join(", ")} }`;
    const { kid: _k, alg: _a, use: _u, ...memberJwk } = member.jwk;
    writeFileSync(
      join(dir, "tsunagu.toml"),
      [
        "[server]",
        `bind = "127.0.0.1:${port}"`,
        ...(host === "127.0.0.1" ? [] : [`public_url = "https://${host}:${port}"`]),
        `tls_cert = "tls/server.pem"`,
        `tls_key = "tls/server-key.pem"`,
        "[storage]",
        `data_dir = "./data"`,
        "[identity]",
        `jpki_trust_anchors = ["ca/ca.pem"]`,
        `jpki_crls = ["ca/ca.crl"]`,
        "[ledger]",
        "sth_interval_seconds = 1",
        "[governance]",
        `quorum = ${quorum}`,
        `members = [{ id = "m1", jwk = ${toml(memberJwk)} }]`,
        "[dev]",
        `simulated_jpki = "ca"`,
        "",
      ].join("\n"),
    );
    const child = spawn(bin, ["serve", "--config", "tsunagu.toml"], {
      cwd: dir,
      stdio: ["ignore", "ignore", "pipe"],
      env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "warn" },
    });
    let log = "";
    child.stderr.on("data", (d) => (log += d));
    const url = `https://127.0.0.1:${port}`;
    for (let i = 0; ; i++) {
      try {
        if ((await fetchWithCa(tls.ca, `${url}/healthz`)).ok) break;
      } catch {}
      if (i > 200 || child.exitCode !== null) throw new Error(`tsunagu did not start:\n${log}`);
      await sleep(50);
    }
    const platform = new Platform(dir, url, child, member, () => log, tls);
    // Where the browser goes: the public URL (Node's requests keep to 127.0.0.1).
    platform.origin = `https://${host}:${port}`;
    return platform;
  }

  constructor(dir, url, child, member, log, tls) {
    Object.assign(this, { dir, url, child, member, log, tls });
  }

  /** A request to the platform (or the relying party) trusting the run's CA. */
  fetch(url, init) {
    return fetchWithCa(this.tls.ca, url, init);
  }

  async api(method, path, body, headers = {}) {
    const r = await this.fetch(`${this.url}${path}`, {
      method,
      headers: { "content-type": "application/json", ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    let json = null;
    try {
      json = JSON.parse(text);
    } catch {}
    return { status: r.status, json, text };
  }

  /** Applies for a service; returns {id, key, secret}. */
  async apply(application) {
    const key = es256Key(`k-${crypto.randomBytes(6).toString("hex")}`);
    const r = await this.api("POST", "/v1/services", { jwks: { keys: [key.jwk] }, ...application });
    if (r.status !== 201) throw new Error(`apply: ${r.status} ${r.text}`);
    return { id: r.json.service_id, key, secret: r.json.client_secret, lint: r.json.lint };
  }

  /** The committee member m1 votes over the API. */
  async vote(serviceId, decision, comment = "") {
    const jws = this.member.jws(
      { kid: "m1" },
      {
        service_id: serviceId,
        decision,
        comment,
        issued_at: Math.floor(Date.now() / 1000),
        nonce: b64url(crypto.randomBytes(16)),
      },
    );
    const r = await this.api("POST", `/v1/governance/services/${serviceId}/votes`, { vote_jws: jws });
    if (r.status >= 300) throw new Error(`vote: ${r.status} ${r.text}`);
    return r.json;
  }

  async stop() {
    this.child.kill("SIGTERM");
    await new Promise((r) => (this.child.exitCode !== null ? r() : this.child.once("exit", r)));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A relying party's redirect endpoint over HTTPS (with the platform's certificate, which
 * names 127.0.0.1): records what the browser brought back. */
export async function relyingParty(platform) {
  const port = await freePort();
  const hits = [];
  const server = https.createServer({ cert: platform.tls.cert, key: platform.tls.key }, (req, res) => {
    // Only the callback: the browser also asks for /favicon.ico.
    const hit = new URL(req.url, `https://127.0.0.1:${port}`);
    if (hit.pathname === "/callback") hits.push(hit);
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end("<!doctype html><title>RP</title><h1 id=rp>relying party callback</h1>");
  });
  await new Promise((r) => server.listen(port, "127.0.0.1", r));
  return { redirect: `https://127.0.0.1:${port}/callback`, hits, close: () => new Promise((r) => server.close(r)) };
}

/** Debian's Chromium, headless, trusting exactly the platform's server key for this run. */
export async function browser(platform) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      `--ignore-certificate-errors-spki-list=${platform.tls.spki}`,
    ],
  });
}

/** A phone-sized page (390×844) that fails the test on any page error or CSP violation. */
export async function phonePage(b, { lang = "ja-JP" } = {}) {
  const context = await b.newContext({ viewport: { width: 390, height: 844 }, locale: lang, deviceScaleFactor: 1 });
  const page = await context.newPage();
  page.problems = [];
  page.on("pageerror", (e) => page.problems.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") page.problems.push(`console: ${m.text()}`);
  });
  return page;
}

/** Saves a full-page screenshot as NAME.png after checking the page had no errors; returns how
 * far it overflows sideways (0 expected). */
export async function shot(page, name) {
  if (page.problems?.length) throw new Error(`${name}: ${page.problems.join("; ")}`);
  mkdirSync(screenshotDir, { recursive: true });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  await page.screenshot({ path: join(screenshotDir, `${name}.png`), fullPage: true });
  return overflow;
}

/** The security answers every test application gives. */
export const security = { iso27001: true, incident_contact: "soc@example.jp", subcontractors: [] };

/** The school: a provider of `allergy` only. */
export const schoolApplication = () => ({
  name: "前橋市立中央小学校", organization: "前橋市教育委員会", contact: "school@example.jp", kind: "provider",
  endpoint: "http://127.0.0.1:9/redeem", redirect_uris: [],
  offers: [{ item: "allergy", title_ja: "食物アレルギー", data_class: "closed", sensitive: true }],
  purposes: [], security,
});

/** The day care: its purpose `lunch` receives `allergy` from `schoolId` by consent. */
export const daycareApplication = (schoolId, { retentionDays = 365 } = {}) => ({
  name: "すくすく保育園", organization: "社会福祉法人すくすく", contact: "daycare@example.jp", kind: "consumer",
  redirect_uris: [], offers: [], security,
  purposes: [{
    id: "lunch", title_ja: "給食のアレルギー対応", title_en: "Allergy-safe school lunches",
    description_ja: "給食から原因食品を除くために、アレルギー情報を受け取ります。",
    description_en: "To keep allergens out of your child's lunch, we receive the allergy record.",
    provider: schoolId, items: ["allergy"], uses: { allergy: "原因食品を献立から除くため" },
    retention_days: retentionDays, legal_basis: "consent",
  }],
});

/**
 * On 「情報提供の管理」, switches `offer`'s consent on with the items `check` (and `uncheck`
 * off), an expiry in 200 days, and saves; resolves the new active consent's record element.
 */
export async function consentOnPage(page, offer, purpose, { check = [], uncheck = [] } = {}) {
  const form = offer.locator("form[data-consent-form]");
  await form.waitFor();
  await form.locator('input[role="switch"]').check();
  for (const item of uncheck) await form.locator(`input[name="item"][value="${item}"]`).uncheck();
  for (const item of check) await form.locator(`input[name="item"][value="${item}"]`).check();
  const inAYear = new Date(Date.now() + 200 * 86400e3).toISOString().slice(0, 10);
  await form.locator('input[type="date"]').fill(inAYear);
  await form.locator('button[type="submit"]').click();
  await page.locator("#consents-done").waitFor();
  const record = page.locator(`article.consent[data-purpose="${purpose}"][data-status="active"]`);
  await record.waitFor();
  return record;
}

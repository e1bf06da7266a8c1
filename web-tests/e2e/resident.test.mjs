// A resident walks through the web app in Chromium: enrollment with the simulated My Number
// card (a non-extractable WebCrypto key in IndexedDB), login by signing the challenge,
// consenting item by item, revoking, reading the history with marks the browser computed from
// ledger proofs, the devices page, and "log in with tsunagu" from a relying party.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import { Platform, browser, phonePage, shot, relyingParty, b64url, consentOnPage } from "./harness.mjs";

let platform, b, page, rp, daycare, brigade, portal;

const security = { iso27001: true, incident_contact: "soc@example.jp", subcontractors: [] };

before(async () => {
  platform = await Platform.start();
  rp = await relyingParty(platform);
  const school = await platform.apply({
    name: "前橋市立中央小学校", organization: "前橋市教育委員会", contact: "school@example.jp", kind: "provider",
    endpoint: "http://127.0.0.1:9/redeem", redirect_uris: [],
    offers: [
      { item: "allergy", title_ja: "食物アレルギー", data_class: "closed", sensitive: true },
      { item: "class", title_ja: "学級", data_class: "limited", sensitive: false },
    ],
    purposes: [], security,
  });
  daycare = await platform.apply({
    name: "すくすく保育園", organization: "社会福祉法人すくすく", contact: "daycare@example.jp", kind: "consumer",
    redirect_uris: [], offers: [], security,
    purposes: [{
      id: "lunch", title_ja: "給食のアレルギー対応", title_en: "Allergy-safe school lunches",
      description_ja: "給食から原因食品を除くために、アレルギー情報と学級を受け取ります。",
      description_en: "To keep allergens out of your child's lunch, we receive the allergy record and class.",
      provider: school.id, items: ["allergy", "class"],
      uses: { allergy: "原因食品を献立から除くため", class: "配膳する教室を知るため" },
      retention_days: 365, legal_basis: "consent",
    }],
  });
  brigade = await platform.apply({
    name: "前橋市消防局", organization: "前橋市", contact: "fire@example.jp", kind: "consumer",
    redirect_uris: [], offers: [], security,
    purposes: [{
      id: "emergency", title_ja: "救急搬送時のアレルギー確認", title_en: "Allergy check in an emergency",
      description_ja: "救急搬送の際、生命を守るためにアレルギー情報を確認します。",
      description_en: "When taking a patient to hospital, the crew checks allergies to protect life.",
      provider: school.id, items: ["allergy"], uses: { allergy: "投薬・処置の判断のため" },
      retention_days: 30, legal_basis: "vital_interest", citation: "個人情報保護法 第27条第1項第2号",
    }],
  });
  portal = await platform.apply({
    name: "まえばし子育てポータル", organization: "前橋市", contact: "portal@example.jp", kind: "consumer",
    redirect_uris: [rp.redirect], offers: [], security, token_endpoint_auth_method: "client_secret_basic",
    purposes: [{
      id: "login", title_ja: "ログインと本人確認", title_en: "Log in and identity",
      description_ja: "ポータルへのログインと、申請書への氏名・生年月日の自動入力に使います。",
      description_en: "To log you in and fill your name and birthdate into applications.",
      provider: "tsunagu", items: ["name", "birthdate"],
      uses: { name: "申請書に記入するため", birthdate: "対象年齢を確認するため" },
      retention_days: 365, legal_basis: "consent",
    }],
  });
  assert.ok(portal.secret, "a client_secret_basic client gets its secret once");
  for (const s of [school, daycare, brigade, portal]) await platform.vote(s.id, "approve");
  b = await browser(platform);
  page = await phonePage(b);
});

after(async () => {
  await b?.close();
  await rp?.close();
  await platform?.stop();
});

test("a resident enrolls this browser with the simulated card and is verified", async () => {
  await page.goto(`${platform.url}/enroll`);
  await page.check("#use-simcard");
  await page.fill("#sim-name", "前橋　花子");
  await page.fill("#sim-address", "群馬県前橋市大手町二丁目12番1号");
  await page.fill("#sim-birthdate", "1988-04-01");
  await page.selectOption("#sim-sex", "2");
  assert.equal(await shot(page, "02-enroll"), 0);
  await page.click("#enroll-button");
  await page.waitForURL(`${platform.url}/app`);
  assert.equal(await page.getAttribute("#level", "data-level"), "verified");
  assert.match(await page.textContent("main"), /前橋　花子/);
  assert.equal(await shot(page, "03-home"), 0);
  // The key is in IndexedDB and cannot be read out.
  const extractable = await page.evaluate(async () => {
    const { loadDevice } = await import("/static/js/wallet.js");
    return (await loadDevice()).privateKey.extractable;
  });
  assert.equal(extractable, false);
});

test("she logs out and logs in again by signing the challenge with the device key", async () => {
  await page.getByRole("button", { name: "ログアウト" }).click();
  await page.waitForURL(`${platform.url}/`);
  await page.goto(`${platform.url}/login`);
  assert.equal(await shot(page, "04-login"), 0);
  await page.getByRole("button", { name: "この端末でログイン" }).click();
  await page.waitForURL(`${platform.url}/app`);
  assert.equal(await page.getAttribute("#level", "data-level"), "verified");
});

test("she consents to the day-care's purpose with one item, then revokes it", async () => {
  await page.goto(`${platform.url}/app/consents`);
  const offer = page.locator(`article.offer[data-purpose="lunch"]`);
  await offer.waitFor();
  // The vital-interest flow is shown read-only, with its citation.
  const rule = page.locator(`article.offer[data-purpose="emergency"]`);
  assert.match(await rule.textContent(), /個人情報保護法/);
  assert.equal(await rule.locator("form[data-consent-form]").count(), 0, "a legal-basis flow has no switch");
  assert.equal(await shot(page, "05-consents"), 0);

  const record = await consentOnPage(page, offer, "lunch", { check: ["allergy"], uncheck: ["class"] });
  assert.match(await record.textContent(), /食物アレルギー|allergy/);
  assert.doesNotMatch(await record.textContent(), /学級/, "only the chosen item was consented");
  assert.equal(await shot(page, "06-consented"), 0);

  // The receipt downloads as JSON in the ISO/IEC TS 27560 shape.
  const id = await record.getAttribute("data-consent-record");
  const receipt = await page.evaluate(async (id) => (await fetch(`/app/consents/${id}/receipt.json`)).json(), id);
  assert.ok(receipt.header || receipt.processing || receipt.events, JSON.stringify(receipt).slice(0, 200));

  await page.click(`#revoke-${id}`);
  await page.locator("#consents-done").waitFor();
  await page.locator(`article.consent[data-consent-record="${id}"][data-status="revoked"]`).waitFor();
  assert.deepEqual(page.problems, []);
});

test("her history is a timeline whose entries the browser verified against the ledger", async () => {
  await page.goto(`${platform.url}/app/history`);
  const marks = page.locator(".ledger-mark[data-leaf-index]");
  await marks.first().waitFor();
  // Every mark turns "verified" once the browser checked the tree head signature and the proofs.
  await page.waitForFunction(() =>
    [...document.querySelectorAll(".ledger-mark[data-leaf-index]")].every((m) => m.classList.contains("ok")),
    null, { timeout: 15000 });
  assert.ok((await marks.count()) >= 3, "enrollment, logins and the consent are in the history");
  const types = await page.$$eval("li.entry", (els) => els.map((e) => e.dataset.type));
  assert.ok(types.some((t) => /consent/.test(t)), `consent events listed: ${types}`);
  assert.equal(await shot(page, "07-history"), 0);
});

test("her devices are listed and can be revoked", async () => {
  await page.goto(`${platform.url}/app/devices`);
  const current = page.locator("article.device[data-current]");
  await current.waitFor();
  assert.equal(await current.getAttribute("data-status"), "active");
  assert.equal(await shot(page, "08-devices"), 0);
});

test("a relying party logs her in with tsunagu: consent page, code, ID token with a pairwise sub", async () => {
  const verifier = b64url(crypto.randomBytes(32));
  const challenge = b64url(crypto.createHash("sha256").update(verifier).digest());
  const state = b64url(crypto.randomBytes(12));
  const nonce = b64url(crypto.randomBytes(12));
  const q = new URLSearchParams({
    response_type: "code", client_id: portal.id, redirect_uri: rp.redirect, scope: "openid profile birthdate",
    state, nonce, code_challenge: challenge, code_challenge_method: "S256",
  });
  await page.goto(`${platform.url}/oauth2/authorize?${q}`);
  await page.locator('form[action="/oauth2/consent"] input[name="consent_payload"]').waitFor({ state: "attached" });
  assert.match(await page.textContent("main"), /まえばし子育てポータル/);
  assert.equal(await shot(page, "09-oidc-consent"), 0);
  await page.getByRole("button", { name: "同意して続ける" }).click();
  await page.waitForURL((u) => u.toString().startsWith(rp.redirect));
  const back = rp.hits.at(-1);
  assert.equal(back.searchParams.get("state"), state);
  assert.equal(back.searchParams.get("iss"), platform.url);
  const code = back.searchParams.get("code");
  assert.ok(code);

  const token = await platform.fetch(`${platform.url}/oauth2/token`, {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      authorization: `Basic ${Buffer.from(`${encodeURIComponent(portal.id)}:${encodeURIComponent(portal.secret)}`).toString("base64")}`,
    },
    body: new URLSearchParams({ grant_type: "authorization_code", code, redirect_uri: rp.redirect, code_verifier: verifier }),
  }).then((r) => r.json());
  assert.ok(token.id_token, JSON.stringify(token));
  const idToken = JSON.parse(Buffer.from(token.id_token.split(".")[1], "base64url"));
  assert.equal(idToken.nonce, nonce);
  assert.equal(idToken.aud, portal.id);
  assert.match(idToken.acr, /verified/);
  // The identity claims come from userinfo, read against her consent at each call.
  const claims = await platform.fetch(`${platform.url}/oauth2/userinfo`, {
    headers: { authorization: `Bearer ${token.access_token}` },
  }).then((r) => r.json());
  assert.equal(claims.sub, idToken.sub);
  assert.equal(claims.name, "前橋　花子");
  assert.equal(claims.birthdate, "1988-04-01");
  assert.equal(claims.address, undefined, "address was not asked for");

  // The agreement is a consent in her list, revocable like any other.
  await page.goto(`${platform.url}/app/consents`);
  await page.locator(`article.consent[data-consumer="${portal.id}"][data-status="active"]`).waitFor();
  assert.deepEqual(page.problems, []);
});

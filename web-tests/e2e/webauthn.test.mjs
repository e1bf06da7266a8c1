// The browser wallet's key behind the device's screen lock (issue 9, defect 6), in Chromium
// with its virtual platform authenticator (DevTools protocol, `WebAuthn` domain): enrollment
// registers a credential with the user verified, every login asks for it, a failed
// confirmation logs nobody in, and a client that skips it is refused by the platform. Where
// the browser has no platform authenticator, or the platform is served at an IP address, the
// enrollment page says plainly that the key is not protected.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Platform, browser, consentOnPage, daycareApplication, phonePage, schoolApplication, shot } from "./harness.mjs";

let platform, b;

before(async () => {
  platform = await Platform.start({ host: "localhost" });
  const school = await platform.apply(schoolApplication());
  const daycare = await platform.apply(daycareApplication(school.id));
  for (const s of [school, daycare]) await platform.vote(s.id, "approve");
  b = await browser(platform);
});

after(async () => {
  await b?.close();
  await platform?.stop();
});

/** A phone page with a virtual platform authenticator that verifies the user. */
async function pageWithAuthenticator() {
  const page = await phonePage(b);
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  return { page, cdp, authenticatorId };
}

const stored = (page) =>
  page.evaluate(async () => {
    const { loadDevice } = await import("/static/js/wallet.js");
    const d = await loadDevice();
    return d && { uv: d.uv, credential: Boolean(d.credential) };
  });

test("with a platform authenticator the key is registered behind the screen lock and every login asks for it", async () => {
  const { page, cdp, authenticatorId } = await pageWithAuthenticator();
  await page.goto(`${platform.origin}/enroll`);
  await page.locator("#uv-yes").waitFor({ state: "visible" });
  assert.equal(await page.isHidden("#uv-no-browser"), true);
  assert.equal(await shot(page, "20-enroll-screen-lock"), 0);
  await page.check("#use-simcard");
  await page.fill("#sim-name", "前橋　花子");
  await page.fill("#sim-address", "群馬県前橋市大手町二丁目12番1号");
  await page.fill("#sim-birthdate", "1988-04-01");
  await page.click("#enroll-button");
  await page.waitForURL(`${platform.origin}/app`);
  assert.equal(await page.getAttribute("#level", "data-level"), "verified");

  const device = await stored(page);
  assert.equal(device.uv.rpId, "localhost");
  const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
  assert.equal(credentials.length, 1, "one credential, registered at enrollment");
  assert.equal(device.uv.credentialId, Buffer.from(credentials[0].credentialId, "base64").toString("base64url"));
  // Registration and the login after it: the authenticator's counter moved twice.
  assert.equal(credentials[0].signCount, 2);

  await page.goto(`${platform.origin}/app/devices`);
  assert.equal(await page.getAttribute(".device[data-current] .device-uv", "data-uv"), "webauthn");
  assert.match(await page.textContent(".device[data-current] .device-uv"), /PIN・指紋・顔/);
  assert.equal(await shot(page, "21-devices-screen-lock"), 0);

  // Log out; log in again: the screen lock is asked again.
  await page.getByRole("button", { name: "ログアウト", exact: true }).click();
  await page.waitForURL(`${platform.origin}/`);
  await page.goto(`${platform.origin}/login`);
  await page.getByRole("button", { name: "この端末でログイン" }).click();
  await page.waitForURL(`${platform.origin}/app`);
  const after = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
  assert.equal(after.credentials[0].signCount, 3);

  // A consent is confirmed with the screen lock too, over that very statement; so is its
  // revocation.
  await page.goto(`${platform.origin}/app/consents`);
  const record = await consentOnPage(page, page.locator(`article.offer[data-purpose="lunch"]`), "lunch", { check: ["allergy"] });
  const id = await record.getAttribute("data-consent-record");
  await page.click(`#revoke-${id}`);
  await page.locator(`article.consent[data-consent-record="${id}"][data-status="revoked"]`).waitFor();
  const signed = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
  assert.equal(signed.credentials[0].signCount, 5, "the consent and its revocation were each confirmed");

  // The screen lock does not recognise the user: nobody is logged in.
  await page.getByRole("button", { name: "ログアウト", exact: true }).click();
  await page.waitForURL(`${platform.origin}/`);
  await cdp.send("WebAuthn.setUserVerified", { authenticatorId, isUserVerified: false });
  await page.goto(`${platform.origin}/login`);
  await page.getByRole("button", { name: "この端末でログイン" }).click();
  await page.locator("#login-status.error").waitFor();
  assert.match(await page.textContent("#login-status"), /画面ロック/);
  assert.equal(new URL(page.url()).pathname, "/login");

  // A client that skips the screen lock (here: the record's credential removed, as a script
  // that reads IndexedDB could) is refused by the platform, not only by this page.
  await page.evaluate(async () => {
    const { loadDevice, saveDevice } = await import("/static/js/wallet.js");
    const d = await loadDevice();
    d.uv = null;
    await saveDevice(d);
  });
  await page.goto(`${platform.origin}/login`);
  await page.getByRole("button", { name: "この端末でログイン" }).click();
  await page.locator('[role="alert"]').waitFor();
  assert.match(await page.textContent('[role="alert"]'), /user_verification_required/);
  assert.match(await page.textContent('[role="alert"]'), /PIN・指紋・顔/);
  // The refused login is a 403 page: expected here, not a page error.
  page.problems = page.problems.filter((p) => !p.includes("status of 403"));
  assert.equal(await shot(page, "22-login-without-screen-lock"), 0);
  await page.context().close();
});

test("without a platform authenticator the enrollment page says the key is not protected", async () => {
  const page = await phonePage(b, { lang: "en-US" });
  await page.goto(`${platform.origin}/enroll?lang=en`);
  await page.locator("#uv-no-browser").waitFor({ state: "visible" });
  assert.match(await page.textContent("#uv-no-browser"), /without that protection/);
  assert.match(await page.textContent("#uv-no-browser"), /Do not register a shared device/);
  await page.click("#enroll-button");
  await page.waitForURL(`${platform.origin}/app`);
  assert.equal((await stored(page)).uv, null);
  await page.goto(`${platform.origin}/app/devices?lang=en`);
  assert.equal(await page.getAttribute(".device[data-current] .device-uv", "data-uv"), "none");
  await page.context().close();
});

test("a platform served at an IP address offers no screen lock and says so", async () => {
  // The default harness serves at https://127.0.0.1:…, which cannot be a WebAuthn RP ID.
  const plain = await Platform.start();
  const b2 = await browser(plain);
  try {
    const page = await phonePage(b2);
    const cdp = await page.context().newCDPSession(page);
    await cdp.send("WebAuthn.enable");
    await cdp.send("WebAuthn.addVirtualAuthenticator", {
      options: { protocol: "ctap2", transport: "internal", hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
    });
    await page.goto(`${plain.url}/enroll`);
    await page.locator("#uv-no-platform").waitFor({ state: "visible" });
    assert.match(await page.textContent("#uv-no-platform"), /https/);
  } finally {
    await b2.close();
    await plain.stop();
  }
});

// Operator staff in Chromium: the first security officer (made on the command line) logs in
// to /admin with her TOTP code, creates an operator and issues him a grant; he looks at a
// resident's record behind a reason prompt and decides her correction request; the resident
// reads the look, with the reason, in her own history. Desktop size, Japanese and English.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import { execFileSync } from "node:child_process";
import { Platform, bin, browser, phonePage, shot } from "./harness.mjs";

let platform, b, resident, officer, operator;
let accountId, officerCreds, operatorCreds;

/** RFC 6238 (SHA-1, 6 digits, 30 s) from a base32 secret, `steps` from now. */
function totp(base32, steps = 0) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of base32.replace(/=+$/, "")) bits += alphabet.indexOf(c).toString(2).padStart(5, "0");
  const key = Buffer.from(bits.match(/.{8}/g).map((byte) => parseInt(byte, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 1000 / 30) + steps));
  const mac = crypto.createHmac("sha1", key).update(counter).digest();
  const offset = mac[mac.length - 1] & 0xf;
  const n = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return String(n).padStart(6, "0");
}

test("the RFC 6238 helper matches the RFC's SHA-1 vector", () => {
  // Secret "12345678901234567890" at T = 59 s gives 94287082; six digits: 287082.
  const secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
  const realNow = Date.now;
  Date.now = () => 59_000;
  try {
    assert.equal(totp(secret), "287082");
  } finally {
    Date.now = realNow;
  }
});

async function desktopPage(lang = "ja-JP") {
  const page = await phonePage(b, { lang });
  await page.setViewportSize({ width: 1280, height: 900 });
  return page;
}

/** Logs in; returns the code it used. */
async function staffLogin(page, creds, steps = 0) {
  const code = totp(creds.totp_secret, steps);
  await page.goto(`${platform.url}/admin/login`);
  await page.fill("#id", creds.id);
  await page.fill("#password", creds.password);
  await page.fill("#totp", code);
  await page.click("button[type=submit]");
  await page.waitForURL(`${platform.url}/admin`);
  return code;
}

before(async () => {
  platform = await Platform.start({ quorum: 1 });
  b = await browser(platform);
  resident = await phonePage(b);
  // A resident enrolls with the simulated card.
  await resident.goto(`${platform.url}/enroll`);
  await resident.check("#use-simcard");
  await resident.fill("#sim-name", "前橋　花子");
  await resident.fill("#sim-address", "群馬県前橋市大手町二丁目12番1号");
  await resident.fill("#sim-birthdate", "1988-04-01");
  await resident.selectOption("#sim-sex", "2");
  await resident.click("#enroll-button");
  await resident.waitForURL(`${platform.url}/app`);
  accountId = (await resident.textContent("main code")).trim();
  officerCreds = JSON.parse(
    execFileSync(bin, ["admin", "staff", "create", "--config", "tsunagu.toml", "--id", "officer-1", "--role", "security_officer"], {
      cwd: platform.dir,
    }).toString(),
  );
});

after(async () => {
  await b?.close();
  await platform?.stop();
});

test("the security officer logs in with her TOTP code; a code works once", async () => {
  officer = await desktopPage();
  await officer.goto(`${platform.url}/admin`);
  await officer.waitForURL(`${platform.url}/admin/login`);
  assert.equal(await shot(officer, "40-admin-login"), 0);
  // A wrong code is refused on the page.
  await officer.fill("#id", "officer-1");
  await officer.fill("#password", officerCreds.password);
  await officer.fill("#totp", "000000");
  await officer.click("button[type=submit]");
  await officer.waitForSelector("p.error");
  assert.match(await officer.textContent("p.error"), /totp_invalid/);
  officer.problems.length = 0; // the 401 is the point
  const used = await staffLogin(officer, officerCreds);
  assert.match(await officer.textContent("#roles"), /security_officer/);
  const cookies = await officer.context().cookies();
  const session = cookies.find((c) => c.name === "tsunagu_admin");
  assert.ok(session.httpOnly, "the session cookie is HttpOnly");
  assert.equal(session.sameSite, "Strict");
  assert.ok(session.secure, "Secure under TLS");
  // The same code again, from another browser: refused as replayed.
  const other = await desktopPage();
  await other.goto(`${platform.url}/admin/login`);
  await other.fill("#id", "officer-1");
  await other.fill("#password", officerCreds.password);
  await other.fill("#totp", used);
  await other.click("button[type=submit]");
  await other.waitForSelector("p.error");
  assert.match(await other.textContent("p.error"), /totp_replayed/);
  await other.close();
  assert.equal(await shot(officer, "41-admin-home"), 0);
});

test("she creates an operator and issues him a grant with an end date and a reason", async () => {
  await officer.goto(`${platform.url}/admin/grants`);
  await officer.fill("#s-id", "op-1");
  await officer.fill("#s-name", "窓口 一郎");
  await officer.click("#create-staff button[type=submit]");
  await officer.waitForSelector("#new-staff");
  operatorCreds = {
    id: "op-1",
    password: (await officer.textContent("#new-password")).trim(),
    totp_secret: (await officer.textContent("#new-totp")).trim(),
  };
  assert.match(await officer.textContent("#new-otpauth"), /^otpauth:\/\/totp\/tsunagu:op-1\?secret=/);
  // She saw op-1's credentials, so she may not grant it anything; a second officer does.
  await officer.fill("#g-staff", "op-1");
  await officer.selectOption("#g-role", "operator");
  await officer.selectOption("#g-scope", "update");
  await officer.fill("#g-days", "30");
  await officer.fill("#g-reason", "窓口業務への配属");
  await officer.click("#issue button[type=submit]");
  await officer.waitForSelector("p.error");
  assert.match(await officer.textContent("p.error"), /another security officer/);
  officer.problems.length = 0; // the 403 is the point
  const second = JSON.parse(
    execFileSync(bin, ["admin", "staff", "create", "--config", "tsunagu.toml", "--id", "officer-2", "--role", "security_officer"], {
      cwd: platform.dir,
    }).toString(),
  );
  const officer2 = await desktopPage();
  await staffLogin(officer2, second);
  await officer2.goto(`${platform.url}/admin/grants`);
  await officer2.fill("#g-staff", "op-1");
  await officer2.selectOption("#g-role", "operator");
  await officer2.selectOption("#g-scope", "update");
  await officer2.fill("#g-days", "30");
  await officer2.fill("#g-reason", "窓口業務への配属");
  await officer2.click("#issue button[type=submit]");
  await officer2.locator("#grants td", { hasText: "op-1" }).first().waitFor();
  assert.match(await officer2.textContent("#grants"), /operator \(update\)/);
  assert.equal(await shot(officer2, "42-admin-grants"), 0);
  assert.deepEqual(officer2.problems, []);
  await officer2.close();
  // The same form without its CSRF token is refused.
  await officer.goto(`${platform.url}/admin/grants`);
  const [refusal] = await Promise.all([
    officer.waitForResponse((r) => r.url().endsWith("/admin/staff")),
    officer.evaluate(() => {
      const form = document.querySelector("#create-staff");
      form.querySelector("[name=csrf]").remove();
      form.querySelector("#s-id").value = "forged";
      form.querySelector("#s-name").value = "forged";
      form.submit();
    }),
  ]);
  assert.equal(refusal.status(), 403);
  officer.problems.length = 0;
});

test("the operator looks at the resident only with a reason, and decides her correction", async () => {
  // The resident asks for a correction on 「権利の行使」; the page shows its deadline.
  await resident.goto(`${platform.url}/app/requests`);
  await resident.check("#type-correction");
  await resident.fill("#request-detail", "方書が抜けています");
  await resident.click("#request-submit");
  await resident.waitForSelector("#requests-done");
  const card = resident.locator('article.request[data-type="correction"]');
  assert.equal(await card.getAttribute("data-status"), "received");
  assert.match(await card.locator(".deadline").textContent(), /\d/);
  assert.equal(await shot(resident, "43-requests"), 0);
  const token = (await resident.context().cookies()).find((c) => c.name === "tsunagu_session").value;
  const filed = { json: { request_id: await card.getAttribute("data-request") } };
  const mine0 = await platform.api("GET", `/v1/me/requests/${filed.json.request_id}`, undefined, { authorization: `Bearer ${token}` });
  assert.equal(mine0.json.deadline - mine0.json.received_at, 14 * 86400);
  operator = await desktopPage("en-US");
  await staffLogin(operator, operatorCreds);
  await operator.goto(`${platform.url}/admin/residents`);
  assert.match(await operator.textContent("main"), /resident's own history/);
  await operator.fill("#account_id", accountId);
  await operator.fill("#reason", "Change of address at the counter");
  await operator.click("main form button[type=submit]");
  await operator.waitForSelector("#record");
  assert.match(await operator.textContent("#record"), /前橋　花子/);
  assert.equal(await shot(operator, "44-admin-record"), 0);
  // Without a reason the browser does not even send the form; a forced empty one is refused.
  await operator.goto(`${platform.url}/admin/residents`);
  await operator.fill("#account_id", accountId);
  await operator.evaluate(() => document.querySelector("#reason").removeAttribute("required"));
  await operator.click("main form button[type=submit]");
  await operator.waitForSelector("p.error");
  assert.match(await operator.textContent("p.error"), /reason_required/);
  operator.problems.length = 0;

  // The queue shows the request with its deadline; he completes it with a reason.
  await operator.goto(`${platform.url}/admin/requests`);
  const row = operator.locator(`#queue tr[data-request-id="${filed.json.request_id}"]`);
  await row.waitFor();
  assert.match(await row.textContent(), /correction/);
  assert.match(await row.textContent(), /方書が抜けています/);
  assert.equal(await shot(operator, "45-admin-queue"), 0);
  await row.locator("input[name=reason]").fill("Corrected after checking the residence record");
  await row.locator("button[value=completed]").click();
  await operator.waitForURL(`${platform.url}/admin/requests`);
  assert.equal(await operator.locator(`#queue tr[data-request-id="${filed.json.request_id}"]`).count(), 0);
  const mine = await platform.api("GET", `/v1/me/requests/${filed.json.request_id}`, undefined, { authorization: `Bearer ${token}` });
  assert.equal(mine.json.status, "completed");
  assert.equal(mine.json.reason, "Corrected after checking the residence record");
  assert.deepEqual(operator.problems, []);
});

test("the resident reads the look and its reason in her history", async () => {
  await resident.goto(`${platform.url}/app/history`);
  const entries = resident.locator('li.entry[data-type="staff.viewed"]');
  const look = entries.filter({ hasText: "Change of address at the counter" });
  await look.first().waitFor();
  const text = await look.first().textContent();
  assert.match(text, /職員があなたの情報を閲覧/);
  assert.match(text, /氏名/);
  // Reading her request in the queue was a look too: at what she wrote.
  assert.match(await entries.filter({ hasText: "請求に書いた内容" }).first().textContent(), /request queue/);
  assert.equal(await shot(resident, "46-history-staff-view"), 0);
  assert.deepEqual(resident.problems, []);
});

test("she asks for a copy of her data and reads it; an erasure asks her to confirm what is lost", async () => {
  await resident.goto(`${platform.url}/app/requests`);
  await resident.check("#type-disclosure");
  await resident.click("#request-submit");
  await resident.waitForSelector("#requests-done");
  const card = resident.locator('article.request[data-type="disclosure"]');
  assert.equal(await card.getAttribute("data-status"), "completed");
  const id = await card.getAttribute("data-request");
  await resident.click(`#export-${id}`);
  await resident.waitForURL(`${platform.url}/app/requests/${id}/export`);
  const text = await resident.textContent("main");
  assert.match(text, /前橋　花子/);
  assert.match(text, /Change of address at the counter/, "the staff look and its reason are disclosed");
  assert.equal(await shot(resident, "48-disclosure"), 0);
  // An erasure without the confirmation is refused on the page, and nothing is erased.
  await resident.goto(`${platform.url}/app/requests`);
  await resident.check("#type-erasure");
  await resident.click("#request-submit");
  await resident.waitForSelector("#requests-error");
  assert.match(await resident.textContent("#requests-error"), /confirm_erasure/);
  resident.problems.length = 0; // the 400 is the point
  assert.equal(await resident.locator('article.request[data-type="erasure"]').count(), 0);
});

test("the officer reads the access report as an auditor only with an auditor's grant", async () => {
  await officer.goto(`${platform.url}/admin/report`);
  await officer.waitForSelector("p.error");
  assert.match(await officer.textContent("p.error"), /no_grant/);
  officer.problems.length = 0;
  const auditor = JSON.parse(
    execFileSync(bin, ["admin", "staff", "create", "--config", "tsunagu.toml", "--id", "audit-1", "--role", "auditor"], {
      cwd: platform.dir,
    }).toString(),
  );
  const page = await desktopPage();
  await staffLogin(page, auditor);
  await page.goto(`${platform.url}/admin/report`);
  await page.waitForSelector("#views");
  assert.match(await page.textContent("#views"), /Change of address at the counter/);
  // The look came while her correction request was open: not unusual.
  assert.doesNotMatch(await page.textContent("#unusual"), /no_open_request/);
  assert.equal(await shot(page, "49-admin-report"), 0);
  assert.deepEqual(page.problems, []);
});

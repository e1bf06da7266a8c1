// A committee member reviews a pending application in Chromium: signs in with her key file
// (imported as a non-extractable WebCrypto key), reads the lint findings, and approves with a
// vote signed in the browser. Then the service's operator signs in to the service console.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Platform, browser, daycareApplication, phonePage, schoolApplication, shot } from "./harness.mjs";

let platform, b, page, school, daycare;

before(async () => {
  platform = await Platform.start({ quorum: 1 });
  school = await platform.apply(schoolApplication());
  await platform.vote(school.id, "approve");
  daycare = await platform.apply(daycareApplication(school.id, { retentionDays: 3650 }));
  writeFileSync(join(platform.dir, "daycare.pem"), daycare.key.pem);
  b = await browser(platform);
  page = await phonePage(b);
});

after(async () => {
  await b?.close();
  await platform?.stop();
});

test("a committee member signs in with her key file and sees the pending application with its lint", async () => {
  await page.goto(`${platform.url}/committee`);
  await page.waitForSelector("#committee-login-form");
  await page.fill("#member-id", "m1");
  await page.setInputFiles("#member-key-file", join(platform.dir, "m1.pem"));
  await page.click("#committee-login-button");
  await page.waitForSelector("#committee[data-member-id='m1']");
  const pending = page.locator(`#pending article[data-service-id="${daycare.id}"]`);
  await pending.waitFor();
  assert.equal(await pending.getAttribute("data-status"), "pending_review");
  // Ten years for a closed item exceeds the committee's limit: the lint says so.
  assert.ok((await pending.locator("li[data-code]").count()) >= 1, "lint findings are shown");
  assert.equal(await shot(page, "10-committee"), 0);
});

test("she approves it with a vote her browser signs, naming the error findings she overrides", async () => {
  // An error finding blocks approval: a plain approving vote is refused and not counted.
  await page.fill(`#comment-${daycare.id}`, "保存期間の短縮を条件に承認");
  await page.click(`#vote-approve-${daycare.id}`);
  await page.waitForSelector("#committee-error");
  assert.match(await page.textContent("#committee-error"), /retention_too_long/);
  page.problems.length = 0; // the refusal's 409 is the point here
  const boxes = page.locator(`#overrides-${daycare.id} input[name="override"]`);
  assert.ok((await boxes.count()) >= 1, "each error finding is a box to tick");
  for (let i = 0; i < (await boxes.count()); i++) await boxes.nth(i).check();
  await page.fill(`#comment-${daycare.id}`, "保存期間の短縮を条件に承認");
  await page.click(`#vote-approve-${daycare.id}`);
  await page.waitForSelector("#vote-result");
  assert.equal(await page.getAttribute("#vote-result", "data-status"), "approved");
  assert.equal(await shot(page, "11-voted"), 0);
  const service = await platform.api("GET", `/v1/services/${daycare.id}`);
  assert.equal(service.json.status, "approved");
  assert.deepEqual(page.problems, []);
});

test("the service's operator signs in to the console with the service key", async () => {
  const operator = await phonePage(b);
  await operator.goto(`${platform.url}/console/login`);
  await operator.fill("#service-id", daycare.id);
  await operator.setInputFiles("#service-key-file", join(platform.dir, "daycare.pem"));
  await operator.click("#console-login-button");
  await operator.waitForSelector(`#console-service[data-service-id="${daycare.id}"]`);
  assert.equal(await operator.getAttribute("#console-service", "data-status"), "approved");
  assert.equal(await operator.locator(`#console-keys tr[data-kid="${daycare.key.kid}"]`).count(), 1);
  assert.equal(await shot(operator, "12-console"), 0);
  assert.deepEqual(operator.problems, []);
});

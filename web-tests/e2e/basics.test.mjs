// The pages every visitor sees: language by Accept-Language and by the switch, a phone-sized
// screen without sideways scrolling, labelled inputs, and the security headers.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Platform, browser, phonePage, shot } from "./harness.mjs";

let platform, b;
before(async () => {
  platform = await Platform.start();
  b = await browser(platform);
});
after(async () => {
  await b?.close();
  await platform?.stop();
});

/** Every visible form control has an accessible name. */
async function unlabelled(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll("input, select, textarea, button")]
      .filter((el) => el.type !== "hidden")
      .filter((el) => {
        const byFor = el.id && document.querySelector(`label[for="${el.id}"]`);
        const wrapped = el.closest("label");
        const aria = el.getAttribute("aria-label") || el.getAttribute("aria-labelledby");
        const text = (el.tagName === "BUTTON" && el.textContent.trim()) || null;
        return !(byFor || wrapped || aria || text);
      })
      .map((el) => el.outerHTML),
  );
}

test("the landing and login pages speak Japanese first, switch to English, and fit a phone", async () => {
  const page = await phonePage(b);
  const response = await page.goto(`${platform.url}/`);
  const headers = response.headers();
  assert.match(headers["content-security-policy"], /script-src 'self'/);
  assert.equal(headers["x-frame-options"], "DENY");
  assert.equal(headers["x-content-type-options"], "nosniff");
  assert.equal(headers["strict-transport-security"], "max-age=31536000", "served over HTTPS");
  assert.equal(await page.getAttribute("html", "lang"), "ja");
  assert.equal(await shot(page, "01-landing-ja"), 0, "no sideways scrolling at 390 px");

  await page.getByRole("link", { name: "English" }).click();
  await page.waitForLoadState();
  assert.equal(await page.getAttribute("html", "lang"), "en");
  await page.goto(`${platform.url}/login`);
  assert.equal(await page.getAttribute("html", "lang"), "en", "the switch is remembered");
  assert.deepEqual(await unlabelled(page), []);
  assert.equal(await page.locator('form[action="/login"] input[type=hidden][name=nonce]').count(), 1);
  assert.deepEqual(page.problems, []);
});

test("Accept-Language chooses English for an English browser", async () => {
  const page = await phonePage(b, { lang: "en-US" });
  await page.goto(`${platform.url}/login`);
  assert.equal(await page.getAttribute("html", "lang"), "en");
  await page.keyboard.press("Tab");
  const focused = await page.evaluate(() => document.activeElement?.className);
  assert.equal(focused, "skip", "the first Tab reaches the skip link");
});

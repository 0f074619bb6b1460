// Opens a page in headless Chromium (Debian's, driven by playwright-core) and prints what it
// shows once it has settled: {status, heading, rows}. Usage: node open_page.mjs URL
import { chromium } from "playwright-core";

const url = process.argv[2];
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
try {
  const page = await browser.newPage();
  const console_ = [];
  page.on("console", (message) => console_.push(`${message.type()}: ${message.text()}`));
  await page.goto(url);
  await page.waitForFunction(
    () => document.getElementById("status")?.textContent !== "Loading…",
    null,
    { timeout: 60_000 },
  );
  const shown = await page.evaluate(() => ({
    status: document.getElementById("status")?.textContent ?? "",
    heading: document.getElementById("manager")?.textContent ?? "",
    rows: [...document.querySelectorAll("#customers tr")].map((tr) => ({
      id: tr.dataset.customerId,
      cells: [...tr.cells].map((td) => td.textContent),
    })),
  }));
  console.log(JSON.stringify({ ...shown, console: console_ }));
} finally {
  await browser.close();
}

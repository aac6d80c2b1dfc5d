// Load gitsnap's HTML reports in headless Chromium, as a reviewer opens a CI artifact.
//
//   node render-html.mjs PAGES.json OUT.json
//
// PAGES.json: [{"name", "path", "screenshot", "sort": {"table": CSS, "column": N} | null}].
// For each page, OUT.json gets {"name", "consoleErrors", "pageErrors", "requests",
// "svgs", "bars", "lines", "tables", "sorted": {"before", "after", "again"} | null}:
// console errors and uncaught exceptions, every request other than the page itself
// (there must be none: the page is self-contained), the charts drawn, and the first
// column's text of a sortable table before and after real clicks on a header.
// Chromium is Debian's (/usr/bin/chromium, or $CHROMIUM), driven by playwright-core.
import { readFileSync, writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { openChromium } from "./chromium.mjs";

const [input, output] = process.argv.slice(2);
const pages = JSON.parse(readFileSync(input, "utf8"));
const browser = await openChromium({ viewport: { width: 1280, height: 900 } });
const results = [];
try {
  const page = browser.page;
  for (const spec of pages) {
    const consoleErrors = [];
    const pageErrors = [];
    const requests = [];
    const url = pathToFileURL(spec.path).href;
    const onConsole = (m) => {
      if (m.type() === "error" || m.type() === "warning") consoleErrors.push(m.text());
    };
    const onError = (e) => pageErrors.push(String(e));
    const onRequest = (r) => {
      if (r.url() !== url) requests.push(r.url());
    };
    page.on("console", onConsole);
    page.on("pageerror", onError);
    page.on("request", onRequest);
    await page.goto(url, { waitUntil: "load" });
    const counts = await page.evaluate(() => ({
      svgs: document.querySelectorAll("svg.chart").length,
      bars: document.querySelectorAll("svg.chart rect.bar").length,
      lines: document.querySelectorAll("svg.chart path.line").length,
      tables: document.querySelectorAll("table").length,
      title: document.title,
      text: document.body.innerText,
    }));
    let sorted = null;
    if (spec.sort) {
      const column = (sel) =>
        page.$$eval(`${sel} tbody tr`, (rows, col) => rows.map((r) => r.cells[col].textContent), 1);
      const header = page.locator(`${spec.sort.table} thead th`).nth(spec.sort.column);
      const before = await column(spec.sort.table);
      await header.click();
      const after = await column(spec.sort.table);
      const afterKeys = await page.$$eval(
        `${spec.sort.table} tbody tr`,
        (rows, col) => rows.map((r) => parseFloat(r.cells[col].getAttribute("data-v"))),
        spec.sort.column,
      );
      await header.click();
      const again = await column(spec.sort.table);
      const ariaSort = await header.getAttribute("aria-sort");
      sorted = { before, after, afterKeys, again, ariaSort };
      // Back to the first order for the screenshot: most changed first.
      await header.click();
    }
    if (spec.screenshot) await page.screenshot({ path: spec.screenshot, fullPage: true });
    page.off("console", onConsole);
    page.off("pageerror", onError);
    page.off("request", onRequest);
    results.push({ name: spec.name, consoleErrors, pageErrors, requests, ...counts, sorted });
  }
} finally {
  await browser.close();
}
writeFileSync(output, JSON.stringify(results, null, 2));

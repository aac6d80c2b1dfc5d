// Render Mermaid charts with the real mermaid library in headless Chromium.
//
//   node render-mermaid.mjs CHARTS.json OUT.json
//
// CHARTS.json: [{"name": ..., "source": ...}]. OUT.json: one entry per chart,
// {"name", "ok", "error", "bars", "labels", "overlaps", "svg"}: whether
// mermaid.parse and mermaid.render accepted it, how many bars the SVG drew,
// the axis labels as drawn, and how many pairs of axis labels overlap on the
// page. Chromium is Debian's (/usr/bin/chromium, or $CHROMIUM), driven by
// playwright-core; nothing is downloaded.
import { readFileSync, writeFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { openChromium } from "./chromium.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const [input, output] = process.argv.slice(2);
const charts = JSON.parse(readFileSync(input, "utf8"));
const browser = await openChromium({});
const results = [];
try {
  const page = browser.page;
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.setContent("<!doctype html><html><body><div id=out></div></body></html>");
  await page.addScriptTag({ path: join(here, "node_modules/mermaid/dist/mermaid.min.js") });
  await page.evaluate(() => window.mermaid.initialize({ startOnLoad: false, securityLevel: "strict" }));
  for (const [i, chart] of charts.entries()) {
    const r = await page.evaluate(
      async ({ source, id }) => {
        const out = document.getElementById("out");
        out.innerHTML = "";
        try {
          await window.mermaid.parse(source);
          const { svg } = await window.mermaid.render(id, source);
          out.innerHTML = svg;
        } catch (e) {
          return { ok: false, error: String(e && e.message ? e.message : e) };
        }
        const root = out.querySelector("svg");
        const bars = root.querySelectorAll(".bar-plot-0 rect").length;
        const texts = [...root.querySelectorAll(".left-axis .label text, .bottom-axis .label text")];
        const boxes = texts.map((t) => t.getBoundingClientRect());
        let overlaps = 0;
        for (let a = 0; a < boxes.length; a++) {
          for (let b = a + 1; b < boxes.length; b++) {
            const p = boxes[a];
            const q = boxes[b];
            const dx = Math.min(p.right, q.right) - Math.max(p.left, q.left);
            const dy = Math.min(p.bottom, q.bottom) - Math.max(p.top, q.top);
            if (dx > 1 && dy > 1) overlaps++;
          }
        }
        return {
          ok: true,
          error: null,
          bars,
          labels: texts.map((t) => t.textContent),
          overlaps,
          svg: root.outerHTML.length,
        };
      },
      { source: chart.source, id: `chart${i}` },
    );
    results.push({ name: chart.name, ...r, pageErrors: errors.splice(0) });
  }
} finally {
  await browser.close();
}
writeFileSync(output, JSON.stringify(results, null, 2));

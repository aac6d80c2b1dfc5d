// Debian's Chromium (/usr/bin/chromium, or $CHROMIUM) driven by playwright-core,
// headless, with a throw-away profile and no background traffic: nothing is
// downloaded, and the machine's closed network is never asked.
//
//   const browser = await openChromium({ viewport });
//   try { ... browser.page ... } finally { await browser.close(); }
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

export async function openChromium(options = {}) {
  const profile = mkdtempSync(join(tmpdir(), "gitsnap-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    ...options,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
  const page = context.pages()[0] || (await context.newPage());
  return {
    page,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

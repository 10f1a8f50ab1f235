// Browser test of the operator dashboard against the real gateway binary and real backend processes.
//
//   cd tests/e2e && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci && node --test
//
// Needs: Debian's chromium (/usr/bin/chromium, or env CHROMIUM), the gateway binary (env EDGEPROXY_BIN,
// default <repo>/dist/edgeproxy, from ./build.sh) and the built test backend (env EDGEPROXY_TEST_BACKEND_DLL,
// default <repo>/tests/EdgeProxy.TestBackend/bin/Release/net10.0/EdgeProxy.TestBackend.dll).
// Everything listens on 127.0.0.1 only. Screenshots go to tests/e2e/artifacts/ (git-ignored):
// dashboard.png (desktop, light, after b2 was killed) and dashboard-phone-dark.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { Processes, GATEWAY_BIN, BACKEND_DLL, waitFor } from './lib/processes.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = path.join(here, 'artifacts');
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const BACKEND_KEY = 'per-backend-secret-5f1c'; // must never reach the page or the JSON

const procs = new Processes();
let gatewayUrl, browser, page, backends;
const problems = []; // console errors/warnings and page errors, over the whole run

const sha256 = (s) => "'sha256-" + crypto.createHash('sha256').update(s, 'utf8').digest('base64') + "'";

before(async () => {
  for (const [what, file] of [['gateway binary (./build.sh)', GATEWAY_BIN], ['test backend (dotnet build -c Release)', BACKEND_DLL], ['chromium', CHROMIUM]]) {
    assert.ok(fs.existsSync(file), `missing ${what}: ${file}`);
  }
  backends = await Promise.all([procs.startBackend('b1'), procs.startBackend('b2')]);
  const gateway = await procs.startGateway({
    services: {
      chat: {
        models: {
          'test-model': {
            backends: [
              { id: 'b1', name: 'Backend one', url: backends[0].url, weight: 1, api_key: BACKEND_KEY },
              { id: 'b2', name: 'Backend two', url: backends[1].url, weight: 1 }
            ]
          }
        }
      }
    }
  }, { HEALTH_CHECK_INTERVAL: '1', BACKEND_API_KEY: 'test-key', LOG_LEVEL: 'warning' });
  gatewayUrl = gateway.url;

  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  page = await newPage({ viewport: { width: 1280, height: 800 }, colorScheme: 'light' });
});

/** A page that records console errors/warnings, page errors and CSP violations. */
async function newPage(contextOptions) {
  const p = await (await browser.newContext(contextOptions)).newPage();
  p.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`); });
  p.on('pageerror', (e) => problems.push('pageerror: ' + e.message));
  await p.addInitScript(() => { // runs outside the page's CSP
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  return p;
}

after(async () => {
  await browser?.close();
  await procs.stopAll();
});

test('GET / serves the dashboard with a strict CSP whose hashes match the inline script and style', async () => {
  const resp = await page.goto(gatewayUrl + '/');
  assert.equal(resp.status(), 200);
  assert.match(resp.headers()['content-type'], /^text\/html/);
  const html = await resp.text();
  const csp = resp.headers()['content-security-policy'] || '';
  const script = /<script\b[^>]*>([\s\S]*?)<\/script>/i.exec(html)[1];
  const style = /<style\b[^>]*>([\s\S]*?)<\/style>/i.exec(html)[1];
  assert.match(csp, /default-src 'none'/);
  assert.ok(csp.includes(`script-src ${sha256(script)}`), `script hash not in CSP: ${csp}`);
  assert.ok(csp.includes(`style-src ${sha256(style)}`), `style hash not in CSP: ${csp}`);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
});

test('both backends are listed healthy, live over SSE', async () => {
  await page.waitForSelector('#conn[data-state="live"]', { timeout: 10000 });
  for (const id of ['b1', 'b2']) {
    await page.waitForSelector(`[data-backend-id="${id}"][data-status="healthy"]`, { timeout: 10000 });
  }
  assert.equal(await page.locator('[data-backend-id]').count(), 2);
  assert.match(await page.textContent('#availability'), /2\/2 healthy/);
  assert.match(await page.textContent('[data-backend-id="b2"]'), /Backend two/);
  assert.match(await page.textContent('[data-backend-id="b2"]'), new RegExp(backends[1].url.replace(/[.:/]/g, '\\$&')));
});

test('no backend key in the JSON or the page', async () => {
  const json = await (await fetch(gatewayUrl + '/api/health/status')).text();
  for (const secret of [BACKEND_KEY, 'test-key']) {
    assert.ok(!json.includes(secret), 'key leaked in /api/health/status');
    assert.ok(!(await page.content()).includes(secret), 'key leaked in the page');
  }
});

test('a killed backend flips to unhealthy within 10 s', async (t) => {
  backends[1].child.kill('SIGKILL');
  const t0 = Date.now();
  await page.waitForSelector('[data-backend-id="b2"][data-status="unhealthy"]', { timeout: 10000 });
  t.diagnostic(`flip after ${Date.now() - t0} ms`);
  assert.equal(await page.getAttribute('[data-backend-id="b1"]', 'data-status'), 'healthy');
  assert.match(await page.textContent('#availability'), /1\/2 healthy/);
  assert.equal(await page.getAttribute('#conn', 'data-state'), 'live');
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await page.waitForTimeout(300);
  await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard.png'), fullPage: true });
});

test('phone (375 px, dark): cards stack, no horizontal scroll', async () => {
  const phone = await newPage({ viewport: { width: 375, height: 812 }, deviceScaleFactor: 2, isMobile: true, colorScheme: 'dark' });
  await phone.goto(gatewayUrl + '/');
  await phone.waitForSelector('#conn[data-state="live"]', { timeout: 10000 });
  await phone.waitForSelector('[data-backend-id="b2"][data-status="unhealthy"]', { timeout: 10000 });
  const lefts = await phone.$$eval('[data-backend-id]', (els) => els.map((e) => Math.round(e.getBoundingClientRect().left)));
  assert.equal(new Set(lefts).size, 1, 'cards in one column: ' + lefts);
  assert.ok(await phone.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'horizontal scroll');
  await phone.screenshot({ path: path.join(ARTIFACTS, 'dashboard-phone-dark.png'), fullPage: true });
  assert.deepEqual(await phone.evaluate(() => window.__csp), []);
});

test('no console errors, page errors or CSP violations', async () => {
  assert.deepEqual(problems, []);
  assert.deepEqual(await page.evaluate(() => window.__csp), []);
});

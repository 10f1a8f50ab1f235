// DEV AID ONLY - not used by the real tests (those run the real gateway: dashboard.test.mjs).
//
// A throwaway stand-in for the EdgeProxy gateway, for working on the dashboard page
// (src/EdgeProxy/Dashboard/index.html) before/without the real binary:
//   * GET /                   the page, with the same strict CSP the gateway sends
//                             (sha256 of the first <script> and first <style> element text)
//   * GET /api/health/status  changing fake JSON (same contract as the gateway)
//   * GET /api/health/events  SSE: "event: status" at once, every second, and on changes
//   * POST /__fake/flip?id=b2 | /__fake/eject?id=b1 | /__fake/remove?id=b1 | /__fake/sse?on=0
//
// Usage (from tests/e2e):
//   node fake-gateway.mjs [port]     serve for a manual look in a browser (default port 8099)
//   node fake-gateway.mjs --check    drive Debian's /usr/bin/chromium through the page's states,
//                                    print pass/fail and save screenshots to artifacts/
import http from 'node:http';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const PAGE = path.join(repo, 'src/EdgeProxy/Dashboard/index.html');
const ARTIFACTS = path.join(here, 'artifacts');

/** The CSP the gateway sends, with hashes computed like the gateway does. */
export function cspFor(html) {
  const hash = (re) => {
    const m = re.exec(html);
    if (!m) throw new Error('page has no ' + re);
    return "'sha256-" + crypto.createHash('sha256').update(m[1], 'utf8').digest('base64') + "'";
  };
  const script = hash(/<script\b[^>]*>([\s\S]*?)<\/script>/i);
  const style = hash(/<style\b[^>]*>([\s\S]*?)<\/style>/i);
  return `default-src 'none'; script-src ${script}; style-src ${style}; connect-src 'self'; ` +
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
}

// ---- fake backend state ----
function makeBackend(id, name, port, extra = {}) {
  return {
    id, name, url: `http://127.0.0.1:${port}`, weight: 1, status: 'healthy', ejected: false, ejected_until: null,
    response_time_ms: 10, last_check: null, consecutive_failures: 0, in_flight: 0, requests: 0, errors: 0,
    rps: 0, error_rate: 0, latency_p50_ms: null, latency_p99_ms: null, ttfb_p50_ms: null, ttfb_p99_ms: null,
    history: [], base: 1 + (port % 7), ...extra
  };
}

export function startFakeGateway({ port = 0, host = '127.0.0.1' } = {}) {
  const backends = [
    ['chat', 'llama-3.1-8b-instruct', makeBackend('b1', 'Node 1 (rack A)', 9101, { weight: 2 })],
    ['chat', 'llama-3.1-8b-instruct', makeBackend('b2', 'Node 2 (rack B)', 9102)],
    ['chat', 'qwen2.5-7b', makeBackend('b3', 'GPU box 3', 9103, { ejected: true })],
    ['embeddings', 'bge-small-en', makeBackend('b4', 'Embedder', 9104, { status: 'unhealthy', consecutive_failures: 3, base: 0 })],
    ['embeddings', 'bge-small-en', makeBackend('b5', 'Embedder (new)', 9105, { status: 'unknown', base: 0, response_time_ms: null })]
  ];
  const find = (id) => backends.find(([, , b]) => b.id === id)?.[2];
  let sseOn = true;
  const clients = new Set();
  const now = Date.now();

  // Seed 5 min of history so the sparklines have something to show.
  for (const [, , b] of backends) {
    for (let i = 59; i >= 0; i--) {
      const rps = b.base ? Math.max(0, b.base + Math.sin((now / 1000 - i * 5) / 40 + b.base) * b.base * 0.6) : 0;
      b.history.push({
        t: Math.floor(now / 1000) - i * 5, rps: +rps.toFixed(2), error_rate: 0,
        latency_p50_ms: b.base ? +(100 + 40 * Math.cos(i / 6 + b.base)).toFixed(1) : null,
        healthy: !(b.id === 'b3' && i < 8) && b.status !== 'unhealthy'
      });
    }
    if (b.status !== 'unknown') b.last_check = new Date(now - 1000).toISOString();
  }

  function tick() {
    const t = Date.now();
    for (const [, , b] of backends) {
      const up = b.status === 'healthy' && !b.ejected;
      b.rps = up && b.base ? +(b.base + Math.sin(t / 40000 + b.base) * b.base * 0.6 + Math.random() * 0.3).toFixed(2) : 0;
      b.in_flight = up ? Math.round(b.rps * 1.5 * Math.random()) : 0;
      b.requests += Math.round(b.rps);
      if (up && Math.random() < 0.1) b.errors++;
      b.error_rate = b.requests ? +(b.errors / Math.max(b.requests, 1) / 4).toFixed(4) : 0;
      const lat = b.rps ? 90 + Math.random() * 60 : null;
      b.latency_p50_ms = lat && +lat.toFixed(1);
      b.latency_p99_ms = lat && +(lat * 6.5).toFixed(1);
      b.ttfb_p50_ms = lat && +(lat / 4).toFixed(1);
      b.ttfb_p99_ms = lat && +(lat / 1.5).toFixed(1);
      if (b.status !== 'unknown') {
        b.last_check = new Date(t - 500).toISOString();
        b.response_time_ms = b.status === 'healthy' ? +(5 + Math.random() * 20).toFixed(1) : null;
      }
      if (b.ejected) b.ejected_until = new Date(t + 27000).toISOString();
      if (Math.floor(t / 1000) % 5 === 0) {
        b.history.push({ t: Math.floor(t / 1000), rps: b.rps, error_rate: b.error_rate, latency_p50_ms: b.latency_p50_ms, healthy: up });
        if (b.history.length > 60) b.history.shift();
      }
    }
  }

  function snapshot() {
    const data = {};
    let healthy = 0;
    for (const [svc, model, b] of backends) {
      const { base, ...pub } = b;
      ((data[svc] ??= {})[model] ??= []).push(pub);
      if (b.status === 'healthy' && !b.ejected) healthy++;
    }
    return {
      service: 'edgeproxy', version: '1.0.0', type: 'health_status', generated_at: new Date().toISOString(),
      summary: { healthy, total: backends.length, availability: backends.length ? +(healthy / backends.length).toFixed(4) : 0 },
      data
    };
  }

  function broadcast() {
    const msg = `event: status\ndata: ${JSON.stringify(snapshot())}\n\n`;
    for (const res of clients) res.write(msg);
  }
  const timer = setInterval(() => { tick(); broadcast(); }, 1000);
  tick();

  const ctl = {
    flip(id) { const b = find(id); b.status = b.status === 'healthy' ? 'unhealthy' : 'healthy'; b.consecutive_failures = b.status === 'healthy' ? 0 : 1; broadcast(); },
    eject(id) { const b = find(id); b.ejected = !b.ejected; b.ejected_until = b.ejected ? new Date(Date.now() + 30000).toISOString() : null; broadcast(); },
    remove(id) { const i = backends.findIndex(([, , b]) => b.id === id); if (i >= 0) backends.splice(i, 1); broadcast(); },
    add(svc, model, b) { backends.push([svc, model, makeBackend(b.id, b.name, 9200 + backends.length, b)]); broadcast(); },
    sse(on) { sseOn = on; if (!on) { for (const res of clients) res.end(); clients.clear(); } }
  };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    if (req.method === 'POST' && url.pathname.startsWith('/__fake/')) {
      const op = url.pathname.slice(8), id = url.searchParams.get('id');
      if (op === 'sse') ctl.sse(url.searchParams.get('on') !== '0');
      else if (ctl[op] && id) ctl[op](id);
      else { res.writeHead(404).end(); return; }
      res.writeHead(204).end();
      return;
    }
    if (req.method !== 'GET') { res.writeHead(405).end(); return; }
    if (url.pathname === '/') {
      const html = fs.readFileSync(PAGE, 'utf8'); // re-read: edit and reload
      res.writeHead(200, {
        'content-type': 'text/html; charset=utf-8', 'content-security-policy': cspFor(html),
        'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer', 'cache-control': 'no-store'
      });
      res.end(html);
    } else if (url.pathname === '/api/health/status') {
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify(snapshot()));
    } else if (url.pathname === '/api/health/events' && sseOn) {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
      res.write(`event: status\ndata: ${JSON.stringify(snapshot())}\n\n`);
      clients.add(res);
      req.on('close', () => clients.delete(res));
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
    }
  });

  return new Promise((resolve) => server.listen(port, host, () => {
    const url = `http://${host}:${server.address().port}`;
    resolve({
      url, ...ctl,
      close() { // "kill" the gateway: stop listening, drop every connection
        clearInterval(timer);
        for (const res of clients) res.destroy();
        server.closeAllConnections();
        return new Promise((r) => server.close(() => r()));
      }
    });
  }));
}

// ---- --check: drive Chromium through the page's states ----
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

async function check() {
  const { chromium } = await import('playwright-core');
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const size = fs.statSync(PAGE).size;
  console.log(`page size ${size} bytes`);
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: CHROMIUM_ARGS });
  let failed = 0;
  const step = async (name, fn) => {
    const t0 = Date.now();
    try { await fn(); console.log(`ok   ${name} (${Date.now() - t0} ms)`); } catch (e) { failed++; console.log(`FAIL ${name}\n     ${e.message.split('\n').join('\n     ')}`); }
  };
  const open = async (gw, opts) => {
    const ctx = await browser.newContext(opts);
    const page = await ctx.newPage();
    const problems = [];
    page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`); });
    page.on('pageerror', (e) => problems.push('pageerror: ' + e.message));
    await page.addInitScript(() => { // runs outside the page CSP
      window.__csp = [];
      document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));
    });
    const resp = await page.goto(gw.url + '/');
    assert.match(resp.headers()['content-security-policy'], /script-src 'sha256-/);
    return { ctx, page, problems };
  };
  const status = (page, id) => page.getAttribute(`[data-backend-id="${id}"]`, 'data-status');

  // 1. desktop, light: live via SSE
  let gw = await startFakeGateway();
  let { ctx, page, problems } = await open(gw, { viewport: { width: 1280, height: 900 }, colorScheme: 'light' });
  await step('goes live over SSE', () => page.waitForSelector('#conn[data-state="live"]', { timeout: 3000 }));
  await step('lists all backends with their status', async () => {
    await page.waitForSelector('[data-backend-id="b5"]', { timeout: 3000 });
    const got = await page.$$eval('[data-backend-id]', (els) => els.map((e) => e.dataset.backendId + '=' + e.dataset.status));
    assert.deepEqual(got, ['b1=healthy', 'b2=healthy', 'b3=ejected', 'b4=unhealthy', 'b5=unknown']);
    assert.match(await page.textContent('#availability'), /2\/5 healthy/);
    assert.match(await page.textContent('[data-backend-id="b3"]'), /until \d\d:\d\d:\d\d/);
    assert.match(await page.textContent('[data-backend-id="b5"] .metrics'), /\u2013/);
    assert.equal(await page.$$eval('section.svc', (s) => s.map((x) => x.dataset.service).join()), 'chat,embeddings');
  });
  await page.evaluate(() => { window.__b1 = document.querySelector('[data-backend-id="b1"]'); });
  await step('status flip shows within 1 s (SSE)', async () => {
    const t0 = Date.now();
    await fetch(gw.url + '/__fake/flip?id=b2', { method: 'POST' });
    await page.waitForSelector('[data-backend-id="b2"][data-status="unhealthy"]', { timeout: 1000 });
    console.log(`     flip seen after ${Date.now() - t0} ms`);
    assert.match(await page.textContent('#availability'), /1\/5 healthy/);
    await fetch(gw.url + '/__fake/flip?id=b2', { method: 'POST' });
    await page.waitForSelector('[data-backend-id="b2"][data-status="healthy"]', { timeout: 1000 });
  });
  await step('updates in place (same DOM node)', async () => {
    await page.waitForTimeout(1500);
    assert.equal(await page.evaluate(() => window.__b1 === document.querySelector('[data-backend-id="b1"]') && window.__b1.isConnected), true);
  });
  await step('relative time ticks', async () => assert.match(await page.textContent('[data-backend-id="b1"]'), /\d+ s ago/));
  await page.screenshot({ path: path.join(ARTIFACTS, 'fake-desktop-light.png'), fullPage: true });
  await step('text from the API is escaped', async () => {
    gw.add('chat', 'qwen2.5-7b', { id: 'x<b>1', name: '<img src=x id=pwn>"&' });
    await page.waitForSelector('[data-backend-id="x<b>1"]', { timeout: 2000 });
    assert.equal(await page.$('#pwn'), null);
    assert.equal(await page.textContent('[data-backend-id="x<b>1"] .name'), '<img src=x id=pwn>"&');
  });
  await step('a removed backend disappears', async () => {
    gw.remove('x<b>1');
    await page.waitForSelector('[data-backend-id="x<b>1"]', { state: 'detached', timeout: 2000 });
  });
  await step('no console errors/warnings, no CSP violations', async () => {
    assert.deepEqual(problems, []);
    assert.deepEqual(await page.evaluate(() => window.__csp), []);
  });
  await ctx.close();

  // 2. phone, dark
  ({ ctx, page, problems } = await open(gw, { viewport: { width: 375, height: 812 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true, colorScheme: 'dark' }));
  await step('phone: cards stack in one column, no horizontal scroll', async () => {
    await page.waitForSelector('[data-backend-id="b5"]');
    const xs = await page.$$eval('[data-backend-id]', (els) => els.map((e) => Math.round(e.getBoundingClientRect().left)));
    assert.equal(new Set(xs).size, 1, 'all cards share one column: ' + xs);
    assert.equal(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), true);
  });
  await page.screenshot({ path: path.join(ARTIFACTS, 'fake-phone-dark.png'), fullPage: true });
  await page.screenshot({ path: path.join(ARTIFACTS, 'fake-phone-dark-top.png') });
  await step('phone: no console errors', async () => assert.deepEqual(problems, []));
  await ctx.close();

  // 3. SSE endpoint 404 -> polling
  gw.sse(false);
  ({ ctx, page, problems } = await open(gw, { viewport: { width: 1280, height: 900 } }));
  await step('falls back to polling when SSE 404s', async () => {
    await page.waitForSelector('#conn[data-state="polling"]', { timeout: 3000 });
    await page.waitForSelector('[data-backend-id="b1"][data-status="healthy"]', { timeout: 3000 });
    await fetch(gw.url + '/__fake/flip?id=b1', { method: 'POST' });
    await page.waitForSelector('[data-backend-id="b1"][data-status="unhealthy"]', { timeout: 7000 });
    await fetch(gw.url + '/__fake/flip?id=b1', { method: 'POST' });
  });
  await step('goes back to live when SSE returns (retry ~15 s)', async () => {
    gw.sse(true);
    await page.waitForSelector('#conn[data-state="live"]', { timeout: 17000 });
  });

  // 4. gateway dies -> disconnected; comes back -> recovers
  const port = new URL(gw.url).port;
  await step('shows disconnected when the gateway dies', async () => {
    await gw.close();
    await page.waitForSelector('#conn[data-state="disconnected"]', { timeout: 6000 });
    assert.equal(await page.isVisible('#banner'), true);
    assert.equal(await page.evaluate(() => document.body.classList.contains('stale')), true);
    await page.waitForTimeout(400); // let the dimming transition finish for the screenshot
  });
  await page.screenshot({ path: path.join(ARTIFACTS, 'fake-disconnected.png') });
  await step('recovers when the gateway is back', async () => {
    gw = await startFakeGateway({ port: Number(port) });
    await page.waitForSelector('#conn[data-state="live"]', { timeout: 12000 });
    assert.equal(await page.isVisible('#banner'), false);
  });
  await step('no CSP violations in fallback runs', async () => assert.deepEqual(await page.evaluate(() => window.__csp), []));
  await ctx.close();
  await gw.close();
  await browser.close();
  console.log(failed ? `${failed} check(s) failed` : 'all checks passed');
  process.exitCode = failed ? 1 : 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (process.argv.includes('--check')) await check();
  else {
    const gw = await startFakeGateway({ port: Number(process.argv[2] || 8099) });
    console.log(`fake gateway (dev aid) on ${gw.url}`);
  }
}

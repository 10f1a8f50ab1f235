// The OpenAI SDK and curl --http2 against the gateway terminating TLS (TLS_CERT_FILE/TLS_KEY_FILE)
// with a certificate from a test CA made here; clients trust that CA only (NODE_EXTRA_CA_CERTS for
// the SDK, which Node reads at start, so the SDK runs in a child node process; --cacert for curl).
//
//   ./build.sh && dotnet build EdgeProxy.sln -c Release && cd tests/e2e && npm ci && node --test openai-sdk-tls.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Processes, makeTestCertificates } from './lib/processes.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const GATEWAY_KEY = 'gateway-key';
const procs = new Processes();
let gateway, tls, dir;

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'edgeproxy-e2e-tls-'));
  tls = makeTestCertificates(dir, (cmd, args) => execFileSync(cmd, args, { stdio: 'pipe', timeout: 30000 }));
  const backend = await procs.startBackend('b1');
  gateway = await procs.startGateway(
    { services: { svc: { models: { model: { backends: [{ id: 'b1', name: 'Backend one', url: backend.url }] } } } } },
    { BACKEND_API_KEY: GATEWAY_KEY, LOG_LEVEL: 'warning' }, tls);
});

after(async () => {
  await procs.stopAll();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** Runs an ES module snippet in a child node that trusts the test CA; resolves with its stdout. */
function runWithCa(source) {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', source], {
    cwd: here, encoding: 'utf8', timeout: 60000,
    env: { ...process.env, NODE_EXTRA_CA_CERTS: tls.ca, GW_URL: gateway.url, GW_KEY: GATEWAY_KEY },
  });
  assert.equal(r.status, 0, `child failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

test('OpenAI SDK over https: chat completion and a streamed one', () => {
  const out = runWithCa(`
    import OpenAI from 'openai';
    const client = new OpenAI({ baseURL: process.env.GW_URL + '/svc/model/v1', apiKey: process.env.GW_KEY, maxRetries: 0, timeout: 20000 });
    const c = await client.chat.completions.create({ model: 'test-model', messages: [{ role: 'user', content: 'hi' }] });
    console.log('COMPLETION ' + c.choices[0].message.content);
    const stream = await client.chat.completions.create({ model: 'test-model', stream: true, messages: [{ role: 'user', content: 'hi' }] });
    let text = '', chunks = 0;
    for await (const chunk of stream) { chunks++; text += chunk.choices[0]?.delta?.content ?? ''; }
    console.log('STREAM ' + chunks + ' ' + text);
  `);
  assert.match(out, /^COMPLETION Hello from b1! This is a test answer\.$/m);
  const m = /^STREAM (\d+) (.*)$/m.exec(out);
  assert.ok(m, out);
  assert.ok(Number(m[1]) > 1, `expected several chunks, got ${m[1]}`);
  assert.equal(m[2], 'Hello from b1! This is a streamed answer.');
});

test('the SDK refuses the gateway without the test CA (the certificate is really checked)', () => {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', `
    import OpenAI from 'openai';
    const client = new OpenAI({ baseURL: process.env.GW_URL + '/svc/model/v1', apiKey: 'k', maxRetries: 0, timeout: 20000 });
    try { await client.models.list(); console.log('UNEXPECTED SUCCESS'); } catch (e) { console.log('REFUSED ' + e.constructor.name); }
  `], { cwd: here, encoding: 'utf8', timeout: 60000, env: { ...process.env, NODE_EXTRA_CA_CERTS: '', GW_URL: gateway.url } });
  assert.match(r.stdout, /^REFUSED APIConnectionError$/m, r.stdout + r.stderr);
});

test('curl --http2 over TLS streams SSE', () => {
  const r = spawnSync('curl', ['-sS', '-N', '--http2', '--max-time', '30', '--cacert', tls.ca,
    '-H', `Authorization: Bearer ${GATEWAY_KEY}`, '-w', '\\nHTTP_VERSION=%{http_version}\\n',
    `${gateway.url}/svc/model/sse?events=3&delayMs=10`], { encoding: 'utf8', timeout: 40000 });
  if (r.error?.code === 'ENOENT') return; // no curl here (CI installs it)
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /"i":2/);
  assert.match(r.stdout, /data: \[DONE\]/);
  assert.match(r.stdout, /^HTTP_VERSION=2$/m);
});

// The OpenAI SDK (npm `openai`) and curl -N, unchanged, through the real gateway to a real streaming
// backend (issue #4, 7): non-streaming and streaming chat completions, models.list(), SSE and NDJSON.
//
//   ./build.sh && dotnet build EdgeProxy.sln -c Release && cd tests/e2e && npm ci && node --test openai-sdk.test.mjs
//
// Gateway: env EDGEPROXY_BIN (default <repo>/dist/edgeproxy; a .dll path runs the JIT build under dotnet).
// Backend: tests/EdgeProxy.TestBackend (deterministic answers "Hello from <id>! This is a ... answer.").
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import OpenAI from 'openai';
import { Processes } from './lib/processes.mjs';

const GATEWAY_KEY = 'gateway-key';
const procs = new Processes();
let gateway, client;

before(async () => {
  const backend = await procs.startBackend('b1');
  gateway = await procs.startGateway(
    { services: { svc: { models: { model: { backends: [{ id: 'b1', name: 'Backend one', url: backend.url }] } } } } },
    { BACKEND_API_KEY: GATEWAY_KEY, LOG_LEVEL: 'warning' });
  client = new OpenAI({ baseURL: `${gateway.url}/svc/model/v1`, apiKey: GATEWAY_KEY, maxRetries: 0, timeout: 20000 });
});

after(() => procs.stopAll());

test('non-streaming chat completion', async () => {
  const completion = await client.chat.completions.create({
    model: 'test-model',
    messages: [{ role: 'user', content: 'Say hello please' }],
  });
  assert.equal(completion.object, 'chat.completion');
  assert.equal(completion.choices[0].message.role, 'assistant');
  assert.equal(completion.choices[0].message.content, 'Hello from b1! This is a test answer.');
  assert.equal(completion.choices[0].finish_reason, 'stop');
  assert.deepEqual(completion.usage, { prompt_tokens: 3, completion_tokens: 8, total_tokens: 11 });
});

test('streaming chat completion arrives chunk by chunk', async () => {
  // 200 ms between the backend's chunks. A buffering gateway would hand them over all at once at the
  // end; here the first and last content chunk must be at least half the backend's spread apart
  // (a lower bound, so a slow machine cannot fail it).
  const delayMs = 200;
  const stream = await client.chat.completions.create(
    { model: 'test-model', stream: true, messages: [{ role: 'user', content: 'Stream please' }] },
    { query: { delayMs } });
  const parts = [];
  const arrivals = [];
  let finish = null;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    const choice = chunk.choices[0];
    if (choice.delta?.content) {
      parts.push(choice.delta.content);
      arrivals.push(performance.now());
    }
    if (choice.finish_reason) finish = choice.finish_reason;
  }
  const expected = 'Hello from b1! This is a streamed answer.';
  assert.ok(parts.length > 1, `expected several chunks, got ${parts.length}`);
  assert.equal(parts.length, expected.split(' ').length); // one chunk per word
  assert.equal(parts.join(''), expected);
  assert.equal(finish, 'stop');
  const spread = arrivals.at(-1) - arrivals[0];
  assert.ok(spread >= (parts.length - 1) * delayMs * 0.5,
    `chunks arrived within ${spread.toFixed(0)} ms of each other: the gateway held them back`);
});

test('models.list()', async () => {
  const models = [];
  for await (const model of client.models.list()) models.push(model);
  assert.deepEqual(models.map((m) => m.id), ['test-model']);
  assert.equal(models[0].owned_by, 'edgeproxy-test');
});

test('a wrong gateway key is an AuthenticationError, not a silent success', async () => {
  const wrong = new OpenAI({ baseURL: `${gateway.url}/svc/model/v1`, apiKey: 'not-the-key', maxRetries: 0 });
  await assert.rejects(
    wrong.chat.completions.create({ model: 'test-model', messages: [{ role: 'user', content: 'hi' }] }),
    (e) => e instanceof OpenAI.AuthenticationError && e.status === 401);
});

/** Runs curl -sSN (bounded by --max-time) and resolves with stdout, exit code and when the first byte came. */
function curl(args) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn('curl', ['-sSN', '--max-time', '20', '-H', `Authorization: Bearer ${GATEWAY_KEY}`, ...args]);
    let out = '';
    let firstByteAt = null;
    let err = '';
    child.stdout.on('data', (d) => { firstByteAt ??= performance.now() - started; out += d; });
    child.stderr.on('data', (d) => { err += d; });
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, out, err, firstByteAt, totalMs: performance.now() - started }));
  });
}

test('curl -N receives SSE events as they are sent', async () => {
  const r = await curl([`${gateway.url}/svc/model/sse?events=5&delayMs=300`]);
  assert.equal(r.code, 0, r.err);
  const data = r.out.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6));
  assert.equal(data.length, 6);
  data.slice(0, 5).forEach((d, k) => assert.equal(JSON.parse(d).i, k));
  assert.equal(data[5], '[DONE]');
  // The first event reached curl long before the stream ended (4 x 300 ms later).
  assert.ok(r.totalMs - r.firstByteAt >= 600, `first byte at ${r.firstByteAt.toFixed(0)} ms, end at ${r.totalMs.toFixed(0)} ms`);
});

test('curl -N receives NDJSON lines', async () => {
  const r = await curl([`${gateway.url}/svc/model/ndjson?lines=4&delayMs=300`]);
  assert.equal(r.code, 0, r.err);
  const lines = r.out.trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(lines.map((l) => l.i), [0, 1, 2, 3]);
  assert.ok(lines.every((l) => l.id === 'b1'));
  assert.ok(r.totalMs - r.firstByteAt >= 450, `first byte at ${r.firstByteAt.toFixed(0)} ms, end at ${r.totalMs.toFixed(0)} ms`);
});

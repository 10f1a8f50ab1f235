// Process helpers shared by the end-to-end tests: the real gateway binary and real test backends,
// all on 127.0.0.1, every wait bounded, every child killed by the test that started it.
//
//   const procs = new Processes();            // one per test file
//   const backend = await procs.startBackend('b1');
//   const gateway = await procs.startGateway({ services: {...} }, { BACKEND_API_KEY: 'k' });
//   ...
//   await procs.stopAll();                    // in after()
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repo = path.resolve(here, '../../..');
/** The gateway under test: env EDGEPROXY_BIN (a .dll runs under `dotnet`), default <repo>/dist/edgeproxy from ./build.sh. */
export const GATEWAY_BIN = process.env.EDGEPROXY_BIN || path.join(repo, 'dist/edgeproxy');
export const BACKEND_DLL = process.env.EDGEPROXY_TEST_BACKEND_DLL ||
  path.join(repo, 'tests/EdgeProxy.TestBackend/bin/Release/net10.0/EdgeProxy.TestBackend.dll');

/** A loopback port that was free a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer().once('error', reject).listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Polls fn (truthy = done) every 100 ms for at most ms; an error with .fatal set stops at once. */
export async function waitFor(what, fn, ms) {
  const end = Date.now() + ms;
  for (;;) {
    try { if (await fn()) return; } catch (e) { if (e.fatal) throw e; /* not yet */ }
    if (Date.now() > end) throw new Error('timed out waiting for ' + what);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** GET over https trusting only the CA file ca; resolves with the status code. */
export function httpsStatus(url, ca) {
  return new Promise((resolve, reject) => {
    https.get(url, { ca: fs.readFileSync(ca), timeout: 2000 }, (res) => { res.resume(); resolve(res.statusCode); })
      .on('error', reject).on('timeout', function () { this.destroy(new Error('timeout')); });
  });
}

/**
 * A test CA and a leaf for 127.0.0.1/localhost signed by it, made with the openssl CLI into dir:
 * { ca, cert, key } file paths.
 */
export function makeTestCertificates(dir, run) {
  const f = (name) => path.join(dir, name);
  fs.writeFileSync(f('leaf.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.pem'),
    '-days', '2', '-subj', '/CN=EdgeProxy e2e test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign']);
  run('openssl', ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('key.pem'), '-out', f('leaf.csr'), '-subj', '/CN=localhost']);
  run('openssl', ['x509', '-req', '-in', f('leaf.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '2',
    '-out', f('cert.pem'), '-extfile', f('leaf.ext')]);
  return { ca: f('ca.pem'), cert: f('cert.pem'), key: f('key.pem') };
}

export class Processes {
  children = [];
  dirs = [];

  /** Spawns a child with its stdout/stderr kept (last 16 KB) for failure messages. */
  start(cmd, args, opts = {}) {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    child.log = '';
    const keep = (d) => { child.log = (child.log + d).slice(-16000); };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.exited = new Promise((r) => child.once('exit', (code, sig) => r(code ?? sig)));
    this.children.push(child);
    return child;
  }

  /** A test backend process; resolves with { id, url, child } from its "LISTENING http://127.0.0.1:PORT" line. */
  startBackend(id) {
    if (!fs.existsSync(BACKEND_DLL)) throw new Error(`test backend not built (dotnet build -c Release): ${BACKEND_DLL}`);
    const child = this.start('dotnet', [BACKEND_DLL, '--urls', 'http://127.0.0.1:0', '--id', id]);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`backend ${id} did not start:\n${child.log}`)), 30000);
      let buf = '';
      child.stdout.on('data', (d) => {
        buf += d;
        const m = /^LISTENING (http:\/\/\S+)\s*$/m.exec(buf);
        if (m) { clearTimeout(timer); resolve({ id, url: m[1], child }); }
      });
      child.exited.then((code) => { clearTimeout(timer); reject(new Error(`backend ${id} exited (${code}):\n${child.log}`)); });
    });
  }

  /**
   * The gateway in a fresh temp directory (no stray .env) with backends.json = config and a clean
   * environment plus env; resolves with { url, port, child } once GET /health answers.
   * With tls = { cert, key, ca } (PEM file paths), the gateway terminates TLS and url is https.
   */
  async startGateway(config, env = {}, tls = null) {
    if (!fs.existsSync(GATEWAY_BIN)) throw new Error(`gateway binary missing (./build.sh): ${GATEWAY_BIN}`);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'edgeproxy-e2e-'));
    this.dirs.push(dir);
    const configPath = path.join(dir, 'backends.json');
    fs.writeFileSync(configPath, JSON.stringify(config, null, 2));
    const port = await freePort();
    const url = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;
    if (tls) env = { TLS_CERT_FILE: tls.cert, TLS_KEY_FILE: tls.key, ...env };
    const [cmd, args] = GATEWAY_BIN.endsWith('.dll') ? ['dotnet', [GATEWAY_BIN]] : [GATEWAY_BIN, []];
    const child = this.start(cmd, args, {
      cwd: dir,
      env: { PATH: process.env.PATH, HOME: dir, PORT: String(port), HOST: '127.0.0.1', BACKENDS_CONFIG_PATH: configPath, ...env },
    });
    await waitFor('gateway /health', async () => {
      if (child.exitCode !== null) throw Object.assign(new Error(`gateway exited (${child.exitCode})`), { fatal: true });
      return tls ? (await httpsStatus(url + '/health', tls.ca)) === 200 : (await fetch(url + '/health')).ok;
    }, 30000).catch((e) => { throw new Error(e.message + '\n--- gateway log ---\n' + child.log); });
    return { url, port, child };
  }

  async stop(child) {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 3000);
    await child.exited;
    clearTimeout(t);
  }

  async stopAll() {
    await Promise.all(this.children.map((c) => this.stop(c)));
    for (const dir of this.dirs) fs.rmSync(dir, { recursive: true, force: true });
  }
}

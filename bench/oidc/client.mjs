#!/usr/bin/env node
// The one load client of the OIDC benchmark, used unchanged against every provider.
//
//   node client.mjs SETUP.json [--n N] [--m M] [--c C] [--chunk K]
//   (or BENCH_N / BENCH_M / BENCH_C / BENCH_CHUNK in the environment)
//
// Flow (authorization code + PKCE S256 + state + nonce, scope from the setup), driven by
// `openid-client` 6 (discovery, authorization URL, client authentication incl.
// private_key_jwt, token request, ID token validation incl. the JWS signature):
//   1. discovery from setup.issuer;
//   2. login: if setup.cookies is empty, one complete flow lets the OP's interaction log in
//      and consent (the cookie jar fills);
//   3. latency: N sequential complete flows, each timed from the first authorize request to
//      the validated ID token;
//   4. throughput: M codes, collected with C concurrent workers in chunks of K (not timed),
//      each chunk exchanged right away with C concurrent workers doing the full
//      authorizationCodeGrant (timed: exchange wall time only).
// Nothing here is specific to one provider beyond what the setup file says.

import * as crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

import * as oidc from 'openid-client';

const USAGE = 'usage: node client.mjs SETUP.json [--n N] [--m M] [--c C] [--chunk K] [--threads T]';
const { values: opts, positionals } = isMainThread
  ? parseArgs({
    allowPositionals: true,
    options: {
      n: { type: 'string' },
      m: { type: 'string' },
      c: { type: 'string' },
      chunk: { type: 'string' },
      threads: { type: 'string' },
    },
  })
  : { values: {}, positionals: [workerData.setupPath] };

if (positionals.length !== 1) {
  console.error(USAGE);
  process.exit(2);
}

const intOpt = (v, env, dflt) => {
  const x = Number(v ?? process.env[env] ?? dflt);
  if (!Number.isInteger(x) || x < 0) throw new Error(`bad ${env}: ${v ?? process.env[env]}`);
  return x;
};
const N = intOpt(opts.n, 'BENCH_N', 300);
const M = intOpt(opts.m, 'BENCH_M', 4000);
const C = Math.max(1, intOpt(opts.c, 'BENCH_C', 16));
const CHUNK = Math.max(1, intOpt(opts.chunk, 'BENCH_CHUNK', 1000));
const THREADS = Math.max(1, intOpt(opts.threads, 'BENCH_THREADS', 2));
const MAX_HOPS = 10;

const setupPath = positionals[0];
const setup = JSON.parse(fs.readFileSync(setupPath, 'utf8'));
for (const f of ['name', 'issuer', 'client_id', 'redirect_uri', 'scope', 'auth']) {
  if (typeof setup[f] !== 'string' || !setup[f]) throw new Error(`setup: missing "${f}"`);
}

// The OP's processes, when known (BENCH_OP_PID, Linux): a comma-separated list of pids and of
// `comm:NAME` entries (every process whose command name is NAME when the CPU time is read,
// e.g. `comm:postgres` for a database server the OP uses, whose connections may come and go).
// Their CPU time is read from /proc around the latency phase and around each exchange, so
// that the OP's own cost per flow and per token is reported beside the rates, whatever the
// client costs.
const OP_SPECS = (process.env.BENCH_OP_PID ?? '').split(',').map((x) => x.trim()).filter(Boolean);
for (const spec of OP_SPECS) {
  if (!(/^[1-9][0-9]*$/.test(spec) || /^comm:[^,]+$/.test(spec))) {
    throw new Error(`bad BENCH_OP_PID entry: ${spec} (a pid or comm:NAME)`);
  }
}
const OP_PID = OP_SPECS.length ? OP_SPECS.join(',') : null;
let clockTicks = 100;
try {
  clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
} catch { /* keep 100 */ }
/** The OP processes' user + system CPU time in ms (a process that is gone counts 0), or null. */
function opCpuMs() {
  if (!OP_SPECS.length) return null;
  const pids = new Set(OP_SPECS.filter((x) => !x.startsWith('comm:')));
  const names = new Set(OP_SPECS.filter((x) => x.startsWith('comm:')).map((x) => x.slice(5)));
  if (names.size) {
    for (const pid of fs.readdirSync('/proc').filter((d) => /^[0-9]+$/.test(d))) {
      try {
        if (names.has(fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim())) pids.add(pid);
      } catch { /* gone */ }
    }
  }
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]);
    } catch { /* gone */ }
  }
  return (ticks * 1000) / clockTicks;
}

const FETCH = process.env.BENCH_FETCH ?? 'node';
if (FETCH !== 'node' && FETCH !== 'undici') throw new Error(`bad BENCH_FETCH: ${FETCH} (node or undici)`);

const out = (...a) => console.log(...a);

// ---------------------------------------------------------------- HTTP
// Every request of the client (discovery, JWKS, authorize, token) goes through `httpFetch`,
// handed to openid-client as its `customFetch`. With BENCH_FETCH=node (the default) it is a
// small Fetch-API shim over node:http with a keep-alive agent: Node's built-in fetch (undici)
// costs the client about 1 ms of CPU per request, which made the client, not the OP, the
// limit of the throughput phase. BENCH_FETCH=undici uses the built-in fetch instead.
const agents = {
  'http:': new http.Agent({ keepAlive: true, maxSockets: 1024 }),
  'https:': new https.Agent({ keepAlive: true, maxSockets: 1024 }),
};
const NULL_BODY = new Set([101, 204, 205, 304]);

function nodeFetch(input, init = {}) {
  const url = new URL(typeof input === 'string' ? input : input.href ?? String(input));
  const mod = url.protocol === 'https:' ? https : http;
  const headers = {};
  if (init.headers instanceof Headers) {
    for (const [k, v] of init.headers) headers[k] = v;
  } else if (init.headers) {
    Object.assign(headers, init.headers);
  }
  let body = init.body;
  if (body instanceof URLSearchParams) body = body.toString();
  if (body != null && typeof body !== 'string' && !Buffer.isBuffer(body)) {
    throw new TypeError('nodeFetch: unsupported body type');
  }
  if (body != null) headers['content-length'] = Buffer.byteLength(body);
  return new Promise((resolve, reject) => {
    const req = mod.request(url, { method: init.method ?? 'GET', headers, agent: agents[url.protocol] }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const h = new Headers();
        for (let i = 0; i < res.rawHeaders.length; i += 2) h.append(res.rawHeaders[i], res.rawHeaders[i + 1]);
        const status = res.statusCode;
        resolve(new Response(NULL_BODY.has(status) ? null : Buffer.concat(chunks), {
          status, statusText: res.statusMessage, headers: h,
        }));
      });
    });
    req.on('error', (err) => reject(Object.assign(new TypeError('fetch failed'), { cause: err })));
    if (body != null) req.end(body);
    else req.end();
  });
}
const httpFetch = FETCH === 'node' ? nodeFetch : (url, init) => fetch(url, init);
const note = (...a) => console.error(...a);

// ---------------------------------------------------------------- cookie jar
// Plain object name -> value. Attributes are ignored except deletion by Max-Age<=0 or an
// Expires date in the past. Cookies are sent to every request to the OP.
const jar = { ...(setup.cookies ?? {}) };
const setupHadCookies = Object.keys(jar).length > 0;

function storeCookies(res) {
  for (const line of res.headers.getSetCookie()) {
    const [pair, ...attrs] = line.split(';');
    const eq = pair.indexOf('=');
    if (eq <= 0) continue;
    const name = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1).trim();
    let expired = false;
    for (const a of attrs) {
      const i = a.indexOf('=');
      const k = (i < 0 ? a : a.slice(0, i)).trim().toLowerCase();
      const v = i < 0 ? '' : a.slice(i + 1).trim();
      if (k === 'max-age' && Number(v) <= 0) expired = true;
      if (k === 'expires') {
        const t = Date.parse(v);
        if (!Number.isNaN(t) && t <= Date.now()) expired = true;
      }
    }
    if (expired) delete jar[name];
    else jar[name] = value;
  }
}

function cookieHeader() {
  return Object.entries(jar).map(([k, v]) => `${k}=${v}`).join('; ');
}

// ---------------------------------------------------------------- errors
class FlowError extends Error {
  constructor(step, kind, detail) {
    super(`${step}: ${kind}${detail ? ` — ${detail}` : ''}`);
    this.step = step;
    this.kind = kind;
  }
}

function errorKey(err) {
  if (err instanceof FlowError) return `${err.step}:${err.kind}`;
  if (err?.error) return String(err.error); // ResponseBodyError / AuthorizationResponseError
  if (err?.name === 'WWWAuthenticateChallengeError') {
    const e = err.cause?.[0]?.parameters?.error;
    return e ? String(e) : `http_${err.status}`;
  }
  if (err?.code) return String(err.code); // ClientError (e.g. OAUTH_JWT_CLAIM_COMPARISON_FAILED)
  if (err?.cause?.code) return String(err.cause.code); // fetch: ECONNRESET, ...
  return err?.name ?? 'Error';
}

function errorDetail(err) {
  const parts = [`${err?.name ?? 'Error'}: ${err?.message ?? err}`];
  if (err?.status) parts.push(`status ${err.status}`);
  if (err?.error_description) parts.push(`error_description: ${err.error_description}`);
  if (err?.cause && typeof err.cause === 'object' && !(err.cause instanceof Error)) {
    try { parts.push(`cause: ${JSON.stringify(err.cause)}`); } catch { /* ignore */ }
  } else if (err?.cause) {
    parts.push(`cause: ${err.cause?.message ?? err.cause}`);
  }
  return parts.join('; ');
}

// ---------------------------------------------------------------- client config
async function clientAuth() {
  switch (setup.auth) {
    case 'client_secret_basic':
      if (typeof setup.client_secret !== 'string') throw new Error('setup: missing "client_secret"');
      return oidc.ClientSecretBasic(setup.client_secret);
    case 'private_key_jwt': {
      if (typeof setup.client_key_pem !== 'string') throw new Error('setup: missing "client_key_pem"');
      // PKCS#8 (or SEC1) PEM -> PKCS#8 DER -> WebCrypto ECDSA P-256 signing key.
      const der = crypto.createPrivateKey(fs.readFileSync(setup.client_key_pem))
        .export({ type: 'pkcs8', format: 'der' });
      const key = await crypto.webcrypto.subtle.importKey(
        'pkcs8', der, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign'],
      );
      return oidc.PrivateKeyJwt(setup.client_key_kid ? { key, kid: setup.client_key_kid } : key);
    }
    default:
      throw new Error(`setup: unsupported auth "${setup.auth}"`);
  }
}

const redirect = new URL(setup.redirect_uri);
const redirectBase = redirect.origin + redirect.pathname;

let config;
try {
  config = await oidc.discovery(
    new URL(setup.issuer),
    setup.client_id,
    {
      redirect_uris: [setup.redirect_uri],
      response_types: ['code'],
      token_endpoint_auth_method: setup.auth,
      id_token_signed_response_alg: 'ES256',
    },
    await clientAuth(),
    { execute: [oidc.allowInsecureRequests], [oidc.customFetch]: httpFetch },
  );
  config[oidc.customFetch] = httpFetch;
} catch (err) {
  console.log(`FAILED during discovery of ${setup.issuer}: ${errorDetail(err)}`);
  console.log(JSON.stringify({ provider: setup.name, auth: setup.auth, ok: false, failed_step: 'discovery', error: errorKey(err) }));
  process.exit(1);
}
// Verify the ID token's JWS signature against the OP's jwks_uri (cached) as well.
oidc.enableNonRepudiationChecks(config);
const meta = config.serverMetadata();

// ---------------------------------------------------------------- one flow
async function newRequest() {
  const pkceCodeVerifier = oidc.randomPKCECodeVerifier();
  const code_challenge = await oidc.calculatePKCECodeChallenge(pkceCodeVerifier);
  const expectedState = oidc.randomState();
  const expectedNonce = oidc.randomNonce();
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: setup.redirect_uri,
    scope: setup.scope,
    response_type: 'code',
    code_challenge,
    code_challenge_method: 'S256',
    state: expectedState,
    nonce: expectedNonce,
  });
  return { url, checks: { pkceCodeVerifier, expectedState, expectedNonce, idTokenExpected: true } };
}

// GET the authorization URL and follow redirects (cookie jar, manual) until the Location
// is the redirect_uri; returns that callback URL and how many requests it took.
async function followToCallback(start) {
  let current = start;
  for (let requests = 1; requests <= MAX_HOPS; requests += 1) {
    const headers = {};
    const cookie = cookieHeader();
    if (cookie) headers.cookie = cookie;
    let res;
    try {
      res = await httpFetch(current.href ?? current, { redirect: 'manual', headers });
    } catch (err) {
      throw new FlowError('authorize', err?.cause?.code ?? 'fetch_failed', `${current}: ${err?.cause?.message ?? err.message}`);
    }
    storeCookies(res);
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location) {
      await res.arrayBuffer().catch(() => {});
      const next = new URL(location, current);
      if (next.origin + next.pathname === redirectBase) {
        if (!next.searchParams.has('code')) {
          const e = next.searchParams.get('error') ?? 'no_code';
          throw new FlowError('authorize', e, `redirect_uri reached without a code: ${next.href}`);
        }
        return { callback: next, requests };
      }
      current = next;
      continue;
    }
    const body = (await res.text().catch(() => '')).slice(0, 2000);
    throw new FlowError('authorize', `http_${res.status}`, `unexpected response to GET ${current}\n${body}`);
  }
  throw new FlowError('authorize', 'too_many_redirects', `more than ${MAX_HOPS} requests from ${start}`);
}

let firstIdToken;
async function exchange(callback, checks) {
  const tokens = await oidc.authorizationCodeGrant(config, callback, checks);
  const claims = tokens.claims();
  if (!claims?.sub) throw new FlowError('token', 'no_id_token_sub');
  if (!firstIdToken) {
    const header = JSON.parse(Buffer.from(tokens.id_token.split('.')[0], 'base64url'));
    firstIdToken = `alg ${header.alg}, ${tokens.id_token.length} chars, claims ${Object.keys(claims).join(' ')}`
      + `; token response fields ${Object.keys(tokens).filter((k) => tokens[k] !== undefined).join(' ')}`;
  }
  return { tokens, claims };
}

// ---------------------------------------------------------------- stats
function pct(sorted, p) {
  if (!sorted.length) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}
const r2 = (x) => (Number.isFinite(x) ? Math.round(x * 100) / 100 : null);
const sortNum = (a) => [...a].sort((x, y) => x - y);

async function pool(count, concurrency, fn) {
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next;
      next += 1;
      await fn(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}

function fail(step, err) {
  out(`FAILED during ${step}: ${errorDetail(err)}`);
  out(JSON.stringify({
    provider: setup.name, auth: setup.auth, ok: false, failed_step: step, error: errorKey(err),
  }));
  process.exit(1);
}

// ---------------------------------------------------------------- exchanges
// The throughput phase's exchanges run in THREADS threads: with THREADS > 1, worker threads
// of this same file, each with its own openid-client configuration (discovery, JWKS cache)
// and ceil(C / THREADS) concurrent token requests; the main thread only collects the codes
// beforehand and waits. One JavaScript thread spends about 1 ms of CPU per exchange (HTTP,
// client authentication, ID token validation), so one thread alone would cap the measured
// rate near 1,000/s whatever the OP does.
async function exchangeBatch(codes, concurrency) {
  const tokenMs = [];
  const errs = {};
  let ok = 0;
  await pool(codes.length, concurrency, async (i) => {
    const { callback, checks } = codes[i];
    const t0 = performance.now();
    try {
      await exchange(new URL(callback), checks);
      tokenMs.push(performance.now() - t0);
      ok += 1;
    } catch (err) {
      const k = errorKey(err);
      errs[k] ??= { count: 0, detail: errorDetail(err) };
      errs[k].count += 1;
    }
  });
  return { tokenMs, ok, errs };
}

async function startWorkers(count) {
  return Promise.all(Array.from({ length: count }, () => new Promise((resolve, reject) => {
    const w = new Worker(new URL(import.meta.url), { workerData: { setupPath: path.resolve(setupPath) } });
    w.once('message', (m) => (m?.ready ? resolve(w) : reject(new Error(`worker: ${JSON.stringify(m)}`))));
    w.once('error', reject);
    w.once('exit', (code) => reject(new Error(`worker exited with ${code} before it was ready`)));
  })));
}

function runOnWorker(w, codes, concurrency) {
  return new Promise((resolve, reject) => {
    const onError = (err) => reject(err);
    w.once('error', onError);
    w.once('message', (m) => {
      w.off('error', onError);
      resolve(m);
    });
    w.postMessage({ codes, concurrency });
  });
}

if (!isMainThread) {
  parentPort.on('message', async ({ codes, concurrency }) => {
    parentPort.postMessage(await exchangeBatch(codes, concurrency));
  });
  parentPort.postMessage({ ready: true });
} else {
  await main();
}

// ---------------------------------------------------------------- run
async function main() {
  out(`provider ${setup.name}  issuer ${meta.issuer}  client ${setup.client_id}  auth ${setup.auth}`);
  out(`openid-client ${JSON.parse(fs.readFileSync(new URL('./node_modules/openid-client/package.json', import.meta.url))).version}`
    + `  N=${N} M=${M} C=${C} chunk=${CHUNK} threads=${THREADS} fetch=${FETCH}`);

  // login
  if (!setupHadCookies) {
    try {
      const { url, checks } = await newRequest();
      const { callback, requests } = await followToCallback(url);
      const { claims } = await exchange(callback, checks);
      out(`login: one flow through the OP's interaction, ${requests} requests to the callback; sub=${claims.sub}; cookies: ${Object.keys(jar).join(', ') || '(none)'}`);
    } catch (err) {
      fail('login', err);
    }
  } else {
    out(`login: session cookies from setup: ${Object.keys(jar).join(', ')}`);
  }

  // latency
  const flowMs = [];
  const requestsHist = {};
  const opLatency0 = opCpuMs();
  for (let i = 0; i < N; i += 1) {
    try {
      const { url, checks } = await newRequest();
      const t0 = performance.now();
      const { callback, requests } = await followToCallback(url);
      await exchange(callback, checks);
      flowMs.push(performance.now() - t0);
      requestsHist[requests] = (requestsHist[requests] ?? 0) + 1;
    } catch (err) {
      fail(`latency flow ${i + 1}/${N}`, err);
    }
  }
  const opLatency1 = opCpuMs();
  const opMsPerFlow = opLatency0 != null && opLatency1 != null && N > 0 ? (opLatency1 - opLatency0) / N : null;
  const fs1 = sortNum(flowMs);
  const latency = { p50: r2(pct(fs1, 50)), p90: r2(pct(fs1, 90)), p99: r2(pct(fs1, 99)), max: r2(fs1.at(-1)) };
  if (firstIdToken) out(`ID token: ${firstIdToken}`);
  if (N > 0) {
    out(`latency: ${N} sequential flows, authorize -> validated ID token: `
      + `p50 ${latency.p50} ms  p90 ${latency.p90} ms  p99 ${latency.p99} ms  max ${latency.max} ms`);
    out(`         requests from authorize to callback: ${Object.entries(requestsHist).map(([k, v]) => `${k}: ${v} flows`).join(', ')}`);
    if (opMsPerFlow != null) out(`         OP CPU per flow (${OP_PID}): ${r2(opMsPerFlow)} ms`);
  }

  // throughput
  const errors = {};
  const countError = (err) => {
    const k = errorKey(err);
    if (!errors[k]) note(`first ${k}: ${errorDetail(err)}`);
    errors[k] = (errors[k] ?? 0) + 1;
  };
  const tokenMs = [];
  let exchangeWallMs = 0;
  let exchangeCpuUs = 0;
  let opExchangeMs = OP_PID ? 0 : null;
  let collectWallMs = 0;
  let ok = 0;
  let collected = 0;
  const workers = M > 0 && THREADS > 1 ? await startWorkers(THREADS) : [];
  for (let done = 0; done < M; done += CHUNK) {
    const size = Math.min(CHUNK, M - done);
    const codes = [];
    const tc0 = performance.now();
    await pool(size, C, async () => {
      try {
        const { url, checks } = await newRequest();
        const { callback } = await followToCallback(url);
        codes.push({ callback: callback.href, checks });
      } catch (err) {
        countError(err);
      }
    });
    collectWallMs += performance.now() - tc0;
    collected += codes.length;

    const cpu0 = process.cpuUsage(); // the whole process: every thread
    const op0 = opCpuMs();
    const te0 = performance.now();
    const results = workers.length
      ? await Promise.all(workers.map((w, k) => runOnWorker(
        w,
        codes.filter((_, i) => i % workers.length === k),
        Math.ceil(C / workers.length),
      )))
      : [await exchangeBatch(codes, C)];
    exchangeWallMs += performance.now() - te0;
    const op1 = opCpuMs();
    opExchangeMs = op0 != null && op1 != null && opExchangeMs != null ? opExchangeMs + (op1 - op0) : null;
    const cpu = process.cpuUsage(cpu0);
    exchangeCpuUs += cpu.user + cpu.system;
    for (const r of results) {
      for (const x of r.tokenMs) tokenMs.push(x);
      ok += r.ok;
      for (const [k, { count, detail }] of Object.entries(r.errs)) {
        if (!errors[k]) note(`first ${k}: ${detail}`);
        errors[k] = (errors[k] ?? 0) + count;
      }
    }
  }
  await Promise.all(workers.map((w) => w.terminate()));
  const ts = sortNum(tokenMs);
  const tokenPerS = exchangeWallMs > 0 ? ok / (exchangeWallMs / 1000) : NaN;
  const tokenLatency = { p50: r2(pct(ts, 50)), p99: r2(pct(ts, 99)) };
  const failures = Object.values(errors).reduce((a, b) => a + b, 0);
  if (M > 0) {
    out(`throughput: ${collected}/${M} codes collected (C=${C}, ${r2(collectWallMs / 1000)} s, not timed); `
      + `${ok} exchanged by ${THREADS} thread${THREADS > 1 ? 's' : ''} in ${r2(exchangeWallMs / 1000)} s of exchange time`);
    out(`            ${r2(tokenPerS)} tokens/s; token request (authorizationCodeGrant incl. client auth + ID token validation) `
      + `p50 ${tokenLatency.p50} ms  p99 ${tokenLatency.p99} ms; client CPU during exchanges `
      + `${r2((exchangeCpuUs / 1000 / exchangeWallMs) * 100)} % of one core (all threads)`);
    out(`            client CPU per token ${r2(exchangeCpuUs / 1000 / Math.max(ok, 1))} ms`
      + (opExchangeMs != null
        ? `; OP CPU (${OP_PID}) during exchanges ${r2((opExchangeMs / exchangeWallMs) * 100)} % of one core, `
          + `${r2(opExchangeMs / Math.max(ok, 1))} ms per token`
        : ''));
  }
  if (failures) {
    out(`FAILURES: ${failures} — ${Object.entries(errors).map(([k, v]) => `${k}: ${v}`).join(', ')}`);
  } else {
    out('failures: none');
  }

  out(JSON.stringify({
    provider: setup.name,
    auth: setup.auth,
    latency_ms: latency,
    token_per_s: r2(tokenPerS),
    token_latency_ms: tokenLatency,
    errors,
    ok: failures === 0,
    n: N,
    m: M,
    c: C,
    threads: THREADS,
    op_cpu_ms_per_flow: r2(opMsPerFlow),
    op_cpu_ms_per_token: opExchangeMs != null ? r2(opExchangeMs / Math.max(ok, 1)) : null,
    op_cpu_pct: opExchangeMs != null ? r2((opExchangeMs / exchangeWallMs) * 100) : null,
    client_cpu_ms_per_token: r2(exchangeCpuUs / 1000 / Math.max(ok, 1)),
    client_cpu_pct: r2((exchangeCpuUs / 1000 / exchangeWallMs) * 100),
  }));
  process.exit(failures ? 1 : 0);
}

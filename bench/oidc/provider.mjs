#!/usr/bin/env node
// Reference OpenID Provider for the tsunagu OIDC benchmark, built on npm `oidc-provider` 9.
//
//   node provider.mjs [--port PORT] [--setup-dir DIR | DIR]
//   (or PORT / SETUP_DIR in the environment; port 0 or none = pick a free port)
//
// Listens on 127.0.0.1:PORT with issuer http://127.0.0.1:PORT, two static clients
// (`bench-basic`: client_secret_basic, `bench-jwt`: private_key_jwt ES256), ES256-signed
// ID tokens, PKCE (S256) required, no dev interactions: GET /interaction/:uid logs in the
// fixed account `resident-1` and grants `openid profile` at once, then redirects back.
// Writes setup-basic.json / setup-jwt.json (and client-key.pem) into the setup directory,
// then prints "ready" on stdout.
//
// Storage: the in-memory adapter that ships with oidc-provider (no disk I/O). By default it
// is given a larger LRU than the library's quick-start default (1000) so that a benchmark
// run with thousands of outstanding codes/tokens does not evict live codes or the session;
// set OP_STORE_MAX=1000 to get exactly the stock size.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';
// The library's own in-memory adapter and LRU (no exports map, so deep imports resolve).
import MemoryAdapter from 'oidc-provider/lib/adapters/memory_adapter.js';
import LRU from 'oidc-provider/lib/helpers/lru.js';

const { values: args, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    port: { type: 'string' },
    'setup-dir': { type: 'string' },
  },
});

const PORT = Number(args.port ?? process.env.PORT ?? 0);
const SETUP_DIR = path.resolve(args['setup-dir'] ?? positionals[0] ?? process.env.SETUP_DIR ?? './setup');
const STORE_MAX = Number(process.env.OP_STORE_MAX ?? 200000);
const REDIRECT_URI = 'http://127.0.0.1:9/cb';
const SCOPE = 'openid profile';
const ACCOUNT_ID = 'resident-1';

const log = (...a) => console.error('[provider]', ...a);

// ---------------------------------------------------------------- keys
function genEcKey(kid) {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return {
    privateJwk: { ...privateKey.export({ format: 'jwk' }), kid, alg: 'ES256', use: 'sig' },
    publicJwk: { ...publicKey.export({ format: 'jwk' }), kid, alg: 'ES256', use: 'sig' },
    pkcs8Pem: privateKey.export({ format: 'pem', type: 'pkcs8' }),
  };
}

const opKey = genEcKey(`op-es256-${crypto.randomBytes(4).toString('hex')}`);
const clientKey = genEcKey(`bench-jwt-${crypto.randomBytes(4).toString('hex')}`);
const clientSecret = crypto.randomBytes(32).toString('base64url');

// ---------------------------------------------------------------- account
const account = {
  accountId: ACCOUNT_ID,
  async claims() {
    return { sub: ACCOUNT_ID, name: '前橋　花子', birthdate: '1990-04-01' };
  },
};

// ---------------------------------------------------------------- server
// Bind first (port 0 = any free port), then build the provider with the real issuer.
let handler = (_req, res) => { res.statusCode = 503; res.end(); };
const server = http.createServer((req, res) => handler(req, res));
server.keepAliveTimeout = 65_000;
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(PORT, '127.0.0.1', resolve);
});
const { port } = server.address();
const issuer = `http://127.0.0.1:${port}`;

const store = new LRU({ maxSize: STORE_MAX });

const provider = new Provider(issuer, {
  adapter: (model) => new MemoryAdapter(model, store, 15),
  clients: [
    {
      client_id: 'bench-basic',
      client_secret: clientSecret,
      token_endpoint_auth_method: 'client_secret_basic',
      redirect_uris: [REDIRECT_URI],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      id_token_signed_response_alg: 'ES256',
    },
    {
      client_id: 'bench-jwt',
      token_endpoint_auth_method: 'private_key_jwt',
      token_endpoint_auth_signing_alg: 'ES256',
      jwks: { keys: [clientKey.publicJwk] },
      redirect_uris: [REDIRECT_URI],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      id_token_signed_response_alg: 'ES256',
    },
  ],
  jwks: { keys: [opKey.privateJwk] },
  enabledJWA: {
    idTokenSigningAlgValues: ['ES256'],
    clientAuthSigningAlgValues: ['ES256'],
  },
  clientAuthMethods: ['client_secret_basic', 'private_key_jwt'],
  responseTypes: ['code'],
  scopes: ['openid', 'profile'],
  claims: {
    // the library's defaults plus `profile`
    acr: null,
    sid: null,
    auth_time: null,
    iss: null,
    openid: ['sub'],
    profile: ['name', 'birthdate'],
  },
  // Library default (true): scope-requested claims (name, birthdate) go to userinfo, not into
  // the ID token, when an access token is issued (OIDC Core 5.4). OP_ID_TOKEN_PROFILE_CLAIMS=1
  // puts them into the ID token too.
  conformIdTokenClaims: process.env.OP_ID_TOKEN_PROFILE_CLAIMS !== '1',
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: false },
  },
  interactions: {
    url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
  },
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  findAccount: async (_ctx, sub) => (sub === ACCOUNT_ID ? account : undefined),
  ttl: {
    AccessToken: 3600,
    AuthorizationCode: 60,
    IdToken: 3600,
    Interaction: 600,
    Session: 24 * 3600,
    Grant: 24 * 3600,
  },
  renderError: async (ctx, out) => {
    ctx.type = 'json';
    ctx.body = out;
  },
});

provider.on('server_error', (_ctx, err) => log('server_error', err));

// GET /interaction/:uid — finish any prompt at once: log in resident-1 (login prompt) and
// grant `openid profile` to the client (consent prompt), then redirect back (303).
async function interaction(req, res) {
  try {
    const details = await provider.interactionDetails(req, res);
    const { prompt, params, session } = details;
    const accountId = session?.accountId ?? ACCOUNT_ID;
    const result = {};
    if (prompt.name === 'login' || !session?.accountId) {
      result.login = { accountId: ACCOUNT_ID };
    }
    let grant = details.grantId ? await provider.Grant.find(details.grantId) : undefined;
    if (!grant) {
      grant = new provider.Grant({ accountId, clientId: params.client_id });
    }
    grant.addOIDCScope(SCOPE);
    const missingClaims = prompt.details?.missingOIDCClaims;
    if (missingClaims?.length) grant.addOIDCClaims(missingClaims);
    result.consent = { grantId: await grant.save() };
    await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
  } catch (err) {
    log('interaction failed:', err?.message ?? err);
    res.statusCode = 400;
    res.setHeader('content-type', 'text/plain');
    res.end(`interaction failed: ${err?.message ?? err}\n`);
  }
}

const callback = provider.callback();
handler = (req, res) => {
  if (req.method === 'GET' && req.url.startsWith('/interaction/')) {
    interaction(req, res);
  } else {
    callback(req, res);
  }
};

// ---------------------------------------------------------------- setup files
fs.mkdirSync(SETUP_DIR, { recursive: true });
const keyPath = path.join(SETUP_DIR, 'client-key.pem');
fs.writeFileSync(keyPath, clientKey.pkcs8Pem, { mode: 0o600 });

const name = `oidc-provider ${JSON.parse(fs.readFileSync(
  new URL('./node_modules/oidc-provider/package.json', import.meta.url),
)).version}`;
const common = { name, issuer, redirect_uri: REDIRECT_URI, scope: SCOPE };
fs.writeFileSync(path.join(SETUP_DIR, 'setup-basic.json'), `${JSON.stringify({
  ...common,
  client_id: 'bench-basic',
  auth: 'client_secret_basic',
  client_secret: clientSecret,
  cookies: {},
}, null, 2)}\n`);
fs.writeFileSync(path.join(SETUP_DIR, 'setup-jwt.json'), `${JSON.stringify({
  ...common,
  client_id: 'bench-jwt',
  auth: 'private_key_jwt',
  client_key_pem: keyPath,
  client_key_kid: clientKey.publicJwk.kid,
  cookies: {},
}, null, 2)}\n`);

log(`${name} listening, issuer ${issuer}, store max ${STORE_MAX}, setup in ${SETUP_DIR}`);
process.stdout.write('ready\n');

const stop = () => { server.close(); process.exit(0); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

/**
 * Pulls that need TLS and credentials, as engines meet them: a registry
 * with TLS (a self-signed certificate) and basic auth (htpasswd), and one
 * with token auth whose token server is this test (RS256 JWTs with an x5c
 * header, as the distribution registry verifies them).  Credentials come
 * from --creds, --authfile, $REGISTRY_AUTH_FILE and `tsrun image login`;
 * the certificate from --cert-dir or --tls-verify=false.  Every refusal is
 * one line naming what is wrong, with nothing left in the store.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as http from 'http';
import * as path from 'path';
import t from 'tap';
import { IS_ROOT, tempDir, tsrunAsync, type RunResult } from '../helpers';
import { baseLayer, imageOf, ociLayout, storeSnapshot } from '../image-helpers';
import {
  haveRegistry,
  htpasswd,
  logSettled,
  type Registry,
  selfSigned,
  skopeoPushAsync,
  startRegistry,
  TOKEN_ISSUER,
  TOKEN_SERVICE,
} from '../registry-helpers';

if (!IS_ROOT || !haveRegistry()) {
  t.plan(0, IS_ROOT ? 'docker-registry and skopeo are not installed (scripts/setup.sh --engines)' : 'needs root');
  process.exit(0);
}

const work = tempDir(t, 'tsrun-pull-auth-');
const root = path.join(work, 'root');
const layout = path.join(work, 'layout');
ociLayout(layout, imageOf([baseLayer()]), 'x');
const b64 = (s: string): string => Buffer.from(s).toString('base64');

/** `tsrun image ARGS` (async: the token server answers from this process). */
const image = (store: string, args: string[], env: Record<string, string> = {}): Promise<RunResult> =>
  tsrunAsync(root, ['image', args[0], '--store', store, ...args.slice(1)], { env });

/** `tsrun image login ARGS`. */
const login = (args: string[]): Promise<RunResult> => tsrunAsync(root, ['image', 'login', ...args]);

function authFile(name: string, entries: Record<string, string>): string {
  const file = path.join(work, name);
  fs.writeFileSync(
    file,
    JSON.stringify({ auths: Object.fromEntries(Object.entries(entries).map(([k, v]) => [k, { auth: b64(v) }])) }),
  );
  return file;
}

t.test('TLS and basic auth', async (t) => {
  const tls = selfSigned(work, 'registry');
  const users = path.join(work, 'htpasswd');
  htpasswd(users, { alice: 'right-password' });
  const reg: Registry = await startRegistry(t, { tls, htpasswd: users });
  await skopeoPushAsync(layout, 'x', `${reg.host}/private/busybox:1`, { creds: 'alice:right-password' });
  const name = `${reg.host}/private/busybox:1`;
  const certDir = path.join(work, 'certs');
  fs.mkdirSync(certDir);
  fs.copyFileSync(tls.cert, path.join(certDir, 'ca.crt'));
  const store = tempDir(t, 'tsrun-pull-store-');
  const empty = storeSnapshot(store);

  const untrusted = await image(store, ['pull', name]);
  t.not(untrusted.status, 0);
  t.match(
    untrusted.stderr,
    new RegExp(
      `^tsrun: image pull: registry ${reg.host}: TLS: its certificate is not signed by a trusted authority \\(DEPTH_ZERO_SELF_SIGNED_CERT\\); add the CA to /etc/containers/certs.d/HOST:PORT/ca.crt, or give --tls-verify=false for this registry\\n$`,
    ),
    "a loopback registry's certificate is verified too",
  );

  const anonymous = await image(store, ['pull', '--cert-dir', certDir, name]);
  t.not(anonymous.status, 0);
  t.match(
    anonymous.stderr,
    `registry ${reg.host}: authentication required, and there are no credentials for it (tsrun image login ${reg.host})\n`,
  );

  const wrongFile = authFile('wrong.json', { [reg.host]: 'alice:wrong' });
  const wrong = await image(store, ['pull', '--tls-verify=false', '--authfile', wrongFile, name]);
  t.not(wrong.status, 0);
  t.match(
    wrong.stderr,
    `${reg.host}/private/busybox: access denied with the credentials of "alice" (${wrongFile}: auths["${reg.host}"])\n`,
  );
  t.equal(storeSnapshot(store), empty, 'nothing in the store after the refusals');

  const byCreds = await image(store, ['pull', '--cert-dir', certDir, '--creds', 'alice:right-password', name]);
  t.equal(byCreds.status, 0, byCreds.stderr);
  t.equal(byCreds.stdout, `${name}\n`);

  // The CA where docker and podman look for it, /etc/*/certs.d/HOST:PORT/ (a directory of this port only).
  for (const base of ['/etc/containers/certs.d', '/etc/docker/certs.d']) {
    const made: string[] = [];
    for (const dir of [path.dirname(base), base, path.join(base, reg.host)])
      if (!fs.existsSync(dir)) {
        fs.mkdirSync(dir);
        made.unshift(dir);
      }
    fs.copyFileSync(tls.cert, path.join(base, reg.host, 'ca.crt'));
    const storeCertsD = tempDir(t, 'tsrun-pull-store-');
    const r = await image(storeCertsD, ['pull', '--creds', 'alice:right-password', name]);
    fs.rmSync(path.join(base, reg.host, 'ca.crt'));
    for (const dir of made) fs.rmdirSync(dir);
    t.equal(r.status, 0, `${base}/${reg.host}/ca.crt: ${r.stderr}`);
  }

  const envFile = authFile('env.json', { [`https://${reg.host}`]: 'alice:right-password' });
  const store2 = tempDir(t, 'tsrun-pull-store-');
  const byEnv = await image(store2, ['pull', '--tls-verify=false', name], { REGISTRY_AUTH_FILE: envFile });
  t.equal(byEnv.status, 0, `$REGISTRY_AUTH_FILE, a key with a scheme: ${byEnv.stderr}`);

  // docker's config.json ($DOCKER_CONFIG), once with the password in it, once through a credential helper.
  const dockerDir = path.join(work, 'docker-config');
  fs.mkdirSync(dockerDir);
  fs.writeFileSync(
    path.join(dockerDir, 'config.json'),
    JSON.stringify({ auths: { [reg.host]: { auth: b64('alice:right-password') } } }),
  );
  const byDocker = await image(tempDir(t, 'tsrun-pull-store-'), ['pull', '--tls-verify=false', name], {
    DOCKER_CONFIG: dockerDir,
  });
  t.equal(byDocker.status, 0, `$DOCKER_CONFIG/config.json: ${byDocker.stderr}`);
  const bin = path.join(work, 'bin');
  fs.mkdirSync(bin);
  const asked = path.join(work, 'helper-asked');
  fs.writeFileSync(
    path.join(bin, 'docker-credential-tsrun-test'),
    `#!/bin/sh\n[ "$1" = get ] || exit 2\ncat > '${asked}'\necho '{"ServerURL":"x","Username":"alice","Secret":"right-password"}'\n`,
    { mode: 0o755 },
  );
  fs.writeFileSync(path.join(dockerDir, 'config.json'), JSON.stringify({ credHelpers: { [reg.host]: 'tsrun-test' } }));
  const byHelper = await image(tempDir(t, 'tsrun-pull-store-'), ['pull', '--tls-verify=false', name], {
    DOCKER_CONFIG: dockerDir,
    PATH: `${bin}:${process.env.PATH}`,
  });
  t.equal(byHelper.status, 0, `a credential helper: ${byHelper.stderr}`);
  t.equal(fs.readFileSync(asked, 'utf8'), reg.host, 'the helper was asked for this registry');

  // login: checked, then kept 0600 where pulls look.
  const loginFile = path.join(work, 'login', 'auth.json');
  const badLogin = await login(['--cert-dir', certDir, '-u', 'alice', '-p', 'nope', '--authfile', loginFile, reg.host]);
  t.not(badLogin.status, 0);
  t.match(badLogin.stderr, `registry ${reg.host}: the username or password of "alice" was refused\n`);
  t.notOk(fs.existsSync(loginFile), 'nothing kept');
  const emptyStdin = await login([
    '--cert-dir',
    certDir,
    '-u',
    'alice',
    '--password-stdin',
    '--authfile',
    loginFile,
    reg.host,
  ]);
  t.not(emptyStdin.status, 0);
  t.match(emptyStdin.stderr, 'tsrun: image login: --password-stdin: the password is empty\n');
  const good = await login([
    '--cert-dir',
    certDir,
    '-u',
    'alice',
    '-p',
    'right-password',
    '--authfile',
    loginFile,
    `https://${reg.host}/`,
  ]);
  t.equal(good.status, 0, good.stderr);
  t.equal(good.stdout, `Login Succeeded (${loginFile})\n`);
  t.match(good.stderr, '--password on the command line is visible to other users; use --password-stdin');
  t.equal(fs.statSync(loginFile).mode & 0o777, 0o600);
  t.same(JSON.parse(fs.readFileSync(loginFile, 'utf8')), {
    auths: { [reg.host]: { auth: b64('alice:right-password') } },
  });
  const store3 = tempDir(t, 'tsrun-pull-store-');
  const afterLogin = await image(store3, ['pull', '--cert-dir', certDir, name], { REGISTRY_AUTH_FILE: loginFile });
  t.equal(afterLogin.status, 0, afterLogin.stderr);
  const logout = await tsrunAsync(root, ['image', 'logout', '--authfile', loginFile, reg.host]);
  t.equal(logout.status, 0, logout.stderr);
  t.same(JSON.parse(fs.readFileSync(loginFile, 'utf8')), { auths: {} });
  const again = await tsrunAsync(root, ['image', 'logout', '--authfile', loginFile, reg.host]);
  t.match(again.stderr, `not logged in to ${reg.host} (${loginFile})`);
});

/** A token server: alice/right-password gets what she asks; anonymous gets pull of public/*; others 401. */
async function tokenServer(t: { teardown(fn: () => void): void }, signer: { cert: string; key: string }) {
  const x5c = new crypto.X509Certificate(fs.readFileSync(signer.cert)).raw.toString('base64');
  const key = fs.readFileSync(signer.key);
  const asked: Array<{ scope: string; service: string; user: string }> = [];
  /** expireNext: the next token is out of date already, as one that expired during a long pull. */
  const control = { expireNext: false, expired: false };
  const b64url = (data: Buffer | string): string => Buffer.from(data).toString('base64url');
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const auth = req.headers.authorization;
    let user = '';
    if (auth?.startsWith('Basic ')) {
      const [u, p] = Buffer.from(auth.slice(6), 'base64').toString().split(':');
      if (u !== 'alice' || p !== 'right-password') {
        res.writeHead(401, { 'Content-Type': 'application/json' });
        return res.end('{"details":"wrong"}');
      }
      user = u;
    }
    const scopes = url.searchParams.getAll('scope');
    if (control.expireNext) {
      control.expired = true;
      control.expireNext = false;
    } else control.expired = false;
    asked.push({ scope: scopes.join(' '), service: url.searchParams.get('service') ?? '', user });
    const access = [];
    for (const scope of scopes) {
      const m = /^repository:([^:]+):(.+)$/.exec(scope);
      if (m && (user || m[1].startsWith('public/')))
        access.push({ type: 'repository', name: m[1], actions: user ? m[2].split(',') : ['pull'] });
    }
    const now = Math.floor(Date.now() / 1000);
    const header = b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', x5c: [x5c] }));
    const claims = b64url(
      JSON.stringify({
        iss: TOKEN_ISSUER,
        sub: user,
        aud: TOKEN_SERVICE,
        exp: control.expired ? now - 3600 : now + 600,
        nbf: now - 10,
        iat: now,
        jti: crypto.randomUUID(),
        access,
      }),
    );
    const signature = b64url(crypto.sign('sha256', Buffer.from(`${header}.${claims}`), key));
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ token: `${header}.${claims}.${signature}`, expires_in: 600 }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  return { realm: `http://127.0.0.1:${(server.address() as { port: number }).port}/token`, asked, control };
}

t.test('token auth: anonymous for public repositories, credentials for the rest', async (t) => {
  const signer = selfSigned(work, 'token');
  const { realm, asked, control } = await tokenServer(t, signer);
  const reg = await startRegistry(t, { token: { realm, cert: signer.cert } });
  await skopeoPushAsync(layout, 'x', `${reg.host}/private/busybox:1`, { creds: 'alice:right-password' });
  await skopeoPushAsync(layout, 'x', `${reg.host}/public/busybox:1`, { creds: 'alice:right-password' });
  const store = tempDir(t, 'tsrun-pull-store-');

  asked.length = 0;
  const pub = await image(store, ['pull', `${reg.host}/public/busybox:1`]);
  t.equal(pub.status, 0, `anonymous token: ${pub.stderr}`);
  t.same(
    asked,
    [{ scope: 'repository:public/busybox:pull', service: TOKEN_SERVICE, user: '' }],
    'one token, for pull of that repository',
  );

  const store2 = tempDir(t, 'tsrun-pull-store-');
  const empty = storeSnapshot(store2);
  const anonymous = await image(store2, ['pull', `${reg.host}/private/busybox:1`]);
  t.not(anonymous.status, 0);
  t.match(
    anonymous.stderr,
    `${reg.host}/private/busybox: authentication required (insufficient_scope): the repository is not public, or does not exist (tsrun image login ${reg.host})\n`,
  );

  const wrong = await image(store2, ['pull', '--creds', 'alice:wrong', `${reg.host}/private/busybox:1`]);
  t.not(wrong.status, 0);
  t.match(wrong.stderr, `registry ${reg.host}: the token server http://127.0.0.1:`);
  t.match(wrong.stderr, 'refused the credentials of "alice" (--creds)\n');
  t.equal(storeSnapshot(store2), empty, 'nothing in the store after the refusals');

  asked.length = 0;
  const file = authFile('token.json', { [reg.host]: 'alice:right-password' });
  const ok = await image(store2, ['pull', '--authfile', file, `${reg.host}/private/busybox:1`]);
  t.equal(ok.status, 0, ok.stderr);
  t.same(asked, [{ scope: 'repository:private/busybox:pull', service: TOKEN_SERVICE, user: 'alice' }]);

  // A token out of date by the time it is used: the registry's 401, then a fresh token, as docker does.
  asked.length = 0;
  control.expireNext = true;
  const refreshed = await image(tempDir(t, 'tsrun-pull-store-'), [
    'pull',
    '--authfile',
    file,
    `${reg.host}/private/busybox:1`,
  ]);
  t.equal(refreshed.status, 0, refreshed.stderr);
  t.equal(asked.length, 2, 'a second token after the first was refused');

  const noPassword = await login([
    '-u',
    'alice',
    '--password-stdin',
    '--authfile',
    path.join(work, 'tl.json'),
    reg.host,
  ]);
  t.not(noPassword.status, 0, 'an empty password from an empty stdin');
  const badLogin = await login(['-u', 'alice', '-p', 'nope', '--authfile', path.join(work, 'tl.json'), reg.host]);
  t.match(badLogin.stderr, `registry ${reg.host}: the username or password of "alice" was refused\n`);
  const goodLogin = await login([
    '-u',
    'alice',
    '-p',
    'right-password',
    '--authfile',
    path.join(work, 'tl.json'),
    reg.host,
  ]);
  t.equal(goodLogin.status, 0, goodLogin.stderr);

  // Push: a token for pull and push of the destination; anonymous, refused.
  const src = `${reg.host}/private/busybox:1`;
  const anonPush = await image(store2, ['push', src, `${reg.host}/private/pushed:1`]);
  t.not(anonPush.status, 0);
  t.match(anonPush.stderr, `${reg.host}/private/pushed: authentication required (insufficient_scope)`);
  asked.length = 0;
  const push = await image(store2, ['push', '--authfile', file, src, `${reg.host}/private/pushed:1`]);
  t.equal(push.status, 0, push.stderr);
  t.same(
    asked,
    [
      { scope: 'repository:private/pushed:pull,push', service: TOKEN_SERVICE, user: 'alice' },
      {
        scope: 'repository:private/pushed:pull,push repository:private/busybox:pull',
        service: TOKEN_SERVICE,
        user: 'alice',
      },
    ],
    "a token to look at the destination's blobs, then one that also reads the source, to mount them from it",
  );
  await logSettled(reg);
  const mounts = reg
    .requests()
    .filter((q) => q.method === 'POST' && q.path.startsWith('/v2/private/pushed/') && q.path.includes('mount='));
  t.same(
    mounts.map((q) => q.status),
    [201, 201],
    'the layer and the config mounted from private/busybox, nothing uploaded',
  );
});

/**
 * The registry client's pure parts, without root or network: the auth
 * challenge, where credentials are found, platform choice in an index, and
 * the pull display's lines.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import t from 'tap';
import { parseChallenge } from '../../src/lib/registry/client';
import { authFiles, credentialsFor, removeCredentials, storeCredentials } from '../../src/lib/registry/credentials';
import { certsFor, endpointOf } from '../../src/lib/registry/hosts';
import { choosePlatform, parsePlatform } from '../../src/lib/image/platform';
import { layerLine, pullLines, totalLine } from '../../src/cli/pull-progress';

t.test('WWW-Authenticate challenges', async (t) => {
  t.same(
    parseChallenge(
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"',
    ),
    {
      scheme: 'bearer',
      params: {
        realm: 'https://auth.docker.io/token',
        service: 'registry.docker.io',
        scope: 'repository:library/busybox:pull',
      },
    },
  );
  t.same(parseChallenge('Basic realm="basic-realm"'), { scheme: 'basic', params: { realm: 'basic-realm' } });
  t.same(parseChallenge('Bearer realm="r",error="insufficient_scope"')?.params.error, 'insufficient_scope');
  t.same(parseChallenge('bearer realm="a \\"quoted\\" realm", service=plain')?.params, {
    realm: 'a "quoted" realm',
    service: 'plain',
  });
  t.equal(parseChallenge('Negotiate abc'), undefined, 'a scheme tsrun does not speak');
  t.equal(parseChallenge(undefined), undefined);
});

t.test('credentials: files in order, keys as docker and podman write them', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-creds-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  const first = path.join(dir, 'auth.json');
  const second = path.join(dir, 'config.json');
  fs.writeFileSync(
    first,
    JSON.stringify({
      auths: { '127.0.0.1:5000': { auth: b64('alice:pw1') }, 'quay.io/org/app': { auth: b64('bot:pw2') } },
    }),
  );
  fs.writeFileSync(
    second,
    JSON.stringify({
      auths: { 'https://index.docker.io/v1/': { auth: b64('hub:pw3') }, 'quay.io': { username: 'q', password: 'pw4' } },
    }),
  );
  const files = [first, second, path.join(dir, 'missing.json')];
  t.match(credentialsFor('127.0.0.1:5000', 'busybox', files), {
    username: 'alice',
    password: 'pw1',
    source: `${first}: auths["127.0.0.1:5000"]`,
  });
  t.match(credentialsFor('quay.io', 'org/app', files), { username: 'bot' }, 'a repository entry, more specific');
  t.match(
    credentialsFor('quay.io', 'org/other', files),
    { username: 'q', password: 'pw4' },
    'the domain, from the second file',
  );
  t.match(
    credentialsFor('docker.io', 'library/busybox', files),
    { username: 'hub', password: 'pw3' },
    "Docker Hub's old key",
  );
  t.equal(credentialsFor('example.com', 'x', files), undefined, 'anonymous');
  fs.writeFileSync(first, JSON.stringify({ auths: { 'example.com': { identitytoken: 'tok' } } }));
  t.throws(() => credentialsFor('example.com', 'x', files), /auths\["example.com"\]: an identity token alone/);
  fs.writeFileSync(first, JSON.stringify({ credHelpers: { 'example.com': 'tsrun-test-no-such-helper' } }));
  t.throws(
    () => credentialsFor('example.com', 'x', files),
    /credential helper docker-credential-tsrun-test-no-such-helper: not found/,
  );
  fs.writeFileSync(first, '{not json');
  t.throws(() => credentialsFor('example.com', 'x', files), /auth.json: not valid JSON/);
  fs.rmSync(first);
  storeCredentials(first, 'r.example:443', 'u', 'p:with:colons');
  t.equal(fs.statSync(first).mode & 0o777, 0o600, 'written 0600');
  t.match(credentialsFor('r.example:443', 'x', files), { username: 'u', password: 'p:with:colons' });
  t.ok(removeCredentials(first, 'r.example:443'));
  t.notOk(removeCredentials(first, 'r.example:443'));
  t.same(authFiles({ REGISTRY_AUTH_FILE: '/a.json', XDG_RUNTIME_DIR: '/run/user/5', HOME: '/home/u' }), [
    '/a.json',
    '/run/user/5/containers/auth.json',
    '/home/u/.docker/config.json',
  ]);
  t.same(authFiles({ DOCKER_CONFIG: '/d', XDG_RUNTIME_DIR: '/x' }), ['/x/containers/auth.json', '/d/config.json']);
});

t.test('endpoints and certs.d', async (t) => {
  t.match(endpointOf('docker.io'), { host: 'registry-1.docker.io', plainHttp: false, skipVerify: false });
  t.match(
    endpointOf('127.0.0.1:5000'),
    { plainHttp: true, skipVerify: false },
    'loopback: HTTP where no TLS, as docker; the certificate verified where TLS',
  );
  t.match(endpointOf('localhost:5000'), { plainHttp: true, skipVerify: false });
  t.match(endpointOf('[::1]:5000'), { plainHttp: true });
  t.match(endpointOf('registry.example:5000'), { plainHttp: false, skipVerify: false });
  t.match(
    endpointOf('registry.example:5000', ['registry.example:5000']),
    { plainHttp: true, skipVerify: true },
    '--tls-verify=false names it',
  );
  t.match(
    endpointOf('other.example', ['registry.example:5000']),
    { plainHttp: false, skipVerify: false },
    'only the registry named',
  );
  t.throws(
    () => endpointOf('x.example', [], '/nonexistent-tsrun-dir'),
    /--cert-dir \/nonexistent-tsrun-dir: no such directory/,
  );
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-certs-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.mkdirSync(path.join(dir, 'a', 'reg:5000'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'b', 'reg:5000'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'a', 'reg:5000', 'ca.crt'), 'CA-A');
  fs.writeFileSync(path.join(dir, 'b', 'reg:5000', 'other.crt'), 'CA-B');
  fs.writeFileSync(path.join(dir, 'b', 'reg:5000', 'client.cert'), 'CERT');
  fs.writeFileSync(path.join(dir, 'b', 'reg:5000', 'client.key'), 'KEY');
  t.same(certsFor('reg:5000', [path.join(dir, 'a'), path.join(dir, 'b')]), {
    ca: ['CA-A', 'CA-B'],
    cert: 'CERT',
    key: 'KEY',
  });
  fs.rmSync(path.join(dir, 'b', 'reg:5000', 'client.key'));
  t.throws(() => certsFor('reg:5000', [path.join(dir, 'b')]), /client.cert: a client certificate without its key/);
});

t.test('platforms', async (t) => {
  t.same(parsePlatform('linux/amd64'), { os: 'linux', architecture: 'amd64' });
  t.same(parsePlatform('linux/arm64'), { os: 'linux', architecture: 'arm64', variant: 'v8' });
  t.same(parsePlatform('arm/v7'.replace('arm', 'linux/arm')), { os: 'linux', architecture: 'arm', variant: 'v7' });
  t.same(parsePlatform('x86_64'), { os: 'linux', architecture: 'amd64' });
  t.throws(() => parsePlatform('windows/amd64'), /tsrun runs linux images only/);
  t.throws(() => parsePlatform('a/b/c/d'), /expected OS\/ARCH\[\/VARIANT\]/);
  const entries = [
    { d: 'arm5', platform: { os: 'linux', architecture: 'arm', variant: 'v5' } },
    { d: 'arm7', platform: { os: 'linux', architecture: 'arm', variant: 'v7' } },
    { d: 'arm64', platform: { os: 'linux', architecture: 'arm64' } },
    { d: 'amd64', platform: { os: 'linux', architecture: 'amd64' } },
    { d: 'attestation', platform: { os: 'unknown', architecture: 'unknown' } },
  ];
  t.equal(choosePlatform(entries, parsePlatform('linux/amd64'))?.d, 'amd64');
  t.equal(choosePlatform(entries, parsePlatform('linux/arm64'))?.d, 'arm64', 'no variant in the index: v8');
  t.equal(choosePlatform(entries, parsePlatform('linux/arm/v7'))?.d, 'arm7');
  t.equal(choosePlatform(entries, parsePlatform('linux/arm/v6'))?.d, 'arm5', 'v6 runs v5, not v7');
  t.equal(choosePlatform(entries, parsePlatform('linux/s390x')), undefined);
});

t.test('the pull display', async (t) => {
  const layers = [
    { digest: `sha256:${'a'.repeat(64)}`, size: 2_000_000, done: 1_000_000, state: 'downloading' as const },
    { digest: `sha256:${'b'.repeat(64)}`, size: 5, done: 0, state: 'exists' as const },
    { digest: `sha256:${'c'.repeat(64)}`, size: 10, done: 10, state: 'complete' as const },
  ];
  t.equal(layerLine(layers[0]), `aaaaaaaaaaaa: Downloading [${'='.repeat(14)}>${' '.repeat(15)}] 1.0MB/2.0MB`);
  t.equal(layerLine(layers[1]), 'bbbbbbbbbbbb: Already exists');
  t.equal(
    totalLine({ ref: 'r:1', layers }),
    `r:1: 2/3 layers, 1.0MB/2.0MB [${'='.repeat(9)}>${' '.repeat(10)}]`,
    'what is fetched: not the layers the store had',
  );
  t.same(pullLines({ ref: 'r:1', layers }, 24, 80).length, 4, 'every layer and the total');
  t.same(pullLines({ ref: 'r:1', layers }, 4, 80).length, 2, 'a short terminal: the layers under way and the total');
  t.ok(
    pullLines({ ref: 'r:1', layers }, 24, 20).every((l) => l.length <= 19),
    'never wider than the terminal',
  );
});

/**
 * Issue 17: image references normalised as docker and podman read them
 * (distribution/reference): the names `docker save`, `podman save`,
 * skopeo and containerd write, and what users type.
 */
import t from 'tap';
import { normalizeRef, parseReference } from '../../src/lib/image/reference';

t.test('one canonical name for every spelling of it', async (t) => {
  const cases: Array<[string, string]> = [
    ['busybox', 'docker.io/library/busybox:latest'],
    ['busybox:latest', 'docker.io/library/busybox:latest'],
    ['library/busybox', 'docker.io/library/busybox:latest'],
    ['docker.io/library/busybox:latest', 'docker.io/library/busybox:latest'],
    ['docker.io/busybox:1.36', 'docker.io/library/busybox:1.36'],
    ['test/img:docker', 'docker.io/test/img:docker'],
    ['localhost/mine:1', 'localhost/mine:1'],
    ['localhost:5000/team/app:v2', 'localhost:5000/team/app:v2'],
    ['quay.io/podman/hello', 'quay.io/podman/hello:latest'],
    ['registry.example.com:443/a/b/c:1.0-rc.1', 'registry.example.com:443/a/b/c:1.0-rc.1'],
    ['Registry/app', 'Registry/app:latest'],
    [`busybox@sha256:${'a'.repeat(64)}`, `docker.io/library/busybox@sha256:${'a'.repeat(64)}`],
    [`busybox:1.36@sha256:${'b'.repeat(64)}`, `docker.io/library/busybox:1.36@sha256:${'b'.repeat(64)}`],
    ['my_app__x/y-z.w:tag_1', 'docker.io/my_app__x/y-z.w:tag_1'],
    ['index.docker.io/busybox', 'docker.io/library/busybox:latest'],
    ['index.docker.io/team/app:2', 'docker.io/team/app:2'],
  ];
  for (const [typed, canonical] of cases) t.equal(normalizeRef(typed), canonical, typed);
});

t.test('whether the text named a registry (podman also tries localhost/ for a short name)', async (t) => {
  t.equal(parseReference('busybox').domainGiven, false);
  t.equal(parseReference('library/busybox').domainGiven, false);
  t.equal(parseReference('docker.io/busybox').domainGiven, true);
  t.equal(parseReference('localhost/x').domainGiven, true);
});

t.test('what is not a reference: one line that says why', async (t) => {
  const cases: Array<[string, RegExp]> = [
    ['', /it is empty/],
    ['Busybox', /"Busybox" is not a repository name component/],
    ['busy box', /"busy box" is not a repository name component/],
    ['a//b', /"" is not a repository name component/],
    ['busybox:-x', /"-x" is not a tag/],
    ['busybox:', /"" is not a tag/],
    ['busybox@sha256:abc', /"sha256:abc" is not a sha256 digest/],
    ['docker.io/', /names no repository/],
    ['exa_mple.com:x/app', /is not a tag|is not a registry host/],
    [`${'a'.repeat(256)}`, /longer than 255/],
    ['a:b\nc', /is not a tag/],
  ];
  for (const [text, why] of cases) {
    t.throws(() => parseReference(text), { message: why }, JSON.stringify(text));
    try {
      parseReference(text);
    } catch (err) {
      t.match(
        (err as Error).message,
        new RegExp(`^image reference ".*" is not valid: `, 's'),
        `${JSON.stringify(text)}: names the reference`,
      );
    }
  }
});

// Repository locations parsed as restic parses them (internal/backend/s3/config_test.go's cases),
// and the object keys restic's default layout gives them.
import test from 'ava';
import { BackendError } from '../../src/repository/backends/backend.ts';
import { credentialsFromEnv, S3Backend } from '../../src/repository/backends/s3.ts';
import { isS3Location, parseS3Location } from '../../src/repository/backends/s3-location.ts';

const cases: [string, string, string, string, string][] = [
  // location, scheme, host, bucket, prefix
  ['s3://eu-central-1/bucketname', 'https', 'eu-central-1', 'bucketname', ''],
  ['s3://eu-central-1/bucketname/', 'https', 'eu-central-1', 'bucketname', ''],
  ['s3://eu-central-1/bucketname/prefix/directory', 'https', 'eu-central-1', 'bucketname', 'prefix/directory'],
  ['s3://eu-central-1/bucketname/prefix/directory/', 'https', 'eu-central-1', 'bucketname', 'prefix/directory'],
  ['s3:eu-central-1/foobar', 'https', 'eu-central-1', 'foobar', ''],
  ['s3:eu-central-1/foobar/prefix/directory/', 'https', 'eu-central-1', 'foobar', 'prefix/directory'],
  ['s3:hostname.foo/foobar/prefix/directory', 'https', 'hostname.foo', 'foobar', 'prefix/directory'],
  ['s3:https://hostname/foobar', 'https', 'hostname', 'foobar', ''],
  ['s3:https://hostname:9999/foobar', 'https', 'hostname:9999', 'foobar', ''],
  ['s3:https://hostname:9999/foobar/', 'https', 'hostname:9999', 'foobar', ''],
  ['s3:http://hostname:9999/foobar', 'http', 'hostname:9999', 'foobar', ''],
  ['s3:http://hostname:9999/bucket/prefix/directory', 'http', 'hostname:9999', 'bucket', 'prefix/directory'],
  ['s3:http://hostname:9999/bucket/prefix/directory/', 'http', 'hostname:9999', 'bucket', 'prefix/directory'],
  // path.Clean of the prefix, as restic does
  ['s3:http://127.0.0.1:9000/bucket/a//b/./c/../d', 'http', '127.0.0.1:9000', 'bucket', 'a/b/d'],
  ['s3:http://[::1]:9000/bucket/p', 'http', '[::1]:9000', 'bucket', 'p'],
];

for (const [location, scheme, host, bucket, prefix] of cases) {
  test(`parses ${location}`, (t) => {
    t.deepEqual(parseS3Location(location), { scheme, host, bucket, prefix });
  });
}

test('isS3Location tells restic\'s s3: locations from directories', (t) => {
  t.true(isS3Location('s3:https://h/b'));
  t.true(isS3Location('s3://h/b'));
  t.false(isS3Location('/srv/restic'));
  t.false(isS3Location('./s3:odd-directory'));
});

test('refuses what is not an S3 location, saying the expected form', (t) => {
  for (const location of ['s3:http://h/bucket/%zz', 's3:', 's3://', 's3:http://hostname:9999', 's3:http://hostname:9999/', 's3:/bucket', 'https://host/bucket', '/srv/repo', 's3:ftp://h/b']) {
    const error = t.throws(() => parseS3Location(location), { instanceOf: BackendError }, location);
    t.regex(error!.message, /expected s3:https:\/\/HOST\[:PORT\]\/BUCKET\[\/PREFIX\]/);
  }
});

test('keys: restic\'s layout under the prefix, or at the bucket\'s root without one', (t) => {
  const credentials = { accessKeyId: 'a', secretAccessKey: 's' };
  const id = '0123456789abcdef'.repeat(4);
  const withPrefix = new S3Backend('s3:http://127.0.0.1:1/bucket/some/repo/', { credentials });
  t.is(withPrefix.key('config', 'config'), 'some/repo/config');
  t.is(withPrefix.key('data', id), `some/repo/data/01/${id}`);
  t.is(withPrefix.key('keys', id), `some/repo/keys/${id}`);
  t.is(withPrefix.key('locks', id), `some/repo/locks/${id}`);
  t.is(withPrefix.key('snapshots', id), `some/repo/snapshots/${id}`);
  t.is(withPrefix.key('index', id), `some/repo/index/${id}`);
  const atRoot = new S3Backend('s3:http://127.0.0.1:1/bucket', { credentials });
  t.is(atRoot.key('config', 'config'), 'config');
  t.is(atRoot.key('data', id), `data/01/${id}`);
  t.throws(() => atRoot.key('data', '../x'), { instanceOf: RangeError });
  t.throws(() => atRoot.key('keys', ''), { instanceOf: RangeError });
});

test('credentials and region from the environment; none is a clear error', (t) => {
  t.deepEqual(credentialsFromEnv({ AWS_ACCESS_KEY_ID: 'id', AWS_SECRET_ACCESS_KEY: 'secret' }), { accessKeyId: 'id', secretAccessKey: 'secret' });
  t.deepEqual(credentialsFromEnv({ AWS_ACCESS_KEY_ID: 'id', AWS_SECRET_ACCESS_KEY: 'secret', AWS_SESSION_TOKEN: 'tok' }), {
    accessKeyId: 'id',
    secretAccessKey: 'secret',
    sessionToken: 'tok',
  });
  t.is(credentialsFromEnv({ AWS_ACCESS_KEY_ID: 'id' }), undefined);
  t.is(new S3Backend('s3:http://h:1/bucket', { env: { AWS_ACCESS_KEY_ID: 'i', AWS_SECRET_ACCESS_KEY: 's' } }).region, 'us-east-1');
  t.is(new S3Backend('s3:http://h:1/bucket', { env: { AWS_ACCESS_KEY_ID: 'i', AWS_SECRET_ACCESS_KEY: 's', AWS_DEFAULT_REGION: 'eu-west-1' } }).region, 'eu-west-1');
  const error = t.throws(() => new S3Backend('s3:https://s3.example.com/bucket/repo', { env: {} }), { instanceOf: BackendError });
  t.is(error!.message, 'no credentials for S3 endpoint https://s3.example.com (bucket "bucket"): set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY');
});

test('--cacert: an unreadable or non-PEM file is named', (t) => {
  const credentials = { accessKeyId: 'a', secretAccessKey: 's' };
  t.throws(() => new S3Backend('s3:https://h/bucket', { credentials, caCertFile: '/nonexistent/ca.pem' }), {
    instanceOf: BackendError,
    message: /cannot read the CA certificate file \/nonexistent\/ca.pem \(--cacert\)/,
  });
  t.throws(() => new S3Backend('s3:https://h/bucket', { credentials, caCertFile: import.meta.filename }), {
    instanceOf: BackendError,
    message: /holds no PEM certificate/,
  });
});

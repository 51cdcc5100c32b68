// The signer against AWS's published examples: the four S3 examples of "Authenticating Requests:
// Using the Authorization Header (AWS Signature Version 4)" and get-vanilla from the generic SigV4
// test suite. The S3 examples sign x-amz-content-sha256; get-vanilla signs no payload header.
import test from 'ava';
import { canonicalQueryString, EMPTY_PAYLOAD_SHA256, encodeKeyPath, sha256Hex, sign, uriEncode } from '../../src/repository/backends/s3-sigv4.ts';

const s3Example = {
  host: 'examplebucket.s3.amazonaws.com',
  region: 'us-east-1',
  credentials: { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' },
  now: new Date('2013-05-24T00:00:00Z'),
};

test('S3 example: GET object with a range', (t) => {
  const signed = sign({ ...s3Example, method: 'GET', path: '/test.txt', headers: { Range: 'bytes=0-9' }, payloadHash: EMPTY_PAYLOAD_SHA256 });
  t.is(sha256Hex(signed.canonicalRequest), '7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972');
  t.is(signed.signature, 'f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41');
  t.is(
    signed.headers.authorization,
    'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41',
  );
  t.is(signed.headers['x-amz-date'], '20130524T000000Z');
});

test('S3 example: PUT object, the payload hashed and a key with $ encoded once', (t) => {
  const body = Buffer.from('Welcome to Amazon S3.');
  const payloadHash = sha256Hex(body);
  t.is(payloadHash, '44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072');
  const path = '/' + uriEncode('test$file.text', true);
  t.is(path, '/test%24file.text');
  const signed = sign({
    ...s3Example,
    method: 'PUT',
    path,
    headers: { Date: 'Fri, 24 May 2013 00:00:00 GMT', 'x-amz-storage-class': 'REDUCED_REDUNDANCY' },
    payloadHash,
  });
  t.is(signed.signature, '98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd');
  t.regex(signed.headers.authorization!, /SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,/);
});

test('S3 example: GET bucket lifecycle, a parameter without a value', (t) => {
  const signed = sign({ ...s3Example, method: 'GET', path: '/', query: { lifecycle: '' }, payloadHash: EMPTY_PAYLOAD_SHA256 });
  t.is(sha256Hex(signed.canonicalRequest), '9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca');
  t.is(signed.signature, 'fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543');
});

test('S3 example: list objects, query parameters sorted', (t) => {
  const signed = sign({ ...s3Example, method: 'GET', path: '/', query: { prefix: 'J', 'max-keys': '2' }, payloadHash: EMPTY_PAYLOAD_SHA256 });
  t.is(signed.signature, '34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7');
});

test('SigV4 test suite: get-vanilla', (t) => {
  const signed = sign({
    method: 'GET',
    host: 'example.amazonaws.com',
    path: '/',
    payloadHash: EMPTY_PAYLOAD_SHA256,
    region: 'us-east-1',
    service: 'service',
    credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' },
    now: new Date('2015-08-30T12:36:00Z'),
    contentSha256Header: false,
  });
  t.is(signed.canonicalRequest, `GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n${EMPTY_PAYLOAD_SHA256}`);
  t.is(signed.signature, '5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31');
});

test('a session token is sent and signed', (t) => {
  const signed = sign({ ...s3Example, credentials: { ...s3Example.credentials, sessionToken: 'TOKEN' }, method: 'GET', path: '/', payloadHash: EMPTY_PAYLOAD_SHA256 });
  t.is(signed.headers['x-amz-security-token'], 'TOKEN');
  t.regex(signed.headers.authorization!, /SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,/);
});

test('encoding: keys once with slashes kept, query values with slashes encoded, UTF-8 bytes', (t) => {
  t.is(uriEncode("a b+c/d~e_f.g-h!'()*", true), 'a%20b%2Bc/d~e_f.g-h%21%27%28%29%2A');
  t.is(uriEncode('a/b', false), 'a%2Fb');
  t.is(uriEncode('ü', false), '%C3%BC');
  t.is(encodeKeyPath('bucket', 'repo/data/ab/abcd'), '/bucket/repo/data/ab/abcd');
  t.is(encodeKeyPath('bucket', ''), '/bucket');
  t.is(canonicalQueryString({ prefix: 'repo/keys/', 'list-type': '2', 'continuation-token': 'a+b=' }), 'continuation-token=a%2Bb%3D&list-type=2&prefix=repo%2Fkeys%2F');
});

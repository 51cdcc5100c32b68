// The ListObjectsV2 and error-document parser: the shapes AWS documents, entities in keys,
// truncation, and refusal of what it does not understand.
import test from 'ava';
import { decodeEntities, parseErrorDocument, parseListObjectsV2, parseXml, XmlError } from '../../src/repository/backends/s3-xml.ts';

const page = (body: string) => `<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${body}</ListBucketResult>`;

test('a truncated page: keys, sizes, the continuation token', (t) => {
  const result = parseListObjectsV2(page(`
    <Name>bucket</Name><Prefix>repo/keys/</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys>
    <IsTruncated>true</IsTruncated>
    <Contents><Key>repo/keys/aa</Key><LastModified>2026-12-06T04:00:00.000Z</LastModified>
      <ETag>&quot;d41d8cd98f00b204e9800998ecf8427e&quot;</ETag><Size>0</Size><StorageClass>STANDARD</StorageClass></Contents>
    <Contents><Key>repo/keys/bb</Key><Size>1234567890123</Size></Contents>
    <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>`));
  t.deepEqual(result, {
    objects: [{ key: 'repo/keys/aa', size: 0 }, { key: 'repo/keys/bb', size: 1234567890123 }],
    commonPrefixes: [],
    isTruncated: true,
    nextContinuationToken: '1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=',
  });
});

test('the last page, common prefixes, an empty listing', (t) => {
  const result = parseListObjectsV2(page(`<IsTruncated>false</IsTruncated>
    <CommonPrefixes><Prefix>repo/data/00/</Prefix></CommonPrefixes><CommonPrefixes><Prefix>repo/data/01/</Prefix></CommonPrefixes>`));
  t.deepEqual(result, { objects: [], commonPrefixes: ['repo/data/00/', 'repo/data/01/'], isTruncated: false });
  t.deepEqual(parseListObjectsV2(page('<KeyCount>0</KeyCount><IsTruncated>false</IsTruncated>')).objects, []);
  t.deepEqual(parseListObjectsV2('<ListBucketResult/>'), { objects: [], commonPrefixes: [], isTruncated: false });
});

test('entities and character references in keys are decoded; CDATA kept verbatim', (t) => {
  const result = parseListObjectsV2(page(`<IsTruncated>false</IsTruncated>
    <Contents><Key>a&amp;b &lt;c&gt; &quot;d&quot; &apos;e&apos; &#38;&#x26; &#xE9;&#128512;&#x0D;</Key><Size>1</Size></Contents>
    <Contents><Key><![CDATA[x&amp;<y>]]></Key><Size>2</Size></Contents>`));
  t.deepEqual(result.objects, [
    { key: `a&b <c> "d" 'e' && é😀\r`, size: 1 },
    { key: 'x&amp;<y>', size: 2 },
  ]);
});

test('literal line ends are normalised as XML requires; a CR reference survives', (t) => {
  t.is(parseXml('<a>x\r\ny\rz&#xD;</a>').text, 'x\ny\nz\r');
});

test('url-encoded listings (encoding-type=url) are decoded', (t) => {
  const result = parseListObjectsV2(page(`<EncodingType>url</EncodingType><IsTruncated>false</IsTruncated>
    <Contents><Key>a%2Fb+c%0A%C3%A9</Key><Size>3</Size></Contents>`));
  t.deepEqual(result.objects, [{ key: 'a/b c\né', size: 3 }]);
});

test('a namespace prefix on the elements is accepted', (t) => {
  const result = parseListObjectsV2(`<s3:ListBucketResult xmlns:s3="http://s3.amazonaws.com/doc/2006-03-01/">
    <s3:IsTruncated>false</s3:IsTruncated><s3:Contents><s3:Key>k</s3:Key><s3:Size>5</s3:Size></s3:Contents></s3:ListBucketResult>`);
  t.deepEqual(result.objects, [{ key: 'k', size: 5 }]);
});

test('an attribute value may hold ">" and "/>"', (t) => {
  const root = parseXml(`<a x="1 > 2" y='/>'><b/>text</a>`);
  t.is(root.name, 'a');
  t.is(root.children.length, 1);
  t.is(root.text, 'text');
});

test('malformed documents are refused, never guessed at', (t) => {
  const bad = [
    '<a><b></a></b>',
    '<a>',
    '<a></a><b></b>',
    'text<a></a>',
    '<a>&unknown;</a>',
    '<a>& </a>',
    '<a>&#0;</a>',
    '<a>&#xD800;</a>',
    '<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>',
    '<a x=1></a>',
    '<a x="1></a>',
    '',
  ];
  for (const doc of bad) t.throws(() => parseXml(doc), { instanceOf: XmlError }, doc);
  t.throws(() => parseListObjectsV2(page('<Contents><Key>k</Key></Contents>')), { message: /Size/ });
  t.throws(() => parseListObjectsV2(page('<Contents><Key>k</Key><Size>-1</Size></Contents>')), { message: /Size/ });
  t.throws(() => parseListObjectsV2(page('<Contents><Size>1</Size></Contents>')), { message: /Key/ });
  t.throws(() => parseListObjectsV2(page('<IsTruncated>maybe</IsTruncated>')), { message: /IsTruncated/ });
  t.throws(() => parseListObjectsV2('<Error><Code>NoSuchBucket</Code></Error>'), { message: /ListBucketResult/ });
  t.throws(() => parseListObjectsV2(page('<Contents><Key>k</Key><Size>99999999999999999999</Size></Contents>')), { message: /too large/ });
});

test('decodeEntities leaves plain text alone', (t) => {
  t.is(decodeEntities('abc/def 0123'), 'abc/def 0123');
});

test('error documents: code, message, region; anything else is not one', (t) => {
  t.deepEqual(
    parseErrorDocument(`<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match the signature you provided. Check your key and signing method.</Message><RequestId>4442587FB7D0A2F9</RequestId></Error>`),
    { code: 'SignatureDoesNotMatch', message: 'The request signature we calculated does not match the signature you provided. Check your key and signing method.' },
  );
  t.deepEqual(parseErrorDocument('<Error><Code>AuthorizationHeaderMalformed</Code><Region>eu-west-1</Region></Error>'), {
    code: 'AuthorizationHeaderMalformed',
    region: 'eu-west-1',
  });
  t.is(parseErrorDocument(''), undefined);
  t.is(parseErrorDocument('<html><body>502 Bad Gateway</body></html>'), undefined);
  t.is(parseErrorDocument('<html><body><hr></body></html>'), undefined);
});

/**
 * The little XML S3 answers with: ListObjectsV2 results and error documents. A strict parser for
 * the subset S3 uses (elements, attributes, text, the five named entities and numeric character
 * references, CDATA, comments, the XML declaration); no DTDs, so no entity expansion. Anything it
 * does not understand is an error, never a guess: a listing read wrong would make files vanish.
 */

export interface XmlElement {
  name: string;
  children: XmlElement[];
  /** The element's own text (character data directly inside it), entities decoded. */
  text: string;
}

export class XmlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'XmlError';
  }
}

const NAMED_ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

export function decodeEntities(text: string): string {
  return text.replace(/&([^;&\s]*);?/g, (match, body: string) => {
    if (!match.endsWith(';')) throw new XmlError(`unterminated entity "${match}"`);
    const named = NAMED_ENTITIES[body];
    if (named !== undefined) return named;
    const numeric = /^#(?:x([0-9a-fA-F]+)|([0-9]+))$/.exec(body);
    if (numeric) {
      const code = numeric[1] !== undefined ? parseInt(numeric[1], 16) : parseInt(numeric[2]!, 10);
      if (code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff) || code === 0) throw new XmlError(`invalid character reference "${match}"`);
      return String.fromCodePoint(code);
    }
    throw new XmlError(`unknown entity "${match}"`);
  });
}

const NAME = /[A-Za-z_:][-A-Za-z0-9_.:]*/y;

/** The XML name starting exactly at `at`, or undefined. */
function nameAt(doc: string, at: number): string | undefined {
  NAME.lastIndex = at;
  return NAME.exec(doc)?.[0];
}

/** Parses a document into its root element. */
export function parseXml(doc: string): XmlElement {
  let i = 0;
  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;
  const fail = (what: string): never => {
    throw new XmlError(`${what} at offset ${i}`);
  };
  if (doc.charCodeAt(0) === 0xfeff) i = 1;
  while (i < doc.length) {
    const lt = doc.indexOf('<', i);
    const textEnd = lt === -1 ? doc.length : lt;
    if (textEnd > i) {
      const raw = doc.slice(i, textEnd);
      const top = stack[stack.length - 1];
      // XML turns a literal CR LF or CR into LF before parsing; a CR in a key arrives as &#xD;.
      if (top) top.text += decodeEntities(raw.replace(/\r\n?/g, '\n'));
      else if (raw.trim() !== '') fail('text outside the root element');
      i = textEnd;
      continue;
    }
    // A markup construct starts at i.
    if (doc.startsWith('<?', i)) {
      const end = doc.indexOf('?>', i);
      if (end === -1) fail('unterminated processing instruction');
      i = end + 2;
    } else if (doc.startsWith('<!--', i)) {
      const end = doc.indexOf('-->', i);
      if (end === -1) fail('unterminated comment');
      i = end + 3;
    } else if (doc.startsWith('<![CDATA[', i)) {
      const end = doc.indexOf(']]>', i);
      const top = stack[stack.length - 1];
      if (end === -1 || !top) fail('misplaced or unterminated CDATA');
      top!.text += doc.slice(i + 9, end).replace(/\r\n?/g, '\n');
      i = end + 3;
    } else if (doc.startsWith('<!', i)) {
      fail('DTDs are not accepted');
    } else if (doc.startsWith('</', i)) {
      const name = nameAt(doc, i + 2);
      const end = doc.indexOf('>', i);
      const top = stack.pop();
      if (!name || end === -1 || doc.slice(i + 2 + name.length, end).trim() !== '') fail('malformed end tag');
      if (!top || top.name !== name) fail(`end tag </${name}> does not match <${top?.name ?? ''}>`);
      i = end + 1;
    } else {
      const name = nameAt(doc, i + 1);
      if (!name) fail('malformed start tag');
      let j = i + 1 + name!.length;
      // Attributes: skipped, but parsed so that a '>' inside a quoted value cannot end the tag.
      for (;;) {
        while (/\s/.test(doc[j] ?? '')) j++;
        if (doc[j] === '>' || doc.startsWith('/>', j)) break;
        const attr = nameAt(doc, j);
        if (!attr) fail('malformed attribute');
        j += attr!.length;
        while (/\s/.test(doc[j] ?? '')) j++;
        if (doc[j] !== '=') fail('attribute without a value');
        j++;
        while (/\s/.test(doc[j] ?? '')) j++;
        const quote = doc[j];
        if (quote !== '"' && quote !== "'") fail('unquoted attribute value');
        const close = doc.indexOf(quote!, j + 1);
        if (close === -1) fail('unterminated attribute value');
        decodeEntities(doc.slice(j + 1, close));
        j = close + 1;
      }
      const element: XmlElement = { name: name!, children: [], text: '' };
      const parent = stack[stack.length - 1];
      if (parent) parent.children.push(element);
      else if (root) fail('a second root element');
      else root = element;
      if (doc[j] === '>') {
        stack.push(element);
        i = j + 1;
      } else {
        i = j + 2;
      }
    }
  }
  if (stack.length > 0) throw new XmlError(`unclosed element <${stack[stack.length - 1]!.name}>`);
  if (!root) throw new XmlError('no root element');
  return root;
}

/** The text of the first child element with this name (local name, any namespace prefix). */
export function childText(element: XmlElement, name: string): string | undefined {
  return element.children.find((c) => localName(c.name) === name)?.text;
}

function localName(name: string): string {
  const colon = name.indexOf(':');
  return colon === -1 ? name : name.slice(colon + 1);
}

export interface ListPage {
  objects: { key: string; size: number }[];
  commonPrefixes: string[];
  isTruncated: boolean;
  nextContinuationToken?: string;
}

/** A ListObjectsV2 answer. With encoding-type=url, keys and prefixes come back percent-encoded. */
export function parseListObjectsV2(doc: string): ListPage {
  const root = parseXml(doc);
  if (localName(root.name) !== 'ListBucketResult') throw new XmlError(`expected ListBucketResult, got <${root.name}>`);
  const urlEncoded = childText(root, 'EncodingType')?.trim() === 'url';
  const decodeKey = (s: string): string => {
    if (!urlEncoded) return s;
    try {
      // S3 encodes a space as '+' in url-encoded listings, like a form.
      return decodeURIComponent(s.replace(/\+/g, ' '));
    } catch {
      throw new XmlError(`malformed url-encoded key "${s}"`);
    }
  };
  const objects: ListPage['objects'] = [];
  const commonPrefixes: string[] = [];
  for (const child of root.children) {
    const name = localName(child.name);
    if (name === 'Contents') {
      const key = childText(child, 'Key');
      const sizeText = childText(child, 'Size')?.trim();
      if (key === undefined) throw new XmlError('<Contents> without <Key>');
      if (sizeText === undefined || !/^[0-9]+$/.test(sizeText)) throw new XmlError(`<Contents> for "${key}" has no valid <Size>`);
      const size = Number(sizeText);
      if (!Number.isSafeInteger(size)) throw new XmlError(`<Size> ${sizeText} is too large`);
      objects.push({ key: decodeKey(key), size });
    } else if (name === 'CommonPrefixes') {
      const prefix = childText(child, 'Prefix');
      if (prefix !== undefined) commonPrefixes.push(decodeKey(prefix));
    }
  }
  const truncated = childText(root, 'IsTruncated')?.trim();
  if (truncated !== undefined && truncated !== 'true' && truncated !== 'false') throw new XmlError(`<IsTruncated> is "${truncated}"`);
  const isTruncated = truncated === 'true';
  const token = childText(root, 'NextContinuationToken');
  const page: ListPage = { objects, commonPrefixes, isTruncated };
  if (token !== undefined && token !== '') page.nextContinuationToken = token;
  return page;
}

export interface S3ErrorDocument {
  code?: string;
  message?: string;
  region?: string;
}

/** The Code and Message of an S3 error body, when it is one; undefined for anything else (a proxy's HTML). */
export function parseErrorDocument(doc: string): S3ErrorDocument | undefined {
  if (!doc.trim()) return undefined;
  try {
    const root = parseXml(doc);
    if (localName(root.name) !== 'Error') return undefined;
    const out: S3ErrorDocument = {};
    const code = childText(root, 'Code')?.trim();
    const message = childText(root, 'Message')?.trim();
    const region = childText(root, 'Region')?.trim();
    if (code) out.code = code;
    if (message) out.message = message;
    if (region) out.region = region;
    return out;
  } catch {
    return undefined;
  }
}

import test from 'ava';
import packageStringWidth from 'string-width';
import stringWidth from '../../src/cli/text-width.ts';

// The bundle answers every string-width import with text-width.ts: the package itself is the judge.
const SAMPLES = [
  '', 'backup', '  --parallel <n>  Claims copied at once  [number] [default: 4]', '\u001B[1m\u001B[31mfailed\u001B[39m\u001B[22m', '\tTab',
  '日本語のクレーム', 'ｶﾞｷﾞ ﾊﾝｶｸ', 'ＦＵＬＬ', 'café', 'cafe\u0301', 'e\u0301\u0302', '\u200B\u200Dzero', 'Ω≈ç√∫ ambiguous ±½',
  '👍', '👍🏽', '👨‍👩‍👧‍👦', '❤', '❤️', '1\u20E3', '#️⃣', '🏳️‍🌈', '\u1100\u1161\u11A8', '\u1100\u1100\u1161', '한국어', 'ก่อน', 'नमस्ते',
  '\u0000\u0007control', '\uD800 lone surrogate', 'mixed ascii 和 漢字 and 😀 emoji', '\u001B]8;;https://example.com\u0007link\u001B]8;;\u0007',
];

test('the same widths as string-width 8.3.0, for ASCII, colours, CJK, combining marks, emoji and Hangul', (t) => {
  for (const sample of SAMPLES) {
    t.is(stringWidth(sample), packageStringWidth(sample), JSON.stringify(sample));
    t.is(stringWidth(sample, { ambiguousIsNarrow: false }), packageStringWidth(sample, { ambiguousIsNarrow: false }), `${JSON.stringify(sample)} ambiguous wide`);
    t.is(stringWidth(sample, { countAnsiEscapeCodes: true }), packageStringWidth(sample, { countAnsiEscapeCodes: true }), `${JSON.stringify(sample)} counting escapes`);
  }
});

test('anything but a string is 0 columns wide, as the package says', (t) => {
  for (const value of [undefined, null, 42, {}]) t.is(stringWidth(value), packageStringWidth(value as string));
});

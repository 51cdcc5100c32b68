/**
 * How many terminal columns a string takes: string-width 8.3.0's rules (MIT, Sindre Sorhus), which
 * yargs' help layout asks of every cell. The bundle uses this module for every import of
 * `string-width` (build.mjs), because the package builds an Intl.Segmenter and Unicode-property
 * regular expressions (\p{RGI_Emoji} alone ~15 ms) when it is loaded, and its 7.x copies under
 * cliui and wrap-ansi segment even plain ASCII: together ~40 ms of every command's start, for text
 * that is ASCII unless a user typed otherwise. Here the ASCII path is a length and the rest is
 * built on first use. test/unit/text-width.test.ts holds it to the package's answers.
 */
import stripAnsi from 'strip-ansi';
import { eastAsianWidth } from 'get-east-asian-width';

interface WidthOptions {
  ambiguousIsNarrow?: boolean;
  countAnsiEscapeCodes?: boolean;
}

interface UnicodeRules {
  segmenter: Intl.Segmenter;
  /** A printing character: finds a cluster's base and tells zero-width clusters. */
  visible: RegExp;
  spacingMark: RegExp;
  rgiEmoji: RegExp;
  unqualifiedKeycap: RegExp;
  extendedPictographic: RegExp;
}

let rules: UnicodeRules | undefined;

function unicodeRules(): UnicodeRules {
  return (rules ??= {
    segmenter: new Intl.Segmenter(),
    visible: /[^\p{Default_Ignorable_Code_Point}\p{Control}\p{Format}\p{Nonspacing_Mark}\p{Enclosing_Mark}\p{Surrogate}]/v,
    spacingMark: /\p{Spacing_Mark}/v,
    rgiEmoji: /^\p{RGI_Emoji}$/v,
    unqualifiedKeycap: /^[\d#*]\u20E3$/,
    extendedPictographic: /\p{Extended_Pictographic}/gu,
  });
}

/** Emoji written without VS16, or ZWJ sequences of two pictographs: terminals draw them double-width. */
function isDoubleWidthNonRgiEmojiSequence(segment: string, r: UnicodeRules): boolean {
  if (segment.length > 50) return false; // real emoji clusters are shorter; pathological input is not
  if (r.unqualifiedKeycap.test(segment)) return true;
  if (segment.includes('\u200D')) return (segment.match(r.extendedPictographic)?.length ?? 0) >= 2;
  return false;
}

const isHangulLeadingJamo = (c: number | undefined) => c !== undefined && ((c >= 0x1100 && c <= 0x115f) || (c >= 0xa960 && c <= 0xa97c));
const isHangulVowelJamo = (c: number | undefined) => c !== undefined && ((c >= 0x1160 && c <= 0x11a7) || (c >= 0xd7b0 && c <= 0xd7c6));
const isHangulTrailingJamo = (c: number | undefined) => c !== undefined && ((c >= 0x11a8 && c <= 0x11ff) || (c >= 0xd7cb && c <= 0xd7fb));
const isHangulJamo = (c: number) => isHangulLeadingJamo(c) || isHangulVowelJamo(c) || isHangulTrailingJamo(c);

/** Modern Hangul L+V(+T) jamo make one syllable block of width 2; unmatched jamo add up. */
function hangulClusterWidth(visibleSegment: string, r: UnicodeRules, ambiguousAsWide: boolean): number | undefined {
  const codePoints: number[] = [];
  for (const character of visibleSegment) if (r.visible.test(character)) codePoints.push(character.codePointAt(0)!);
  if (codePoints.length === 0) return undefined;
  let width = 0;
  for (let index = 0; index < codePoints.length; index++) {
    const codePoint = codePoints[index]!;
    if (!isHangulJamo(codePoint)) {
      if (width === 0) return undefined;
      for (let remaining = index; remaining < codePoints.length; remaining++) width += eastAsianWidth(codePoints[remaining]!, { ambiguousAsWide });
      return width;
    }
    if (isHangulLeadingJamo(codePoint) && isHangulVowelJamo(codePoints[index + 1])) {
      width += 2;
      index += isHangulTrailingJamo(codePoints[index + 2]) ? 2 : 1;
      continue;
    }
    width += eastAsianWidth(codePoint, { ambiguousAsWide });
  }
  return width;
}

/** Spacing marks and Halfwidth/Fullwidth Forms after a cluster's base (dakuten, prolonged sound mark). */
function trailingWidth(visibleSegment: string, r: UnicodeRules, ambiguousAsWide: boolean): number {
  let extra = 0;
  let first = true;
  for (const character of visibleSegment) {
    if (first) {
      first = false;
      continue;
    }
    if (r.spacingMark.test(character) || (character >= '\uFF00' && character <= '\uFFEF')) extra += eastAsianWidth(character.codePointAt(0)!, { ambiguousAsWide });
  }
  return extra;
}

export default function stringWidth(input: unknown, options: WidthOptions = {}): number {
  if (typeof input !== 'string' || input.length === 0) return 0;
  const { ambiguousIsNarrow = true, countAnsiEscapeCodes = false } = options;
  const text = !countAnsiEscapeCodes && (input.includes('\u001B') || input.includes('\u009B')) ? stripAnsi(input) : input;
  if (/^[\u0020-\u007E]*$/.test(text)) return text.length;
  const r = unicodeRules();
  const ambiguousAsWide = !ambiguousIsNarrow;
  let width = 0;
  for (const { segment } of r.segmenter.segment(text)) {
    const visibleAt = segment.search(r.visible);
    if (visibleAt === -1) continue; // the whole cluster prints nothing
    const visibleSegment = segment.slice(visibleAt);
    if (r.rgiEmoji.test(segment) || isDoubleWidthNonRgiEmojiSequence(segment, r)) {
      width += 2;
      continue;
    }
    const hangul = hangulClusterWidth(visibleSegment, r, ambiguousAsWide);
    if (hangul !== undefined) {
      width += hangul;
      continue;
    }
    width += eastAsianWidth(visibleSegment.codePointAt(0)!, { ambiguousAsWide });
    width += trailingWidth(visibleSegment, r, ambiguousAsWide);
  }
  return width;
}

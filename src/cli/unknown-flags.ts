/**
 * yargs reports an unknown flag by its parsed names ("Unknown arguments: such-flag, suchFlag" for
 * `--no-such-flag`); users need the flag as they typed it, and the nearest real one, as kubectl
 * says "unknown flag: --no-such-flag".
 */

export interface UnknownArguments {
  message: string;
  hint: string | undefined;
}

/** Edit distance, for "did you mean". */
export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}

const kebab = (name: string) => name.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`);

/** The name a command-line token gives a flag: `--a-b=1` -> a-b, `-x` -> x; undefined for a non-flag. */
function flagName(token: string): string | undefined {
  if (!token.startsWith('-') || token === '-' || token === '--' || /^-\d/.test(token)) return undefined;
  return token.replace(/^--?/, '').replace(/=.*$/s, '');
}

/**
 * Rewrites yargs' message. `names` are what yargs listed; `argv` the words typed; `known` the
 * command's flags (long names and aliases). Returns undefined when the message is not about
 * unknown arguments.
 */
export function describeUnknownArguments(yargsMessage: string, argv: string[], known: string[]): UnknownArguments | undefined {
  const listed = /^Unknown arguments?: (.*)$/s.exec(yargsMessage);
  if (!listed) return undefined;
  const names = new Set(listed[1]!.split(', ').map((name) => kebab(name.trim())));
  const argumentsBeforeDashes = argv.slice(0, argv.includes('--') ? argv.indexOf('--') : argv.length);
  const flags: string[] = [];
  const words: string[] = [];
  for (const token of argumentsBeforeDashes) {
    const name = flagName(token);
    if (name === undefined) {
      if (names.has(token)) words.push(token);
    } else if (names.has(kebab(name)) || names.has(kebab(name.replace(/^no-/, '')))) {
      flags.push(token.replace(/=.*$/s, ''));
    }
  }
  const unique = [...new Set(flags)];
  if (unique.length === 0 && words.length === 0) return { message: yargsMessage.charAt(0).toLowerCase() + yargsMessage.slice(1), hint: undefined };
  const parts = [
    ...(unique.length ? [`unknown flag${unique.length > 1 ? 's' : ''}: ${unique.join(', ')}`] : []),
    ...(words.length ? [`unexpected argument${words.length > 1 ? 's' : ''}: ${words.map((word) => JSON.stringify(word)).join(', ')}`] : []),
  ];
  const suggestions = unique
    .map((flag) => {
      const typed = flag.replace(/^--?/, '');
      const best = known
        .filter((name) => name.length > 1)
        .map((name) => ({ name, distance: editDistance(typed, name) }))
        .sort((a, b) => a.distance - b.distance || a.name.localeCompare(b.name))[0];
      return best && best.distance <= Math.max(2, Math.floor(typed.length / 3)) ? `--${best.name} for ${flag}` : undefined;
    })
    .filter((text): text is string => text !== undefined);
  return { message: parts.join('; '), hint: suggestions.length ? `did you mean ${suggestions.join(', ')}?` : undefined };
}

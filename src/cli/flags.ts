/** Parsing of the flag values that are small languages of their own. */
import type { V1Toleration } from '@kubernetes/client-node';
import { UsageError } from '../errors.ts';

/** "cpu=100m,memory=64Mi" (or repeated flags) -> { cpu: '100m', memory: '64Mi' }. */
export function parseKeyValues(values: string[] | undefined, flag: string): Record<string, string> {
  const result: Record<string, string> = {};
  for (const item of (values ?? []).flatMap((value) => value.split(','))) {
    const trimmed = item.trim();
    if (!trimmed) continue;
    const separator = trimmed.indexOf('=');
    if (separator <= 0 || separator === trimmed.length - 1) {
      throw new UsageError(`invalid ${flag} "${trimmed}": expected key=value`, `e.g. ${flag} cpu=100m,memory=64Mi`);
    }
    result[trimmed.slice(0, separator)] = trimmed.slice(separator + 1);
  }
  return result;
}

const EFFECTS = new Set(['NoSchedule', 'PreferNoSchedule', 'NoExecute']);

/**
 * Tolerations as kubectl taints are written: "key=value:Effect", "key:Effect" (any value), "key"
 * (any value, any effect).
 */
export function parseToleration(text: string): V1Toleration {
  const match = /^([A-Za-z0-9][-A-Za-z0-9_./]*)(?:=([^:]*))?(?::([A-Za-z]+))?$/.exec(text.trim());
  if (!match) {
    throw new UsageError(`invalid --toleration "${text}"`, 'use key=value:Effect, key:Effect or key (Effect is NoSchedule, PreferNoSchedule or NoExecute)');
  }
  const [, key, value, effect] = match;
  if (effect && !EFFECTS.has(effect)) {
    throw new UsageError(`invalid --toleration "${text}": unknown effect "${effect}"`, 'the effect is NoSchedule, PreferNoSchedule or NoExecute');
  }
  return {
    key: key!,
    ...(value !== undefined ? { operator: 'Equal', value } : { operator: 'Exists' }),
    ...(effect ? { effect } : {}),
  };
}

export function parsePositiveInteger(value: number, flag: string, given: string = String(value)): number {
  if (!Number.isInteger(value) || value < 1) throw new UsageError(`${flag} must be a whole number of at least 1, not ${given}`);
  return value;
}

/** The environment variable `name` as a whole number of at least 1 (its text in the error, not NaN); undefined when unset. */
export function positiveIntegerFromEnv(name: string): number | undefined {
  const text = process.env[name];
  return text ? parsePositiveInteger(Number(text), name, JSON.stringify(text)) : undefined;
}

export function parseNonNegativeInteger(value: number, flag: string): number {
  if (!Number.isInteger(value) || value < 0) throw new UsageError(`${flag} must be a whole number of at least 0, not ${value}`);
  return value;
}

/**
 * The words given to a number flag that yargs read as NaN ("--parallel abc", "--limit=ten"), by
 * name, for a usage error that quotes them: yargs keeps no trace of the text, and a NaN passed on
 * was either reported as "NaN" or, where a flag is optional, silently dropped.
 */
export function notANumber(argv: readonly string[], parsed: Record<string, unknown>, numberFlags: readonly string[], aliases: Record<string, string[]>): { flag: string; given: string } | undefined {
  for (const name of numberFlags) {
    const value = parsed[name];
    if (!(typeof value === 'number' && Number.isNaN(value)) && !(Array.isArray(value) && value.some((item) => Number.isNaN(item)))) continue;
    const spellings = [name, ...(aliases[name] ?? [])].map((spelling) => (spelling.length === 1 ? `-${spelling}` : `--${spelling}`));
    for (let index = 0; index < argv.length; index++) {
      const word = argv[index]!;
      const spelling = spellings.find((candidate) => word === candidate || word.startsWith(`${candidate}=`));
      if (!spelling) continue;
      const given = word === spelling ? (argv[index + 1] ?? '') : word.slice(spelling.length + 1);
      if (Number.isNaN(Number(given)) || given.trim() === '') return { flag: `--${name}`, given };
    }
    return { flag: `--${name}`, given: '' };
  }
  return undefined;
}

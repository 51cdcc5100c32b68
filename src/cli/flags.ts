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

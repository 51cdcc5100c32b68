/**
 * The two functions yargs takes from node:assert (its platform shim imports them for internal sanity
 * checks), for the bundles (scripts/cli-bundle.ts): loading node:assert cost every start ~6 ms.
 * Same checks as node:assert's (Object.is), same failure: an error with the message given.
 */
function failure(message: string | Error | undefined, fallback: string): Error {
  return message instanceof Error ? message : new Error(message ?? fallback);
}

export function strictEqual(actual: unknown, expected: unknown, message?: string | Error): void {
  if (!Object.is(actual, expected)) throw failure(message, `Expected values to be strictly equal: ${String(actual)} !== ${String(expected)}`);
}

export function notStrictEqual(actual: unknown, expected: unknown, message?: string | Error): void {
  if (Object.is(actual, expected)) throw failure(message, `Expected "actual" to be strictly unequal to: ${String(expected)}`);
}

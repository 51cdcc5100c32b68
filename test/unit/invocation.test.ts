import test from 'ava';
import { chosenCommand } from '../../src/cli/invocation.ts';

// The global flags as main.ts hands them over (from yargs' own option table), aliases included.
const flags = {
  withValue: new Set(['kubeconfig', 'context', 'namespace', 'n', 'request-timeout', 'server', 's', 'as', 'as-group']),
  boolean: new Set(['debug', 'color', 'insecure-skip-tls-verify', 'help', 'h']),
};

test('the command is the first word that is not a flag or a flag\'s value, read as yargs reads the global flags', (t) => {
  t.is(chosenCommand(['backup', 'data', '-n', 'x'], flags), 'backup');
  t.is(chosenCommand(['-n', 'backup', 'discover'], flags), 'discover', '-n takes the next word');
  t.is(chosenCommand(['--namespace', 'artifacts', 'verify'], flags), 'verify');
  t.is(chosenCommand(['--namespace=ns', 'restore', 'id'], flags), 'restore');
  t.is(chosenCommand(['-nns', 'discover'], flags), 'discover', 'a short flag with its value attached');
  t.is(chosenCommand(['--debug', 'discover'], flags), 'discover');
  t.is(chosenCommand(['--debug', 'false', 'discover'], flags), 'discover', 'a boolean takes an explicit true or false');
  t.is(chosenCommand(['--no-color', 'artifacts', 'list'], flags), 'artifacts');
  t.is(chosenCommand(['--as-group', 'a', '--as-group', 'b', 'discover'], flags), 'discover', 'a repeatable flag takes one word each time');
  t.is(chosenCommand(['--unknown-flag', 'discover'], flags), 'discover', 'an unknown flag is left to yargs');
  t.is(chosenCommand(['--', 'discover'], flags), 'discover');
  t.is(chosenCommand(['--help'], flags), undefined);
  t.is(chosenCommand([], flags), undefined);
});

import test from 'ava';
import { asList, colorLevel, renderTable, toJson, toYaml } from '../../src/cli/output.ts';
import { parseDuration } from '../../src/cli/global-options.ts';

test('colour: --no-color, then NO_COLOR, then FORCE_COLOR, then the terminal decide', (t) => {
  t.is(colorLevel({ noColorFlag: true, env: { FORCE_COLOR: '3' }, isTTY: true }), 0);
  t.is(colorLevel({ noColorFlag: false, env: { NO_COLOR: '1', FORCE_COLOR: '3' }, isTTY: true }), 0);
  t.is(colorLevel({ noColorFlag: false, env: { FORCE_COLOR: '2' }, isTTY: false }), 2);
  t.is(colorLevel({ noColorFlag: false, env: { FORCE_COLOR: '0' }, isTTY: true }), 0);
  t.is(colorLevel({ noColorFlag: false, env: {}, isTTY: true }), 1);
  t.is(colorLevel({ noColorFlag: false, env: { TERM: 'dumb' }, isTTY: true }), 0);
  t.is(colorLevel({ noColorFlag: false, env: {}, isTTY: false }), 0);
});

test('tables are aligned under upper-case headers, ignoring colour codes, without trailing spaces', (t) => {
  const table = renderTable(['name', 'phase', 'note'], [
    ['a', '\u001b[32mBound\u001b[39m', ''],
    ['longer-name', 'Pending', 'x'],
  ]);
  t.is(table, 'NAME          PHASE     NOTE\na             \u001b[32mBound\u001b[39m\nlonger-name   Pending   x\n');
});

test('lists are kubectl List documents in JSON and YAML', (t) => {
  const list = asList([{ name: 'a' }]);
  t.deepEqual(JSON.parse(toJson(list)), { apiVersion: 'v1', kind: 'List', items: [{ name: 'a' }] });
  t.is(toYaml(list), 'apiVersion: v1\nkind: List\nitems:\n  - name: a\n');
});

test('durations parse like kubectl flags and reject nonsense with a usage error', (t) => {
  t.is(parseDuration('30s', '--x'), 30_000);
  t.is(parseDuration('1m30s', '--x'), 90_000);
  t.is(parseDuration('500ms', '--x'), 500);
  t.is(parseDuration('2', '--x'), 2000);
  t.is(parseDuration('0', '--x'), 0);
  t.is(parseDuration('30d', '--x'), 30 * 86_400_000);
  t.is(parseDuration('1d12h', '--x'), 36 * 3_600_000);
  const error = t.throws(() => parseDuration('soon', '--request-timeout'));
  t.is(error!.name, 'UsageError');
  t.regex(error!.message, /invalid duration for --request-timeout: "soon"/);
  t.throws(() => parseDuration('5x', '--x'));
});

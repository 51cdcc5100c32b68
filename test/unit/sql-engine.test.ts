import test from 'ava';
import { execa } from 'execa';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { opensCatalog } from '../../src/cli/catalog-commands.ts';
import { firstWord } from '../../src/cli/invocation.ts';

const engine = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'store', 'sql-engine.ts');

// Node's event loop does not wait for a WebAssembly compile: a process whose only pending work is
// SQLite's compile ended silently, exit code 0, with the catalog never read (`artifacts list` printed
// nothing). Here nothing else is pending either.
test('a process whose only pending work is compiling SQLite waits for it, then runs its statement', async (t) => {
  const script = `
    const { compileSqlEngineAhead, sqlEngine } = await import(${JSON.stringify(engine)});
    compileSqlEngineAhead();
    const SQL = await sqlEngine();
    console.log(new SQL.Database().exec('SELECT 6 * 7')[0].values[0][0]);
  `;
  const run = await execa(process.execPath, ['--input-type=module', '-e', script], { reject: false });
  t.is(run.exitCode, 0, run.stderr);
  t.is(run.stdout, '42');
});

test('the commands that open the catalog start its compile; others do not', (t) => {
  t.true(opensCatalog(firstWord(['artifacts', 'list'])));
  t.false(opensCatalog(firstWord(['--context', 'x', 'backup', 'data'])), 'a flag value is taken for the command: only a head start is lost');
  t.true(opensCatalog(firstWord(['-v', 'backup'])));
  t.false(opensCatalog(firstWord(['discover', '-A'])));
  t.false(opensCatalog(firstWord([])));
});

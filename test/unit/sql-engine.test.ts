import test from 'ava';
import { execa } from 'execa';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { opensCatalog } from '../../src/cli/head-starts.ts';
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

// The WebAssembly tiering flags are the process's: SQLite's baseline-only flags, set after the
// chunker's loop was compiled (a repository opened before the catalog), would slow that loop by half.
test('SQLite asks for the baseline compiler only until a hot loop has been compiled, not after', async (t) => {
  const compilation = path.join(path.dirname(engine), '..', 'wasm-compilation.ts');
  const chunker = path.join(path.dirname(engine), '..', 'repository', 'chunker.ts');
  const script = `
    const { runWebAssemblyOnBaselineOnly } = await import(${JSON.stringify(compilation)});
    const { Chunker } = await import(${JSON.stringify(chunker)});
    const before = runWebAssemblyOnBaselineOnly();
    new Chunker(0x3da3358b4dc173n).push(new Uint8Array(600 * 1024));
    console.log(JSON.stringify([before, runWebAssemblyOnBaselineOnly()]));
  `;
  const run = await execa(process.execPath, ['--input-type=module', '-e', script], { reject: false });
  t.is(run.exitCode, 0, run.stderr);
  t.deepEqual(JSON.parse(run.stdout), [true, false]);
});

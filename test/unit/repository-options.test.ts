import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chooseRepository, createKeyFile, findPassword, readSavedRepository, saveRepository } from '../../src/cli/repository-options.ts';

const none = { repo: undefined, passwordFile: undefined, cacert: undefined };

function home(t: { teardown(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-repo-options-'));
  const previous = process.env.NKVM_HOME;
  process.env.NKVM_HOME = dir;
  t.teardown(() => {
    if (previous === undefined) delete process.env.NKVM_HOME;
    else process.env.NKVM_HOME = previous;
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

test.serial('the repository: --repo, then RESTIC_REPOSITORY, then the one repo init saved; none configured is undefined', (t) => {
  const dir = home(t);
  t.is(chooseRepository(none, {}), undefined);
  saveRepository({ repository: '/saved/repo', passwordFile: path.join(dir, 'repository.key') });
  t.like(chooseRepository(none, {}), { location: '/saved/repo', saved: { passwordFile: path.join(dir, 'repository.key') } });
  t.like(chooseRepository(none, { RESTIC_REPOSITORY: '/env/repo' }), { location: '/env/repo', source: 'RESTIC_REPOSITORY', saved: undefined });
  t.like(chooseRepository({ ...none, repo: '/flag/repo' }, { RESTIC_REPOSITORY: '/env/repo' }), { location: '/flag/repo', source: '--repo' });
  // The saved key file goes with the saved location only.
  t.like(chooseRepository({ ...none, repo: '/saved/repo' }, {}), { saved: { repository: '/saved/repo' } });
});

test.serial("the password, in restic's order: --password-file, RESTIC_PASSWORD_FILE, RESTIC_PASSWORD_COMMAND, RESTIC_PASSWORD, the saved key file", (t) => {
  const dir = home(t);
  const file = (name: string, text: string) => {
    const at = path.join(dir, name);
    fs.writeFileSync(at, text);
    return at;
  };
  const flagFile = file('flag', 'from-flag\n');
  const envFile = file('env', '  from-env-file  \n');
  const saved = { repository: '/r', passwordFile: file('saved', 'from-saved\n') };
  const everything = { RESTIC_PASSWORD_FILE: envFile, RESTIC_PASSWORD_COMMAND: 'echo from-command', RESTIC_PASSWORD: 'from-env' };
  t.like(findPassword({ ...none, passwordFile: flagFile }, saved, everything), { password: 'from-flag', source: '--password-file' });
  t.like(findPassword(none, saved, everything), { password: 'from-env-file', source: 'RESTIC_PASSWORD_FILE' });
  t.like(findPassword(none, saved, { ...everything, RESTIC_PASSWORD_FILE: '' }), { password: 'from-command', source: 'RESTIC_PASSWORD_COMMAND' });
  t.like(findPassword(none, saved, { RESTIC_PASSWORD: 'from-env' }), { password: 'from-env', source: 'RESTIC_PASSWORD' });
  t.like(findPassword(none, saved, {}), { password: 'from-saved' });
  t.is(findPassword(none, undefined, {}), undefined);
  t.throws(() => findPassword(none, undefined, { RESTIC_PASSWORD_FILE: file('empty', '\n') }), { message: /is empty/ });
  t.throws(() => findPassword(none, undefined, { RESTIC_PASSWORD_COMMAND: 'exit 3' }), { message: /RESTIC_PASSWORD_COMMAND failed/ });
  t.throws(() => findPassword(none, undefined, { RESTIC_PASSWORD_FILE: path.join(dir, 'missing') }), { message: /cannot read the password file .*ENOENT/ });
});

test.serial('a generated key file is random, its owner\'s alone, and never overwritten', (t) => {
  const dir = home(t);
  const at = path.join(dir, 'keys', 'repository.key');
  const password = createKeyFile(at);
  t.regex(password, /^[A-Za-z0-9_-]{43}$/);
  t.is(fs.statSync(at).mode & 0o777, 0o600);
  t.is(fs.readFileSync(at, 'utf8').trim(), password);
  t.not(createKeyFile(path.join(dir, 'other.key')), password);
  t.throws(() => createKeyFile(at), { message: /already exists .* never overwritten/ });
  t.is(fs.readFileSync(at, 'utf8').trim(), password, 'the first key is kept');
});

test.serial('a saved file that is not what repo init writes is a usage error naming it', (t) => {
  const dir = home(t);
  fs.writeFileSync(path.join(dir, 'repository.json'), '{"nope": 1}');
  t.throws(() => readSavedRepository(), { message: /repository\.json is not what `kubectl nkvm repo init` writes/ });
});

/**
 * `kubectl nkvm repo key list|add|remove|passwd` as a user runs it (the built plugin on PATH, found
 * by kubectl), with the real restic v0.19.1 as the judge, in a directory and in an S3 bucket
 * (versitygw): a key we add opens the repository for restic and restic lists it; a key restic adds
 * we list and open with; a removed password opens it for neither; passwd leaves only the new one.
 * No cluster: the repository commands never talk to Kubernetes.
 */
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { execa, type Result } from 'execa';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { openBackend } from '../../src/repository/backends/open.ts';
import { acquireLock } from '../../src/repository/lock.ts';
import { Repository } from '../../src/repository/repository.ts';
import { findRestic } from '../cluster/restic.ts';
import { type S3Server, startS3Server } from '../cluster/s3-server.ts';
import { integrationEnabled, pluginWorkDir } from './support.ts';

interface Context {
  work: string;
  pluginPath: string;
  server: S3Server;
}

const test = anyTest as TestFn<Context>;
const suite = integrationEnabled ? test.serial : test.serial.skip;

if (integrationEnabled) {
  test.before(async (t) => {
    findRestic();
    const { workDir, pluginPath } = pluginWorkDir('nkvm-keys-it-');
    t.context.work = workDir;
    t.context.pluginPath = pluginPath;
    t.context.server = await startS3Server();
  });
  test.afterEach.always((t) => {
    if (!t.passed && t.context.server) t.log(`versitygw log:\n${t.context.server.log().slice(-4000)}`);
  });
  test.after.always(async (t) => {
    await t.context.server?.dispose();
    if (t.context.work) fs.rmSync(t.context.work, { recursive: true, force: true });
  });
}

/** One repository under test: where it is, the environment both tools need for it, and a home of its own. */
interface Place {
  location: string;
  env: Record<string, string>;
  dir: string;
  home: string;
}

function place(t: ExecutionContext<Context>, name: string, location: (dir: string) => string, env: Record<string, string> = {}): Place {
  const dir = fs.mkdtempSync(path.join(t.context.work, `${name}-`));
  return { location: location(dir), env, dir, home: path.join(dir, 'home') };
}

function password(p: Place, name: string, text: string): string {
  const file = path.join(p.dir, name);
  fs.writeFileSync(file, `${text}\n`, { mode: 0o600 });
  return file;
}

/** `kubectl nkvm ...` as a user runs it; never throws on the exit code. */
function nkvm(t: ExecutionContext<Context>, p: Place, args: string[], env: Record<string, string> = {}): Promise<Result> {
  return execa('kubectl', ['nkvm', ...args], {
    reject: false,
    env: { PATH: t.context.pluginPath, HOME: p.dir, NKVM_HOME: p.home, RESTIC_REPOSITORY: p.location, ...p.env, ...env },
    extendEnv: false,
    timeout: 5 * 60_000,
  }) as unknown as Promise<Result>;
}

function restic(p: Place, passwordFile: string, args: string[]): Promise<Result> {
  return execa(findRestic(), ['--repo', p.location, '--no-cache', '--password-file', passwordFile, ...args], {
    reject: false,
    env: { ...p.env },
    extendEnv: false,
    all: true,
    timeout: 5 * 60_000,
  }) as unknown as Promise<Result>;
}

interface ResticKey {
  current: boolean;
  id: string;
  userName: string;
  hostName: string;
}

async function resticKeys(t: ExecutionContext<Context>, p: Place, passwordFile: string): Promise<ResticKey[]> {
  const listed = await restic(p, passwordFile, ['key', 'list', '--json']);
  t.is(listed.exitCode, 0, String(listed.all));
  return JSON.parse(String(listed.stdout)) as ResticKey[];
}

async function ourKeys(t: ExecutionContext<Context>, p: Place, passwordFile: string): Promise<ResticKey[]> {
  const listed = await nkvm(t, p, ['repo', 'key', 'list', '-o', 'json', '--password-file', passwordFile]);
  t.is(listed.exitCode, 0, String(listed.stderr));
  return (JSON.parse(String(listed.stdout)) as { items: ResticKey[] }).items;
}

function assertNoStack(t: ExecutionContext<Context>, result: Result): void {
  t.notRegex(String(result.stderr), /^\s+at /m, 'no stack trace');
}

/** Adds, lists, removes and changes keys with both tools on one repository. */
async function keysBothWays(t: ExecutionContext<Context>, p: Place): Promise<void> {
  const first = password(p, 'first', 'first password');
  const init = await nkvm(t, p, ['repo', 'init', p.location, '-o', 'json', '--password-file', first]);
  t.is(init.exitCode, 0, String(init.stderr));
  const [firstKey] = await ourKeys(t, p, first);
  t.true(firstKey!.current);

  // A key we add, with restic's --user and --host, opens the repository for restic, which lists it.
  const second = password(p, 'second', 'second password');
  const added = await nkvm(t, p, ['repo', 'key', 'add', '--new-password-file', second, '--user', 'alice', '--host', 'laptop', '-o', 'json', '--password-file', first]);
  t.is(added.exitCode, 0, String(added.stderr));
  const secondId = (JSON.parse(String(added.stdout)) as { id: string }).id;
  t.regex(secondId, /^[0-9a-f]{64}$/);
  const snapshots = await restic(p, second, ['snapshots']);
  t.is(snapshots.exitCode, 0, String(snapshots.all));
  const seenByRestic = await resticKeys(t, p, second);
  t.deepEqual(seenByRestic.map((k) => k.id).sort(), [firstKey!.id, secondId].sort());
  t.like(seenByRestic.find((k) => k.id === secondId), { current: true, userName: 'alice', hostName: 'laptop' });

  // A key restic adds: we list it, and it opens the repository for us.
  const third = password(p, 'third', 'third password');
  const resticAdd = await restic(p, first, ['key', 'add', '--new-password-file', third, '--host', 'restic-host']);
  t.is(resticAdd.exitCode, 0, String(resticAdd.all));
  const thirdId = /saved new key with ID ([0-9a-f]{64})/.exec(String(resticAdd.all))?.[1];
  t.truthy(thirdId, String(resticAdd.all));
  const listedWithFirst = await ourKeys(t, p, first);
  t.deepEqual(listedWithFirst.map((k) => k.id).sort(), [firstKey!.id, secondId, thirdId!].sort());
  t.like(listedWithFirst.find((k) => k.id === thirdId), { current: false, hostName: 'restic-host' });
  t.true(listedWithFirst.find((k) => k.id === firstKey!.id)!.current);
  t.true((await ourKeys(t, p, third)).find((k) => k.id === thirdId)!.current, 'restic\'s key opens the repository for us');
  const table = await nkvm(t, p, ['repo', 'key', 'list', '--password-file', third]);
  t.regex(String(table.stdout), new RegExp(`^\\*\\s+${thirdId!.slice(0, 8)}\\s+\\S+\\s+restic-host\\s+\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d$`, 'm'));

  // The key that opened the repository is not removed; an unknown prefix is named.
  const own = await nkvm(t, p, ['repo', 'key', 'remove', firstKey!.id.slice(0, 8), '--password-file', first]);
  t.is(own.exitCode, 1, String(own.stderr));
  t.regex(String(own.stderr), /refusing to remove key [0-9a-f]{8}: it is the key your password opened the repository with/);
  t.regex(String(own.stderr), /hint: open the repository with another key's password/);
  assertNoStack(t, own);
  const unknownPrefix = [...'0123456789abcdef'].find((c) => ![firstKey!.id, secondId, thirdId!].some((id) => id.startsWith(c)))!;
  const unknown = await nkvm(t, p, ['repo', 'key', 'remove', unknownPrefix, '--password-file', first]);
  t.is(unknown.exitCode, 1, String(unknown.stderr));
  t.regex(String(unknown.stderr), /\[NotFoundError\] no key with ID or ID prefix/);

  // An ambiguous prefix: a copy of the second key file, with a trailing space, named by its hash.
  const backend = openBackend(p.location, { env: p.env });
  try {
    const raw = await backend.read('keys', secondId);
    let copy = raw;
    let copyId = '';
    for (let spaces = 1; !copyId.startsWith(secondId.slice(0, 2)); spaces += 1) {
      copy = Buffer.concat([raw, Buffer.alloc(spaces, ' ')]);
      copyId = createHash('sha256').update(copy).digest('hex');
    }
    await backend.write('keys', copyId, copy);
    // The second key and its copy, and any other key whose ID happens to start the same (1 in 128).
    const prefix = secondId.slice(0, 2);
    let matching = 0;
    for await (const key of backend.list('keys')) if (key.name.startsWith(prefix)) matching += 1;
    t.true(matching >= 2);
    const ambiguous = await nkvm(t, p, ['repo', 'key', 'remove', prefix, '--password-file', first]);
    t.is(ambiguous.exitCode, 1, String(ambiguous.stderr));
    t.regex(String(ambiguous.stderr), new RegExp(`prefix "${prefix}" matches ${matching} keys`));
    t.regex(String(ambiguous.stderr), /hint: give more characters of the ID/);
    const copyRemoved = await nkvm(t, p, ['repo', 'key', 'remove', copyId, '--password-file', first]);
    t.is(copyRemoved.exitCode, 0, String(copyRemoved.stderr));
  } finally {
    await backend.close?.();
  }

  // Removed: the second password opens the repository for neither tool.
  const removed = await nkvm(t, p, ['repo', 'key', 'remove', secondId.slice(0, 8).toUpperCase(), '--password-file', first]);
  t.is(removed.exitCode, 0, String(removed.stderr));
  t.is(String(removed.stdout), `removed key ${secondId.slice(0, 8)} from ${p.location}`);
  t.is((await restic(p, second, ['snapshots'])).exitCode, 12);
  const ours = await nkvm(t, p, ['repo', 'key', 'list', '--password-file', second]);
  t.is(ours.exitCode, 12, String(ours.stderr));
  t.deepEqual((await resticKeys(t, p, first)).map((k) => k.id).sort(), [firstKey!.id, thirdId!].sort());

  // passwd: a new key with the new password, and the one the old password opened is gone.
  const fourth = password(p, 'fourth', 'fourth password');
  const passwd = await nkvm(t, p, ['repo', 'key', 'passwd', '--new-password-file', fourth, '-o', 'json', '--password-file', first]);
  t.is(passwd.exitCode, 0, String(passwd.stderr));
  const changed = JSON.parse(String(passwd.stdout)) as { id: string; removed: string };
  t.is(changed.removed, firstKey!.id);
  t.is((await restic(p, first, ['snapshots'])).exitCode, 12, 'the old password no longer opens it for restic');
  t.is((await nkvm(t, p, ['repo', 'key', 'list', '--password-file', first])).exitCode, 12, 'nor for us');
  const afterPasswd = await resticKeys(t, p, fourth);
  t.deepEqual(afterPasswd.map((k) => k.id).sort(), [changed.id, thirdId!].sort());
  t.true(afterPasswd.find((k) => k.id === changed.id)!.current);

  // A wrong password: exit 12, nothing written (no key, no lock), no stack trace.
  const before = (await resticKeys(t, p, fourth)).map((k) => k.id).sort();
  const fifth = password(p, 'fifth', 'fifth password');
  for (const command of [['add', '--new-password-file', fifth], ['passwd', '--new-password-file', fifth], ['remove', thirdId!.slice(0, 8)]]) {
    const wrong = await nkvm(t, p, ['repo', 'key', ...command], { RESTIC_PASSWORD: 'not the password' });
    t.is(wrong.exitCode, 12, String(wrong.stderr));
    t.regex(String(wrong.stderr), /\[WrongPasswordError\] wrong password or no key found/);
    t.is(String(wrong.stdout), '');
    assertNoStack(t, wrong);
  }
  t.deepEqual((await resticKeys(t, p, fourth)).map((k) => k.id).sort(), before);
  const locks = await restic(p, fourth, ['list', 'locks', '--no-lock']);
  t.is(String(locks.stdout).trim(), '', 'no lock left behind');
  t.false(fs.existsSync(p.home) && fs.readdirSync(p.home).some((name) => name.endsWith('.key')), 'no key file generated');
}

suite('in a directory: keys we add, restic adds, remove and passwd, judged by restic', async (t) => {
  t.timeout(5 * 60_000);
  await keysBothWays(t, place(t, 'local', (dir) => path.join(dir, 'repo')));
});

suite('in an S3 bucket: the same, through the S3 backend', async (t) => {
  t.timeout(5 * 60_000);
  const { server } = t.context;
  await keysBothWays(t, place(t, 's3', (dir) => server.location(`keys-${path.basename(dir)}`), server.env));
});

suite('no new password given: a generated key file (0600, named once) that opens the repository for restic; passwd moves the saved key file', async (t) => {
  t.timeout(5 * 60_000);
  const p = place(t, 'generated', (dir) => path.join(dir, 'repo'));
  // repo init with no password: the key file `repo init` generates and saves.
  const init = await nkvm(t, p, ['repo', 'init', p.location]);
  t.is(init.exitCode, 0, String(init.stderr));
  const initKey = path.join(p.home, 'repository.key');
  const added = await nkvm(t, p, ['repo', 'key', 'add', '-o', 'json']);
  t.is(added.exitCode, 0, String(added.stderr));
  const result = JSON.parse(String(added.stdout)) as { id: string; passwordFile: string; generated: boolean };
  t.true(result.generated);
  t.is(result.passwordFile, path.join(p.home, `repository-${result.id.slice(0, 8)}.key`));
  t.is(fs.statSync(result.passwordFile).mode & 0o777, 0o600);
  t.is(String(added.stderr).split(result.passwordFile).length - 1, 1, 'the file is named once');
  t.regex(String(added.stderr), /generated into .* \(readable only by you\)/);
  const keys = await resticKeys(t, p, result.passwordFile);
  t.true(keys.find((k) => k.id === result.id)!.current);

  // passwd with the saved key file: the new generated file becomes the saved one, so commands without flags still open it.
  const passwd = await nkvm(t, p, ['repo', 'key', 'passwd', '-o', 'json']);
  t.is(passwd.exitCode, 0, String(passwd.stderr));
  const changed = JSON.parse(String(passwd.stdout)) as { id: string; passwordFile: string; savedPasswordFile: string | null };
  t.is(changed.savedPasswordFile, changed.passwordFile);
  t.is((JSON.parse(fs.readFileSync(path.join(p.home, 'repository.json'), 'utf8')) as { passwordFile: string }).passwordFile, changed.passwordFile);
  t.is((await restic(p, initKey, ['snapshots'])).exitCode, 12, 'the key init generated is gone');
  const list = await nkvm(t, p, ['repo', 'key', 'list', '-o', 'json']);
  t.is(list.exitCode, 0, String(list.stderr));
  t.deepEqual((JSON.parse(String(list.stdout)) as { items: ResticKey[] }).items.map((k) => [k.id, k.current]).sort(), [[result.id, false], [changed.id, true]].sort());
});

suite("locks as restic's: list and add beside a shared lock; remove and passwd wait for none (exit 11)", async (t) => {
  t.timeout(5 * 60_000);
  const p = place(t, 'locks', (dir) => path.join(dir, 'repo'));
  const first = password(p, 'first', 'first password');
  const second = password(p, 'second', 'second password');
  t.is((await nkvm(t, p, ['repo', 'init', p.location, '--password-file', first])).exitCode, 0);
  const backend = openBackend(p.location);
  const repo = await Repository.open(backend, 'first password', { loadIndex: false });
  const held = await acquireLock(repo, { exclusive: false });
  try {
    const list = await nkvm(t, p, ['repo', 'key', 'list', '--password-file', first]);
    t.is(list.exitCode, 0, String(list.stderr));
    const added = await nkvm(t, p, ['repo', 'key', 'add', '--new-password-file', second, '-o', 'json', '--password-file', first]);
    t.is(added.exitCode, 0, String(added.stderr));
    const id = (JSON.parse(String(added.stdout)) as { id: string }).id;
    const remove = await nkvm(t, p, ['repo', 'key', 'remove', id, '--password-file', first]);
    t.is(remove.exitCode, 11, String(remove.stderr));
    const passwd = await nkvm(t, p, ['repo', 'key', 'passwd', '--new-password-file', second, '--password-file', first]);
    t.is(passwd.exitCode, 11, String(passwd.stderr));
    t.is((await resticKeys(t, p, first)).length, 2, 'neither removed nor added a key');
  } finally {
    await held.release();
  }
});

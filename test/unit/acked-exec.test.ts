/**
 * The acknowledgement protocol's two halves without a cluster: the wrapper script, run by the same
 * busybox sh the helper image has, and the client's trailer splitter.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ACK_TIMEOUT_EXIT_CODE, ackedCommand, TrailerSplitter } from '../../src/kube/acked-exec.ts';
import { ExecStreamCutError } from '../../src/kube/exec.ts';

const TOKEN = `nkvm-end-${'ab'.repeat(16)}`;

/**
 * Runs the wrapped command with busybox sh; `answer` decides what reaches its stdin and when. The
 * deadline is generous unless a test is about it: on a loaded machine starting sh alone takes seconds.
 */
function runWrapped(command: string[], answer: (stdin: NodeJS.WritableStream, stdout: () => string) => void, ackTimeoutSeconds = 30, inputBytes = 0) {
  const [, ...args] = ackedCommand(command, TOKEN, ackTimeoutSeconds, inputBytes);
  const child = spawn('busybox', ['sh', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  // A wrapper that already gave up closes its stdin: the test's assertions on its exit say so, not an EPIPE.
  child.stdin.on('error', () => {});
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('latin1')));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const started = Date.now();
  answer(child.stdin, () => stdout);
  return new Promise<{ code: number | null; stdout: string; stderr: string; ms: number }>((resolve) =>
    child.on('close', (code) => resolve({ code, stdout, stderr, ms: Date.now() - started })),
  );
}

/** Acknowledges as the client does: once the trailer is in. */
function ackOnTrailer(stdin: NodeJS.WritableStream, stdout: () => string): void {
  const timer = setInterval(() => {
    if (/ \d+\n$/.test(stdout()) && stdout().includes(TOKEN)) {
      clearInterval(timer);
      stdin.end('ack\n');
    }
  }, 10);
}

test('wrapper: output, then the trailer with the exit code, then it waits for the ack and exits with that code', async (t) => {
  const ok = await runWrapped(['sh', '-c', 'printf hello'], ackOnTrailer);
  t.is(ok.stdout, `hello${TOKEN} 0\n`);
  t.is(ok.code, 0);
  const failing = await runWrapped(['sh', '-c', 'printf partial; echo broken >&2; exit 3'], ackOnTrailer);
  t.is(failing.stdout, `partial${TOKEN} 3\n`);
  t.is(failing.code, 3);
  t.regex(failing.stderr, /broken/);
});

test('wrapper: stays alive until the ack arrives, however late', async (t) => {
  const late = await runWrapped(['true'], (stdin) => setTimeout(() => stdin.end('ack\n'), 1500));
  t.is(late.code, 0);
  t.true(late.ms >= 1400, `exited after ${late.ms} ms`);
});

test('wrapper: a closed stdin (the client gave up) ends the wait at once', async (t) => {
  const closed = await runWrapped(['true'], (stdin) => setTimeout(() => stdin.end(), 200));
  t.is(closed.code, ACK_TIMEOUT_EXIT_CODE);
  // Long before its 30 s deadline (what matters), whatever the machine's load adds to starting sh.
  t.true(closed.ms < 15_000, `exited after ${closed.ms} ms`);
});

test('wrapper: without an ack it gives up at its deadline with a message, never hangs', async (t) => {
  const silent = await runWrapped(['true'], () => {}, 1);
  t.is(silent.code, ACK_TIMEOUT_EXIT_CODE);
  t.regex(silent.stderr, /no acknowledgement from kubectl-nkvm within 1s after the command ended \(exit code 0\)/);
  // At its 1 s deadline, not at the 30 s default; the bound leaves room for what a loaded machine
  // adds to starting sh (a run beside the integration suites took 9.8 s).
  t.true(silent.ms >= 900 && silent.ms < 15_000, `exited after ${silent.ms} ms`);
});

test('wrapper: a command with input reads exactly its bytes, names with newlines and NULs included, and the ack still arrives', async (t) => {
  const input = Buffer.from('./a\nb\0./c d\0');
  const result = await runWrapped(['sh', '-c', 'od -An -c | tr -s " " | tr -d "\n"'], (stdin, stdout) => {
    stdin.write(input);
    ackOnTrailer(stdin, stdout);
  }, 30, input.length);
  t.is(result.code, 0);
  t.is(result.stdout, ` . / a \\n b \\0 . / c d \\0${TOKEN} 0\n`);
});

test('wrapper: the command does not read the ack channel', async (t) => {
  // cat would swallow the ack (and wait for stdin's end) if it shared the wrapper's stdin.
  const run = await runWrapped(['cat'], ackOnTrailer);
  t.is(run.stdout, `${TOKEN} 0\n`);
  t.is(run.code, 0);
});

async function split(stream: Buffer, chunkSize: number, blockBytes?: number): Promise<{ passed: Buffer; exitCode: number | undefined; error?: Error }> {
  const splitter = new TrailerSplitter(TOKEN, blockBytes ? { blockBytes } : {});
  const chunks: Buffer[] = [];
  for (let i = 0; i < stream.length; i += chunkSize) chunks.push(stream.subarray(i, i + chunkSize));
  const passed: Buffer[] = [];
  let trailerEvent: number | undefined;
  splitter.on('trailer', (code: number) => (trailerEvent = code));
  try {
    await pipeline(Readable.from(chunks), splitter, new Writable({ write: (chunk, _e, cb) => (passed.push(chunk), cb()) }));
  } catch (error) {
    return { passed: Buffer.concat(passed), exitCode: splitter.exitCode, error: error as Error };
  }
  if (trailerEvent !== splitter.exitCode) throw new Error('the trailer event and exitCode disagree');
  return { passed: Buffer.concat(passed), exitCode: splitter.exitCode };
}

test('splitter: passes the data unchanged and strips the trailer, whatever the chunking', async (t) => {
  const data = randomBytes(100_000);
  const stream = Buffer.concat([data, Buffer.from(`${TOKEN} 0\n`)]);
  for (const blockBytes of [47, 100, 4096, undefined]) {
    for (const size of [1, 7, 46, 47, 48, 4096, stream.length]) {
      const result = await split(stream, size, blockBytes);
      t.true(result.passed.equals(data), `chunk size ${size}, block ${blockBytes}`);
      t.is(result.exitCode, 0);
    }
  }
  t.is((await split(Buffer.from(`${TOKEN} 141\n`), 3)).exitCode, 141);
  t.is((await split(Buffer.from(`${TOKEN} 0\n`), 100)).passed.length, 0);
});

test('splitter: a stream cut before its trailer fails, never ends cleanly', async (t) => {
  const data = randomBytes(10_000);
  for (const stream of [data, Buffer.concat([data, Buffer.from(`${TOKEN} 0`)]), Buffer.concat([data, Buffer.from(TOKEN.slice(0, 20))])]) {
    const result = await split(stream, 1000, 512);
    t.true(result.error instanceof ExecStreamCutError);
    t.regex(result.error!.message, /cut after \d+ bytes, before the command's end-of-output trailer/);
    t.is(result.exitCode, undefined);
  }
});

test("splitter: another exec's token is data", async (t) => {
  const data = Buffer.concat([randomBytes(1000), Buffer.from(`nkvm-end-${'cd'.repeat(16)} 0\n`)]);
  for (const size of [64, data.length]) {
    const result = await split(Buffer.concat([data, Buffer.from(`${TOKEN} 2\n`)]), size);
    t.true(result.passed.equals(data));
    t.is(result.exitCode, 2);
  }
});

test('splitter: output after the trailer is an error', async (t) => {
  const trailer = `${TOKEN} 0\n`;
  const result = await split(Buffer.from(`${trailer}extra`), trailer.length);
  t.regex(result.error?.message ?? '', /output continued after the end-of-output trailer/);
});

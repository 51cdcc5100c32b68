/**
 * A real S3 server for the repository tests: versitygw (github.com/versity/versitygw v1.8.0, built
 * by scripts/build-repository-tools.sh) serving a temporary directory, one bucket in it, on a free
 * port of 127.0.0.1 or of a given address (pods of a local cluster reach the node's InternalIP),
 * over http or over https with a self-signed certificate made with openssl.
 *
 * versitygw's posix backend: every directory under its root is a bucket (names of 3 to 63
 * characters, like S3's), each object a file, metadata such as the ETag in extended attributes.
 * Put test files in through S3, not by copying them under the root: versitygw's conditional write
 * (If-None-Match: *) looks for the ETag attribute, so it overwrites a file that has none.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { CACHE_DIR } from './paths.ts';
import { run, sleep } from './run.ts';

export const VERSITYGW_VERSION = 'v1.8.0';
export const versitygwBinary = process.env.NKVM_VERSITYGW ?? path.join(CACHE_DIR, `versitygw-${VERSITYGW_VERSION}`, 'bin', 'versitygw');

export interface S3ServerOptions {
  /** The bucket to create (a directory under the root). Default "nkvm-test". */
  bucket?: string;
  /** Serve https with a self-signed certificate for the bind address; caCertFile is then set. */
  tls?: boolean;
  /** The address to bind to. Default 127.0.0.1. */
  host?: string;
  /** A fixed port; a free one by default. */
  port?: number;
  /** Keep connections open between requests (versitygw's --keep-alive). Default true. */
  keepAlive?: boolean;
}

export interface S3Server {
  /** http(s)://HOST:PORT */
  endpoint: string;
  host: string;
  port: number;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  /** The server's root directory: the bucket is root/<bucket>, an object root/<bucket>/<key>. */
  root: string;
  /** The PEM certificate to trust (tls only). */
  caCertFile?: string;
  /** AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION for this server. */
  env: Record<string, string>;
  /** s3:http(s)://HOST:PORT/BUCKET[/PREFIX], a repository location as restic writes it. */
  location(prefix?: string): string;
  /** The server's log so far (for a failing test's diagnostics). */
  log(): string;
  /** Stops the server (it can be started again with restart()); idempotent. */
  stop(): Promise<void>;
  /** Starts a stopped server again on the same port and root. */
  restart(): Promise<void>;
  /** Whether a pack (data/XX/<64 hex digits>) of the repository at `prefix` is in the bucket: a backup is uploading. */
  hasPack(prefix: string): boolean;
  /** Freezes the server (SIGSTOP): connections stay open and nothing is answered, as with a hung gateway. */
  freeze(): void;
  /** Lets a frozen server go on (SIGCONT). */
  thaw(): void;
  /** Stops the server and removes every file it had. Idempotent. */
  dispose(): Promise<void>;
}

async function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

async function listening(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function selfSignedCertificate(dir: string, host: string): Promise<{ cert: string; key: string }> {
  const cert = path.join(dir, 'server.crt');
  const key = path.join(dir, 'server.key');
  const san = net.isIP(host) ? `IP:${host}` : `DNS:${host}`;
  await run('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
    '-subj', `/CN=${host}`, '-addext', `subjectAltName=${san},IP:127.0.0.1,DNS:localhost`,
    '-keyout', key, '-out', cert,
  ]);
  return { cert, key };
}

/** Starts versitygw. Fails with what to run when the binary has not been built. */
export async function startS3Server(options: S3ServerOptions = {}): Promise<S3Server> {
  if (!fs.existsSync(versitygwBinary)) {
    throw new Error(`versitygw ${VERSITYGW_VERSION} is missing at ${versitygwBinary}: run \`sh scripts/bootstrap.sh\` (it builds it with scripts/build-repository-tools.sh), or set NKVM_VERSITYGW`);
  }
  const host = options.host ?? '127.0.0.1';
  const bucket = options.bucket ?? 'nkvm-test';
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nkvm-s3-'));
  const root = path.join(dir, 'root');
  const iam = path.join(dir, 'iam');
  fs.mkdirSync(path.join(root, bucket), { recursive: true });
  fs.mkdirSync(iam);
  const logFile = path.join(dir, 'versitygw.log');
  const accessKeyId = `nkvm${randomBytes(6).toString('hex')}`;
  const secretAccessKey = randomBytes(24).toString('base64url');
  const region = 'us-east-1';
  let tlsFiles: { cert: string; key: string } | undefined;
  try {
    if (options.tls) tlsFiles = await selfSignedCertificate(dir, host);
  } catch (error) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  const urlHost = net.isIPv6(host) ? `[${host}]` : host;
  let port = options.port ?? (await freePort(host));
  let child: ChildProcess | undefined;
  const pidFile = path.join(dir, 'versitygw.pid');
  /** Signals versitygw itself (not its watchdog shell), by the id the shell wrote down. */
  const signalServer = (signal: NodeJS.Signals) => {
    try {
      process.kill(Number(fs.readFileSync(pidFile, 'utf8')), signal);
    } catch {
      // already gone, or not started
    }
  };

  const start = async (): Promise<void> => {
    const out = fs.openSync(logFile, 'a');
    // versitygw closes every connection after one answer unless told --keep-alive; real S3 keeps
    // them open, and the client's connection reuse is what is under test.
    const args = ['--port', `${urlHost}:${port}`, '--iam-dir', iam, '--region', region, '--quiet'];
    if (options.keepAlive !== false) args.push('--keep-alive');
    if (tlsFiles) args.push('--cert', tlsFiles.cert, '--key', tlsFiles.key);
    args.push('posix', root);
    fs.rmSync(pidFile, { force: true });
    // A watchdog shell runs versitygw and stops it when our end of its stdin closes: on stop(), and
    // also when this process dies without running any handler (a test runner's timeout kill), so
    // no server outlives its test. The shell exits when versitygw does.
    const watchdog = 'exec 3<&0 </dev/null; "$@" 3<&- & pid=$!; echo $pid > "$NKVM_PID_FILE"; (read _ <&3; kill $pid 2>/dev/null) & wait $pid';
    // Only what it needs: versitygw also reads VGW_* and ROOT_* settings from the environment.
    const proc = spawn('sh', ['-c', watchdog, 'versitygw-watchdog', versitygwBinary, ...args], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, ROOT_ACCESS_KEY: accessKeyId, ROOT_SECRET_KEY: secretAccessKey, NKVM_PID_FILE: pidFile },
      stdio: ['pipe', out, out],
    });
    proc.stdin!.on('error', () => {});
    fs.closeSync(out);
    child = proc;
    let exited = false;
    proc.once('exit', () => {
      exited = true;
    });
    const deadline = Date.now() + 20_000;
    while (!(await listening(host, port))) {
      if (exited) throw new Error(`versitygw exited at start (code ${proc.exitCode}):\n${readLog()}`);
      if (Date.now() > deadline) {
        throw new Error(`versitygw did not listen on ${urlHost}:${port} within 20 s:\n${readLog()}`);
      }
      await sleep(50);
    }
  };
  const readLog = () => {
    try {
      return fs.readFileSync(logFile, 'utf8');
    } catch {
      return '';
    }
  };
  const stop = async (): Promise<void> => {
    const proc = child;
    child = undefined;
    if (!proc) return;
    // Closing its stdin is the watchdog's signal to stop versitygw (also when it already exited).
    proc.stdin!.end();
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    const timer = setTimeout(() => signalServer('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  };

  try {
    // A free port can be taken between finding and binding it: try a few.
    for (let attempt = 0; ; attempt++) {
      try {
        await start();
        break;
      } catch (error) {
        await stop();
        if (options.port !== undefined || attempt >= 2 || !/address already in use/i.test(readLog())) throw error;
        port = await freePort(host);
      }
    }
  } catch (error) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw error;
  }

  const endpoint = `${tlsFiles ? 'https' : 'http'}://${urlHost}:${port}`;
  let disposed = false;
  const server: S3Server = {
    endpoint,
    host,
    port,
    bucket,
    accessKeyId,
    secretAccessKey,
    region,
    root,
    env: { AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey, AWS_DEFAULT_REGION: region },
    location: (prefix?: string) => `s3:${endpoint}/${bucket}${prefix ? `/${prefix}` : ''}`,
    log: readLog,
    stop,
    hasPack: (prefix: string) => {
      const data = path.join(root, bucket, prefix, 'data');
      return fs.existsSync(data) && fs.readdirSync(data).some((dir) => fs.readdirSync(path.join(data, dir)).some((name) => /^[0-9a-f]{64}$/.test(name)));
    },
    freeze: () => signalServer('SIGSTOP'),
    thaw: () => signalServer('SIGCONT'),
    restart: async () => {
      if (disposed) throw new Error('the S3 server is disposed');
      if (!child) await start();
    },
    dispose: async () => {
      if (disposed) return;
      disposed = true;
      await stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  if (tlsFiles) server.caCertFile = tlsFiles.cert;
  return server;
}

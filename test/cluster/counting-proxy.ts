/**
 * A TCP relay in front of the API server that counts what the server sends: the judge of how many
 * bytes a backup moved through the API server, independent of what the plugin reports. TLS passes
 * through untouched (the server's certificate names 127.0.0.1, where the relay listens). It also puts
 * the API server on a port of a test's choosing, such as one of fetch's "bad ports".
 */
import fs from 'node:fs';
import net from 'node:net';

export interface CountingProxy {
  /** Bytes from the API server to its clients since start (or the last reset). */
  readonly received: number;
  reset(): void;
  /** A copy of `kubeconfig` whose server is the relay. */
  kubeconfigFile: string;
  /** Where the relay listens, on 127.0.0.1. */
  readonly port: number;
  close(): Promise<void>;
}

/** The relay listens on the first of `ports` that is free on 127.0.0.1 (0: any port). */
export async function startCountingProxy(kubeconfig: string, outFile: string, ports: readonly number[] = [0]): Promise<CountingProxy> {
  const text = fs.readFileSync(kubeconfig, 'utf8');
  const server = /server:\s*https:\/\/([0-9.]+):(\d+)/.exec(text);
  if (!server) throw new Error(`${kubeconfig} names no API server at https://IPV4:PORT`);
  const upstreamHost = server[1]!;
  const upstreamPort = Number(server[2]);
  let received = 0;
  const sockets = new Set<net.Socket>();
  const relay = net.createServer((client) => {
    const upstream = net.connect(upstreamPort, upstreamHost);
    sockets.add(client).add(upstream);
    upstream.on('data', (chunk: Buffer) => (received += chunk.length));
    client.pipe(upstream).pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  for (const [index, candidate] of ports.entries()) {
    const listening = await new Promise<boolean>((resolve, reject) => {
      const taken = (error: NodeJS.ErrnoException) => (error.code === 'EADDRINUSE' && index < ports.length - 1 ? resolve(false) : reject(error));
      relay.once('error', taken).listen(candidate, '127.0.0.1', () => {
        relay.off('error', taken);
        resolve(true);
      });
    });
    if (listening) break;
  }
  const port = (relay.address() as net.AddressInfo).port;
  fs.writeFileSync(outFile, text.replace(server[0], `server: https://127.0.0.1:${port}`));
  return {
    get received() {
      return received;
    },
    reset: () => (received = 0),
    kubeconfigFile: outFile,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        relay.close(() => resolve());
      }),
  };
}

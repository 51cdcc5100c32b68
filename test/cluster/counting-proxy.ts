/**
 * A TCP relay in front of the API server that counts what the server sends: the judge of how many
 * bytes a backup moved through the API server, independent of what the plugin reports. TLS passes
 * through untouched (the server's certificate names 127.0.0.1, where the relay listens).
 */
import fs from 'node:fs';
import net from 'node:net';

export interface CountingProxy {
  /** Bytes from the API server to its clients since start (or the last reset). */
  readonly received: number;
  reset(): void;
  /** A copy of `kubeconfig` whose server is the relay. */
  kubeconfigFile: string;
  close(): Promise<void>;
}

export async function startCountingProxy(kubeconfig: string, outFile: string): Promise<CountingProxy> {
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
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  const port = (relay.address() as net.AddressInfo).port;
  fs.writeFileSync(outFile, text.replace(server[0], `server: https://127.0.0.1:${port}`));
  return {
    get received() {
      return received;
    },
    reset: () => (received = 0),
    kubeconfigFile: outFile,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        relay.close(() => resolve());
      }),
  };
}

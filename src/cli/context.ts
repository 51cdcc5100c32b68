/** Turns the parsed global flags into what a command handler works with. */
import type { KubeClient } from '../kube/client.ts';
import type { ConnectionOverrides } from '../kube/config.ts';
import { parseDuration, type GlobalOptions } from './global-options.ts';
import { writeWarning } from './output.ts';

/** What the connection flags override in the kubeconfig, as cli-runtime's ConfigFlags do. */
export function connectionOverrides(flags: GlobalOptions): ConnectionOverrides {
  return {
    cluster: flags.cluster,
    user: flags.user,
    server: flags.server,
    token: flags.token,
    certificateAuthority: flags.certificateAuthority,
    clientCertificate: flags.clientCertificate,
    clientKey: flags.clientKey,
    insecureSkipTlsVerify: flags.insecureSkipTlsVerify || undefined,
    tlsServerName: flags.tlsServerName,
    username: flags.username,
    password: flags.password,
    impersonate: flags.as !== undefined || flags.asGroup?.length || flags.asUid !== undefined ? { user: flags.as, groups: flags.asGroup ?? [], uid: flags.asUid } : undefined,
  };
}

/**
 * The client for the flags. The Kubernetes client library is most of the executable: it is loaded
 * here, when a command first needs the cluster, so that --help, version --client and the local
 * commands start at once.
 */
export async function connectFromFlags(flags: GlobalOptions): Promise<KubeClient> {
  const { connect } = await import('../kube/client.ts');
  const client = connect({
    kubeconfig: flags.kubeconfig,
    context: flags.context,
    namespace: flags.namespace,
    overrides: connectionOverrides(flags),
    requestTimeoutMs: parseDuration(flags.requestTimeout, '--request-timeout'),
  });
  if (flags.insecureSkipTlsVerify) {
    writeWarning(`--insecure-skip-tls-verify: the API server's certificate is not checked; anyone between you and ${client.credentials.server} can read and change this connection`);
  }
  return client;
}

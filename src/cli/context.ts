/** Turns the parsed global flags into what a command handler works with. */
import { connect, type KubeClient } from '../kube/client.ts';
import { parseDuration, type GlobalOptions } from './global-options.ts';

export function connectFromFlags(flags: GlobalOptions): KubeClient {
  return connect({
    kubeconfig: flags.kubeconfig,
    context: flags.context,
    namespace: flags.namespace,
    requestTimeoutMs: parseDuration(flags.requestTimeout, '--request-timeout'),
  });
}

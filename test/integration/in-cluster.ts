/**
 * What the suites that run the plugin inside the cluster share: the plugin image, built from the
 * release archives and loaded into the suite's cluster once per file, and an S3 server its pods reach.
 */
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { buildImage, type BuiltImage } from '../../scripts/image/build.ts';
import { startS3Server, type S3Server } from '../cluster/s3-server.ts';
import type { SuiteContext } from './support.ts';

let pluginImage: Promise<BuiltImage> | undefined;
/** The plugin image, built once for the file and loaded into its cluster. */
export function loadedPluginImage(context: SuiteContext): Promise<BuiltImage> {
  pluginImage ??= (async () => {
    const built = buildImage(path.join(context.workDir, 'image-1'));
    await context.cluster.loadImageArchive(built.archive);
    return built;
  })();
  return pluginImage;
}

/**
 * An S3 server the cluster's pods reach: on the host, at the node's address (which the local
 * provider made, on lo), which pods of the local provider reach. Undefined (the test passes, saying
 * why) on other providers.
 */
export async function s3ServerForPods(t: ExecutionContext<SuiteContext>): Promise<S3Server | undefined> {
  const { cluster } = t.context;
  if (cluster.provider !== 'local') {
    t.log('the S3 server runs on the host, which pods of the local provider reach at the node\'s address');
    t.pass();
    return undefined;
  }
  const nodeIP = (await cluster.kubectl(['get', 'nodes', '-o', 'jsonpath={.items[0].status.addresses[?(@.type=="InternalIP")].address}'])).trim();
  const server = await startS3Server({ host: nodeIP });
  t.teardown(() => server.dispose());
  return server;
}

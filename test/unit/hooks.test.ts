import test from 'ava';
import type { V1Pod } from '@kubernetes/client-node';
import { hookFor, parseGoDuration } from '../../src/backup/hook-spec.ts';

const pod = (annotations: Record<string, string>): V1Pod => ({ metadata: { name: 'db-0', annotations }, spec: { containers: [{ name: 'db' }, { name: 'sidecar' }] } });

test('Go durations as Velero\'s timeout annotation holds them', (t) => {
  t.is(parseGoDuration('30s'), 30_000);
  t.is(parseGoDuration('1m30s'), 90_000);
  t.is(parseGoDuration('1.5h'), 5_400_000);
  t.is(parseGoDuration('250ms'), 250);
  for (const bad of ['30', 's', '1d', '', '-1s']) t.is(parseGoDuration(bad), undefined, bad);
});

test('Velero\'s annotations as Velero reads them: a JSON array or one word, the first container, Fail and 30s by default', (t) => {
  const annotated = pod({
    'pre.hook.backup.velero.io/command': '["/sbin/fsfreeze", "--freeze", "/var/lib/db"]',
    'pre.hook.backup.velero.io/container': 'sidecar',
    'pre.hook.backup.velero.io/timeout': '2m',
    'post.hook.backup.velero.io/command': 'thaw',
    'post.hook.backup.velero.io/on-error': 'Continue',
  });
  t.deepEqual(hookFor(annotated, 'pre', {}), { phase: 'pre', command: ['/sbin/fsfreeze', '--freeze', '/var/lib/db'], container: 'sidecar', timeoutMs: 120_000, onError: 'fail', source: 'annotation' });
  t.deepEqual(hookFor(annotated, 'post', {}), { phase: 'post', command: ['thaw'], container: 'db', timeoutMs: 30_000, onError: 'continue', source: 'annotation' });
  t.is(hookFor(pod({}), 'pre', {}), undefined);
  t.throws(() => hookFor(pod({ 'pre.hook.backup.velero.io/command': '["a", 1]' }), 'pre', {}), { message: /not a JSON array of strings/ });
});

test('the flags win over the annotations, and run by sh -c', (t) => {
  const annotated = pod({ 'pre.hook.backup.velero.io/command': '["freeze"]', 'pre.hook.backup.velero.io/timeout': '2m' });
  t.deepEqual(hookFor(annotated, 'pre', { preHook: 'sync; touch /tmp/frozen', hookTimeoutMs: 5000, hookOnError: 'continue' }), {
    phase: 'pre', command: ['sh', '-c', 'sync; touch /tmp/frozen'], container: 'db', timeoutMs: 5000, onError: 'continue', source: 'flag',
  });
  // --hook-container and --hook-timeout apply to an annotation's hook too.
  t.like(hookFor(annotated, 'pre', { hookContainer: 'sidecar', hookTimeoutMs: 1000 }), { command: ['freeze'], container: 'sidecar', timeoutMs: 1000, source: 'annotation' });
});

import test from 'ava';
import { parseKeyValues, parsePositiveInteger, parseToleration } from '../../src/cli/flags.ts';
import { outcomeExitCode } from '../../src/cli/outcome.ts';
import type { BackupResult } from '../../src/backup/manager.ts';

test('key=value lists accept commas and repetition, and reject malformed items', (t) => {
  t.deepEqual(parseKeyValues(['cpu=100m,memory=64Mi', 'ephemeral-storage=1Gi'], '--helper-requests'), { cpu: '100m', memory: '64Mi', 'ephemeral-storage': '1Gi' });
  t.deepEqual(parseKeyValues(undefined, '--x'), {});
  const error = t.throws(() => parseKeyValues(['cpu'], '--helper-requests'));
  t.is(error!.name, 'UsageError');
  t.regex(error!.message, /invalid --helper-requests "cpu": expected key=value/);
  t.throws(() => parseKeyValues(['=1'], '--x'));
});

test('tolerations are written like taints', (t) => {
  t.deepEqual(parseToleration('dedicated=db:NoSchedule'), { key: 'dedicated', operator: 'Equal', value: 'db', effect: 'NoSchedule' });
  t.deepEqual(parseToleration('node.kubernetes.io/unreachable:NoExecute'), { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute' });
  t.deepEqual(parseToleration('gpu'), { key: 'gpu', operator: 'Exists' });
  t.regex(t.throws(() => parseToleration('a=b:Sometimes'))!.message, /unknown effect "Sometimes"/);
  t.throws(() => parseToleration('=x'));
});

test('--parallel must be a whole number of at least 1', (t) => {
  t.is(parsePositiveInteger(3, '--parallel'), 3);
  t.throws(() => parsePositiveInteger(0, '--parallel'));
  t.throws(() => parsePositiveInteger(1.5, '--parallel'));
});

function result(status: BackupResult['status'], errorCode?: BackupResult['errorCode'], message = ''): BackupResult {
  return { status, errorCode, message } as BackupResult;
}

test('the exit code of per-claim outcomes ranks authentication over permission over admission over other failures', (t) => {
  t.is(outcomeExitCode([result('succeeded')]), 0);
  t.is(outcomeExitCode([]), 0);
  t.is(outcomeExitCode([result('succeeded'), result('failed', 'CopyStageError')]), 1);
  t.is(outcomeExitCode([result('failed', 'CopyStageError'), result('failed', 'KubernetesDiscoveryError', 'get x failed: API status 403 (Forbidden)')]), 4);
  t.is(outcomeExitCode([result('failed', 'KubernetesDiscoveryError', 'API status 403 (Forbidden)'), result('failed', 'KubernetesAuthenticationError')]), 3);
  t.is(outcomeExitCode([result('failed', 'KubernetesDiscoveryError', 'API status 500 (Internal Server Error)')]), 1);
  t.is(outcomeExitCode([result('failed', 'CopyStageError'), result('failed', 'KubernetesAdmissionError')]), 5);
  t.is(outcomeExitCode([result('failed', 'KubernetesAdmissionError'), result('failed', 'KubernetesDiscoveryError', 'API status 403 (Forbidden)')]), 4);
});

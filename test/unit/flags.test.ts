import test from 'ava';
import { parseKeyValues, parsePositiveInteger, parseToleration, positiveIntegerFromEnv } from '../../src/cli/flags.ts';
import { outcomeExitCode } from '../../src/cli/outcome.ts';
import type { BackupResult } from '../../src/backup/manager.ts';
import { UsageError } from '../../src/errors.ts';

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

test('a whole number from the environment (NKVM_MOVER_SILENCE_SECONDS, NKVM_ACK_TIMEOUT_SECONDS): unset is undefined, a bad one a usage error naming the variable and its text', (t) => {
  const name = 'NKVM_TEST_SECONDS';
  t.teardown(() => delete process.env[name]);
  t.is(positiveIntegerFromEnv(name), undefined);
  process.env[name] = '15';
  t.is(positiveIntegerFromEnv(name), 15);
  for (const bad of ['15s', '0', '-3', '1.5']) {
    process.env[name] = bad;
    const error = t.throws(() => positiveIntegerFromEnv(name), { instanceOf: UsageError });
    t.is(error!.message, `${name} must be a whole number of at least 1, not "${bad}"`);
  }
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

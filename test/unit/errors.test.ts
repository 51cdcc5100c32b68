import test from 'ava';
import { ApiException } from '@kubernetes/client-node';
import { toKubernetesError } from '../../src/kube/errors.ts';
import { ExitCode, InternalErrorStop, isNkvmError, stoppedOutcome } from '../../src/errors.ts';

const list = { verb: 'list', resource: 'persistentvolumeclaims', namespace: 'apps' };

function apiError(code: number, message: string): ApiException<string> {
  return new ApiException(code, 'failed', JSON.stringify({ kind: 'Status', status: 'Failure', message, reason: 'x', code }), {});
}

test('403 becomes a KubernetesDiscoveryError with the API status, the verb and resource, and a can-i hint', (t) => {
  const error = toKubernetesError(apiError(403, 'persistentvolumeclaims is forbidden: User "x" cannot list ...'), list);
  t.is(error.name, 'KubernetesDiscoveryError');
  t.is(error.exitCode, ExitCode.permission);
  t.regex(error.message, /API status 403 \(Forbidden\)/);
  t.regex(error.message, /list persistentvolumeclaims in namespace "apps"/);
  t.regex(error.message, /cannot list/);
  t.is(error.hint, 'check with `kubectl auth can-i list persistentvolumeclaims -n apps`, or run `kubectl nkvm diagnose`');
});

test('401 becomes a KubernetesAuthenticationError', (t) => {
  const error = toKubernetesError(apiError(401, 'Unauthorized'), list);
  t.is(error.name, 'KubernetesAuthenticationError');
  t.is(error.exitCode, ExitCode.authentication);
  t.regex(error.message, /^Kubernetes authentication setup failed: .*API status 401 \(Unauthorized\)/);
});

test('404 becomes NotFoundError; other statuses keep their code and message', (t) => {
  t.is(toKubernetesError(apiError(404, 'pvc "x" not found'), { ...list, verb: 'get', name: 'x' }).name, 'NotFoundError');
  const conflict = toKubernetesError(apiError(500, 'etcd is sad'), list);
  t.is(conflict.name, 'KubernetesDiscoveryError');
  t.is(conflict.exitCode, ExitCode.failed);
  t.regex(conflict.message, /API status 500 \(Internal Server Error\): etcd is sad/);
});

test('TLS trust failures are authentication errors; an unreachable server is a connection error, in kubectl\'s words', (t) => {
  const tls = Object.assign(new Error('fetch failed'), { cause: Object.assign(new Error('self-signed'), { code: 'SELF_SIGNED_CERT_IN_CHAIN' }) });
  const trust = toKubernetesError(tls, { ...list, server: 'https://x:6443' });
  t.is(trust.name, 'KubernetesAuthenticationError');
  t.regex(trust.message, /TLS verification of the API server https:\/\/x:6443 failed \(SELF_SIGNED_CERT_IN_CHAIN\)/);

  const refused = toKubernetesError(Object.assign(new Error('fetch failed'), { cause: Object.assign(new Error('connect'), { code: 'ECONNREFUSED' }) }), { ...list, server: 'https://127.0.0.1:6443' });
  t.like(refused, { name: 'KubernetesConnectionError', exitCode: 6 });
  t.regex(refused.message, /^The connection to the server 127\.0\.0\.1:6443 was refused - did you specify the right host or port\? \(ECONNREFUSED, while trying to list persistentvolumeclaims/);
  const dns = toKubernetesError(Object.assign(new Error('getaddrinfo'), { code: 'ENOTFOUND' }), { ...list, server: 'https://api.example.invalid:443' });
  t.regex(dns.message, /^Unable to connect to the server api\.example\.invalid:443: lookup api\.example\.invalid: no such host/);
  const slow = toKubernetesError(Object.assign(new Error('request timed out after 3000 ms (--request-timeout)'), { code: 'ETIMEDOUT' }), { ...list, server: 'https://[::1]:6443' });
  t.regex(slow.message, /^the server \[::1\]:6443 did not answer within the request timeout/);
  // Only the OIDC auth provider's fetch can still meet a "bad port": API calls do not use fetch.
  const badPort = toKubernetesError(Object.assign(new TypeError('fetch failed'), { cause: new Error('bad port') }), { ...list, server: 'https://127.0.0.1:6000' });
  t.like(badPort, { name: 'KubernetesConnectionError' });
  t.regex(badPort.message, /^Unable to reach the OIDC identity provider to list persistentvolumeclaims.*: its port is one that fetch refuses/);
});

test('typed errors pass through unchanged and are recognised by their brand', (t) => {
  const original = toKubernetesError(apiError(403, 'no'), list);
  t.is(toKubernetesError(original, list), original);
  t.true(isNkvmError(original));
  t.false(isNkvmError(new Error('plain')));
});

test('a refused WebSocket handshake (exec) maps by its HTTP status', (t) => {
  const event = { type: 'error', message: 'Unexpected server response: 403' };
  const error = toKubernetesError(event, { verb: 'create', resource: 'pods/exec', namespace: 'apps', name: 'helper' });
  t.is(error.name, 'KubernetesDiscoveryError');
  t.regex(error.message, /create pods\/exec\/helper in namespace "apps" failed: API status 403 \(Forbidden\)/);
  t.regex(toKubernetesError({ message: 'socket hang up' }, list).message, /socket hang up/);
});

const createPod = { verb: 'create', resource: 'pods', namespace: 'secure' };

test('a 403 written by an admission controller is a KubernetesAdmissionError (exit 5), never the RBAC diagnosis', (t) => {
  // Messages as the API server writes them (Kubernetes 1.34).
  const cases = [
    [
      'pods "nkvm-backup-data-x" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false, unrestricted capabilities (container "helper" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true',
      'PodSecurity',
      /the namespace enforces Pod Security level "restricted", and the helper pod violates it: allowPrivilegeEscalation != false, .*runAsNonRoot != true/,
      /drop --run-as-user 0.*kubectl nkvm diagnose -n secure/,
    ],
    ['pods "nkvm-backup-data-x" is forbidden: failed quota: q: must specify limits.cpu for: helper; limits.memory for: helper', 'ResourceQuota', /ResourceQuota "q" refused the helper pod: .*must specify limits\.cpu/, /--helper-limits .*kubectl describe quota q -n secure/],
    ['pods "nkvm-backup-data-x" is forbidden: exceeded quota: compute, requested: pods=1, used: pods=5, limited: pods=5', 'ResourceQuota', /ResourceQuota "compute" refused/, /--helper-requests/],
    ['pods "nkvm-backup-data-x" is forbidden: maximum memory usage per Container is 64Mi, but limit is 256Mi', 'LimitRange', /a LimitRange refused the helper pod/, /kubectl describe limitrange -n secure/],
    ['admission webhook "validate.kyverno.svc-fail" denied the request: policy disallow-root', 'webhook', /the admission webhook "validate\.kyverno\.svc-fail" denied it/, /Kyverno or Gatekeeper/],
  ] as const;
  for (const [message, admission, text, hint] of cases) {
    const error = toKubernetesError(apiError(403, message), createPod);
    t.is(error.name, 'KubernetesAdmissionError', admission);
    t.is(error.exitCode, ExitCode.admission);
    t.is((error as unknown as { admission: string }).admission, admission);
    t.regex(error.message, /^create pods in namespace "secure" was refused by admission: /);
    t.regex(error.message, text);
    t.regex(error.hint ?? '', hint);
    t.notRegex(error.hint ?? '', /auth can-i|create role/);
  }
  // An RBAC denial keeps its own diagnosis.
  t.is(toKubernetesError(apiError(403, 'pods is forbidden: User "x" cannot create resource "pods"'), createPod).name, 'KubernetesDiscoveryError');
});

test('a denied impersonation is an RBAC diagnosis that names the impersonate verb', (t) => {
  const denied = toKubernetesError(apiError(403, 'serviceaccounts "backup" is forbidden: User "alice" cannot impersonate resource "serviceaccounts" in API group "" in the namespace "shop"'), list);
  t.like(denied, { name: 'KubernetesDiscoveryError', exitCode: 4 });
  t.regex(denied.message, /API status 403 \(Forbidden\)/);
  t.regex(denied.hint ?? '', /need the "impersonate" verb on serviceaccounts.*--verb=impersonate --resource=serviceaccounts/);
});

test('a stopped attempt is interrupted after the user stops it, failed with the error after an internal error does', (t) => {
  t.is(stoppedOutcome(undefined, 'copy'), undefined);
  t.is(stoppedOutcome(new AbortController().signal, 'copy'), undefined);
  t.deepEqual(stoppedOutcome(AbortSignal.abort(new Error('interrupted by SIGINT')), 'copy'), { status: 'interrupted', message: 'interrupted during the copy stage' });
  const crashed = AbortSignal.any([new AbortController().signal, AbortSignal.abort(new InternalErrorStop('stopped by an internal error: boom'))]);
  t.deepEqual(stoppedOutcome(crashed, 'helper-pod'), { status: 'failed', message: 'stopped by an internal error: boom (during the helper-pod stage)' });
});

/**
 * The plugin's error hierarchy. Every failure a user can cause or meet is one of these, with a stable
 * `code`, the exit code it maps to, and a one-line hint; main.ts is the only place that turns them
 * into output and an exit status. Anything else that escapes is an internal error.
 */

export const ExitCode = {
  ok: 0,
  failed: 1,
  usage: 2,
  authentication: 3,
  permission: 4,
  admission: 5,
  unreachable: 6,
  /** A pre-hook failed (with on-error fail): nothing was copied. */
  hookFailed: 7,
  // restic's own codes, so scripts written for restic read ours the same way.
  noRepository: 10,
  repositoryLocked: 11,
  wrongPassword: 12,
  interrupted: 130,
  terminated: 143,
} as const;

export type ErrorCode =
  | 'UsageError'
  | 'KubernetesAuthenticationError'
  | 'KubernetesDiscoveryError'
  | 'KubernetesAdmissionError'
  | 'KubernetesConnectionError'
  | 'NotFoundError'
  | 'CatalogError'
  | 'BackupFailedError'
  | 'RepositoryError'
  | 'NoRepositoryError'
  | 'RepositoryLockedError'
  | 'WrongPasswordError';

const brand = Symbol.for('kubectl-nkvm.error');

export class NkvmError extends Error {
  readonly [brand] = true;
  readonly code: ErrorCode;
  readonly exitCode: number;
  readonly hint: string | undefined;

  constructor(code: ErrorCode, message: string, options: { exitCode: number; hint?: string; cause?: unknown }) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = code;
    this.code = code;
    this.exitCode = options.exitCode;
    this.hint = options.hint;
  }
}

/** A brand check instead of `instanceof`, so errors survive being bundled or loaded twice. */
export function isNkvmError(error: unknown): error is NkvmError {
  return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[brand] === true;
}

export class UsageError extends NkvmError {
  constructor(message: string, hint?: string) {
    super('UsageError', message, { exitCode: ExitCode.usage, ...(hint ? { hint } : {}) });
  }
}

/** No usable credentials, a rejected token (401), a bad CA: nothing authenticated us. */
export class KubernetesAuthenticationError extends NkvmError {
  constructor(detail: string, options: { hint?: string; cause?: unknown } = {}) {
    super('KubernetesAuthenticationError', `Kubernetes authentication setup failed: ${detail}`, {
      exitCode: ExitCode.authentication,
      ...options,
    });
  }
}

/** The API answered but refused or failed a read the plugin needs (RBAC 403 above all). */
export class KubernetesDiscoveryError extends NkvmError {
  readonly status: number | undefined;
  constructor(message: string, options: { status?: number; hint?: string; cause?: unknown } = {}) {
    super('KubernetesDiscoveryError', message, {
      exitCode: options.status === 403 ? ExitCode.permission : ExitCode.failed,
      ...options,
    });
    this.status = options.status;
  }
}

/** The API server could not be reached at all: refused, unknown host, no route, timed out, a proxy failing. */
export class KubernetesConnectionError extends NkvmError {
  constructor(message: string, options: { hint?: string; cause?: unknown } = {}) {
    super('KubernetesConnectionError', message, { exitCode: ExitCode.unreachable, ...options });
  }
}

export type Admission = 'PodSecurity' | 'ResourceQuota' | 'LimitRange' | 'webhook';

/**
 * The API server authenticated and authorized the request, then an admission controller refused the
 * object (Pod Security, a quota, a LimitRange, a validating webhook). It also answers 403, but RBAC
 * is not the cause and a Role would not help: its own code and exit code.
 */
export class KubernetesAdmissionError extends NkvmError {
  readonly admission: Admission;
  constructor(admission: Admission, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super('KubernetesAdmissionError', message, { exitCode: ExitCode.admission, ...options });
    this.admission = admission;
  }
}

export class NotFoundError extends NkvmError {
  constructor(message: string, hint?: string) {
    super('NotFoundError', message, { exitCode: ExitCode.failed, ...(hint ? { hint } : {}) });
  }
}

export class CatalogError extends NkvmError {
  constructor(message: string, options: { hint?: string; cause?: unknown } = {}) {
    super('CatalogError', message, { exitCode: ExitCode.failed, ...options });
  }
}

/** The repository or its backend failed: unreachable, refused, damaged, a config we do not know. */
export class RepositoryError extends NkvmError {
  constructor(message: string, options: { hint?: string; cause?: unknown } = {}) {
    super('RepositoryError', message, { exitCode: ExitCode.failed, ...options });
  }
}

/** No repository where one was named (restic's exit 10). */
export class NoRepositoryError extends NkvmError {
  constructor(message: string, options: { hint?: string; cause?: unknown } = {}) {
    super('NoRepositoryError', message, { exitCode: ExitCode.noRepository, ...options });
  }
}

/** Another process holds a lock that this operation cannot share (restic's exit 11). */
export class RepositoryLockedError extends NkvmError {
  constructor(message: string, options: { hint?: string; cause?: unknown } = {}) {
    super('RepositoryLockedError', message, { exitCode: ExitCode.repositoryLocked, ...options });
  }
}

/** No key file of the repository opens with the password given (restic's exit 12); nothing was written. */
export class WrongPasswordError extends NkvmError {
  constructor(message: string, options: { hint?: string; cause?: unknown } = {}) {
    super('WrongPasswordError', message, { exitCode: ExitCode.wrongPassword, ...options });
  }
}

/**
 * Why the work stopped when an exception nothing caught (a bug) aborted it (src/cli/interrupt.ts):
 * the attempt is recorded as failed with this message, not as interrupted, which is what a user's
 * Ctrl-C or SIGTERM does.
 */
export class InternalErrorStop extends Error {}

/** How a stopped attempt is recorded: 'interrupted' by the user, or 'failed' with the internal error that stopped it. */
export function stoppedOutcome(signal: AbortSignal | undefined, stage: string): { status: 'interrupted' | 'failed'; message: string } | undefined {
  if (!signal?.aborted) return undefined;
  if (signal.reason instanceof InternalErrorStop) return { status: 'failed', message: `${signal.reason.message} (during the ${stage} stage)` };
  return { status: 'interrupted', message: `interrupted during the ${stage} stage` };
}

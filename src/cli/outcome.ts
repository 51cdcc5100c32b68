/** The exit code of a command that reports one outcome per claim (backup, restore). */
import { ExitCode, type ErrorCode } from '../errors.ts';

export interface Outcome {
  status: string;
  errorCode?: ErrorCode | string | undefined;
  message: string;
}

/** 3 if any failure was authentication, else 4 if any was RBAC, else 5 if any was admission, else 7 if a pre-hook failed, else 1 if any failed, else 0. */
export function outcomeExitCode(outcomes: Outcome[]): number {
  const failed = outcomes.filter((outcome) => outcome.status !== 'succeeded');
  if (failed.some((outcome) => outcome.errorCode === 'KubernetesAuthenticationError')) return ExitCode.authentication;
  if (failed.some((outcome) => outcome.errorCode === 'KubernetesDiscoveryError' && outcome.message.includes('API status 403'))) return ExitCode.permission;
  if (failed.some((outcome) => outcome.errorCode === 'KubernetesAdmissionError')) return ExitCode.admission;
  if (failed.some((outcome) => outcome.errorCode === 'HookFailedError')) return ExitCode.hookFailed;
  if (failed.some((outcome) => outcome.errorCode === 'RepositoryLockedError')) return ExitCode.repositoryLocked;
  return failed.length > 0 ? ExitCode.failed : ExitCode.ok;
}

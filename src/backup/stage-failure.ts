/**
 * A failure in one stage of a backup or a restore, carrying the stage reached and the code of the
 * error behind it: what their results report instead of throwing.
 */
import { isNkvmError } from '../errors.ts';

export class StageFailure<Stage extends string, Code extends string> extends Error {
  readonly stage: Stage;
  readonly errorCode: Code;
  constructor(stage: Stage, message: string, errorCode: Code) {
    super(message);
    this.stage = stage;
    this.errorCode = errorCode;
  }
}

/** The plugin's own typed errors keep their code, with their hint folded into the message. */
export function fromPluginError<Stage extends string>(stage: Stage, error: unknown): StageFailure<Stage, string> | undefined {
  if (!isNkvmError(error)) return undefined;
  return new StageFailure(stage, messageWithHint(error), error.code);
}

/** An error's message, and its one-line hint where it has one. */
export function messageWithHint(error: { message: string; hint?: string | undefined }): string {
  return error.hint ? `${error.message} (hint: ${error.hint})` : error.message;
}

/**
 * Faults a test injects into a real backup through NKVM_TEST_FAULT, to prove the copy protocol's
 * recovery paths on a real cluster: a connection cut at exactly the worst moment cannot be provoked
 * from outside. Unset in normal use; an unknown value is an error, so a typo cannot pass a test.
 *   cut-before-ack        the first attempt's connection is cut once the whole output is in, before
 *                         the acknowledgement: the copy must be retried
 *   hold-ack=<seconds>    the acknowledgement is sent that much later: the helper must still be alive
 *   withhold-ack          the acknowledgement is never sent: the helper must give up at its deadline
 *   stall-at=<bytes>:<seconds>  the consumer stops reading for that long once that much tar arrived,
 *                         as a slow disk would: what makes a bare exec lose its tail
 *   crash-at=<bytes>      once that much tar arrived, the consumer never calls back and throws from a
 *                         callback, as a bug would: the helper pod must still be removed
 */
import { Transform } from 'node:stream';
import type { AckedExecRequest } from '../kube/acked-exec.ts';
import { UsageError } from '../errors.ts';

export type CopyFault =
  | { kind: 'cut-before-ack' }
  | { kind: 'hold-ack'; seconds: number }
  | { kind: 'withhold-ack' }
  | { kind: 'stall-at'; bytes: number; seconds: number }
  | { kind: 'crash-at'; bytes: number };

export function parseCopyFault(value: string | undefined): CopyFault | undefined {
  if (!value) return undefined;
  if (value === 'cut-before-ack' || value === 'withhold-ack') return { kind: value };
  const hold = /^hold-ack=(\d+)$/.exec(value);
  if (hold) return { kind: 'hold-ack', seconds: Number(hold[1]) };
  const stall = /^stall-at=(\d+):(\d+)$/.exec(value);
  if (stall) return { kind: 'stall-at', bytes: Number(stall[1]), seconds: Number(stall[2]) };
  const crash = /^crash-at=(\d+)$/.exec(value);
  if (crash) return { kind: 'crash-at', bytes: Number(crash[1]) };
  throw new UsageError(`unknown NKVM_TEST_FAULT "${value}"`, 'one of cut-before-ack, hold-ack=<seconds>, withhold-ack, stall-at=<bytes>:<seconds>, crash-at=<bytes>');
}

/** The beforeAck hook that plays the fault on the given attempt (1-based). */
export function beforeAckFor(fault: CopyFault | undefined, attempt: number): AckedExecRequest['beforeAck'] {
  switch (fault?.kind) {
    case undefined:
      return undefined;
    case 'cut-before-ack':
      return attempt === 1 ? ({ cut }) => (cut(), false) : undefined;
    case 'hold-ack':
      return () => new Promise((resolve) => setTimeout(() => resolve(true), fault.seconds * 1000));
    case 'withhold-ack':
      return () => false;
    case 'stall-at':
    case 'crash-at':
      return undefined;
  }
}

/** For stall-at and crash-at: a pass-through that plays the fault once, when that many bytes went by. */
export function consumerFaultFor(fault: CopyFault | undefined): Transform | undefined {
  if (fault?.kind !== 'stall-at' && fault?.kind !== 'crash-at') return undefined;
  let seen = 0;
  let played = false;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      seen += chunk.length;
      if (played || seen < fault.bytes) return callback(null, chunk);
      played = true;
      if (fault.kind === 'stall-at') return void setTimeout(() => callback(null, chunk), fault.seconds * 1000);
      setImmediate(() => {
        throw new Error(`NKVM_TEST_FAULT crash-at=${fault.bytes}: thrown from a callback`);
      });
    },
  });
}

/**
 * The helper pod's default image: a pinned public busybox, which has sh and tar. Pinned by tag, not
 * digest, so a cluster without registry access can import an image under the same name.
 */
export const DEFAULT_HELPER_IMAGE = 'docker.io/library/busybox:1.37.0';

/** How many times a cut or truncated copy is tried again (--retries). */
export const DEFAULT_COPY_RETRIES = 2;

/**
 * How long a helper keeps tar's output available once tar ended, waiting for this client to confirm
 * it received everything (acked-exec.ts). A live client confirms within the time it takes to drain
 * what is in flight; the wait only ends early helpers of a client that hung.
 */
export const DEFAULT_ACK_TIMEOUT_SECONDS = 300;

/**
 * A data mover prints a line at least every MOVER_HEARTBEAT_SECONDS, its progress or that it is still
 * at work. The exec stream to a kubelet that stopped answering (its node down, frozen or cut off)
 * never ends by itself: a mover silent for DEFAULT_MOVER_SILENCE_SECONDS
 * (NKVM_MOVER_SILENCE_SECONDS) is counted lost, and its backup or restore fails.
 */
export const MOVER_HEARTBEAT_SECONDS = 5;
export const DEFAULT_MOVER_SILENCE_SECONDS = 60;

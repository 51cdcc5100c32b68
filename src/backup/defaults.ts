/**
 * The helper pod's default image: a pinned public busybox, which has sh and tar. Pinned by tag, not
 * digest, so a cluster without registry access can import an image under the same name.
 */
export const DEFAULT_HELPER_IMAGE = 'docker.io/library/busybox:1.37.0';

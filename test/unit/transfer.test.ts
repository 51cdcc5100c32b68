import test from 'ava';
import { MoverUnreachableError, moverUnusable } from '../../src/backup/mover.ts';
import { chooseTransfer } from '../../src/backup/transfer.ts';

test('--mover auto: a pod for an S3 repository the cluster can reach; exec, and why, for a directory or this machine\'s loopback', (t) => {
  t.deepEqual(chooseTransfer('auto', 's3:https://minio.storage.svc:9000/backups/prod', 'backup'), { mover: true, reason: 'an S3 repository, written from the cluster (--mover auto)' });
  t.deepEqual(chooseTransfer('auto', 's3:s3.eu-west-1.amazonaws.com/bucket', 'backup'), { mover: true, reason: 'an S3 repository, written from the cluster (--mover auto)' });
  t.like(chooseTransfer('auto', '/var/backups/repo', 'backup'), { mover: false, reason: 'the repository is a directory on this machine, out of the cluster\'s reach (--mover auto)' });
  for (const location of ['s3:http://127.0.0.1:9000/b', 's3:http://localhost:9000/b', 's3:http://[::1]:9000/b']) {
    t.like(chooseTransfer('auto', location, 'backup'), { mover: false }, location);
    t.regex(chooseTransfer('auto', location, 'backup').reason, /is this machine's loopback address, out of the pods' reach/);
  }
  t.deepEqual(chooseTransfer('exec', 's3:https://minio:9000/b', 'backup'), { mover: false, reason: '--mover exec' });
  t.deepEqual(chooseTransfer('pod', 's3:https://minio:9000/b', 'backup'), { mover: true, reason: '--mover pod' });
});

test('restore --mover auto chooses as backup does, its reason worded for reading from the cluster', (t) => {
  t.deepEqual(chooseTransfer('auto', 's3:https://minio.storage.svc:9000/backups/prod', 'restore'), { mover: true, reason: 'an S3 repository, read from the cluster (--mover auto)' });
  t.like(chooseTransfer('auto', '/var/backups/repo', 'restore'), { mover: false });
  t.like(chooseTransfer('auto', 's3:http://127.0.0.1:9000/b', 'restore'), { mover: false });
});

test('--mover auto falls back to exec for an image that cannot be pulled or a repository the mover cannot reach, and for nothing else', (t) => {
  const image = 'registry.invalid/nkvm/missing:1';
  t.is(moverUnusable(new Error('helper pod ns/p cannot start: ErrImagePull (pull access denied)'), image), `the mover image ${image} could not be pulled (helper pod ns/p cannot start: ErrImagePull (pull access denied))`);
  t.is(moverUnusable(new MoverUnreachableError('the mover could not reach the repository: connect ECONNREFUSED'), image), 'the mover could not reach the repository: connect ECONNREFUSED');
  t.is(moverUnusable(new Error('claim ns/x is not empty'), image), undefined);
});

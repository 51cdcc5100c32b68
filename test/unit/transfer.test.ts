import test from 'ava';
import { chooseTransfer } from '../../src/cli/commands/backup.ts';

test('--mover auto: a pod for an S3 repository the cluster can reach; exec, and why, for a directory or this machine\'s loopback', (t) => {
  t.deepEqual(chooseTransfer('auto', 's3:https://minio.storage.svc:9000/backups/prod'), { mover: true, reason: 'an S3 repository, written from the cluster (--mover auto)' });
  t.deepEqual(chooseTransfer('auto', 's3:s3.eu-west-1.amazonaws.com/bucket'), { mover: true, reason: 'an S3 repository, written from the cluster (--mover auto)' });
  t.like(chooseTransfer('auto', '/var/backups/repo'), { mover: false, reason: 'the repository is a directory on this machine, out of the cluster\'s reach (--mover auto)' });
  for (const location of ['s3:http://127.0.0.1:9000/b', 's3:http://localhost:9000/b', 's3:http://[::1]:9000/b']) {
    t.like(chooseTransfer('auto', location), { mover: false }, location);
    t.regex(chooseTransfer('auto', location).reason, /is this machine's loopback address, out of the pods' reach/);
  }
  t.deepEqual(chooseTransfer('exec', 's3:https://minio:9000/b'), { mover: false, reason: '--mover exec' });
  t.deepEqual(chooseTransfer('pod', 's3:https://minio:9000/b'), { mover: true, reason: '--mover pod' });
});

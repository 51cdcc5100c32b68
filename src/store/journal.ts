/**
 * The catalog's journal (`catalog.db.journal`): the row changes saved since the catalog file was last
 * folded, so that a save appends a record of about a kilobyte instead of rewriting the file.
 *
 * A header names the file the journal belongs to (its id in the table catalog_journal) and the
 * sequence number that file had folded when the journal began; then records, each a length, a CRC-32
 * and the changes as JSON: a sequence number and the SQL statements, with their parameters, that
 * made them. Records are appended under the catalog's lock and made durable before a save resolves,
 * so a writer killed mid-append leaves at most a torn last record, which every reader ignores and the
 * next writer cuts off before it appends. The header is only ever written whole (a new journal is a
 * renamed temp file), so a journal with a header always has one intact.
 */
import { open, readFile, rename, rm } from 'node:fs/promises';
import type { BindParams } from 'sql.js';
import { CatalogError } from '../errors.ts';
import { syncDirectory, tempPathFor } from './catalog-file.ts';

/** One statement of a change, as the change ran it: sql.js's run() or exec(), the SQL and its parameters. */
export type Statement = [method: 'run' | 'exec', sql: string, params: BindParams | null];

export interface JournalRecord {
  seq: number;
  statements: Statement[];
}

export interface Journal {
  /** The id of the catalog file it belongs to; '' when the header is not a journal's. */
  fileId: string;
  /** The sequence number the file had folded when the journal began: records follow it. */
  baseSeq: number;
  /** The intact records, in order. */
  records: JournalRecord[];
  /** Bytes up to the end of the last intact record; anything after is a torn append. */
  validBytes: number;
  bytes: number;
}

const MAGIC = Buffer.from('NKVMJRN1');
const FILE_ID_BYTES = 32;
const HEADER_BYTES = MAGIC.length + FILE_ID_BYTES + 8;
const RECORD_HEADER_BYTES = 8;

export function journalPath(file: string): string {
  return `${file}.journal`;
}

/** The journal beside `file`, or undefined when there is none. */
export async function readJournal(path: string): Promise<Journal | undefined> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CatalogError(`cannot read the catalog journal ${path}: ${(error as Error).message}`, { cause: error });
  }
  if (bytes.length < HEADER_BYTES || !bytes.subarray(0, MAGIC.length).equals(MAGIC)) {
    return { fileId: '', baseSeq: 0, records: [], validBytes: 0, bytes: bytes.length };
  }
  const fileId = bytes.toString('latin1', MAGIC.length, MAGIC.length + FILE_ID_BYTES);
  const baseSeq = Number(bytes.readBigUInt64BE(MAGIC.length + FILE_ID_BYTES));
  const records: JournalRecord[] = [];
  let offset = HEADER_BYTES;
  while (offset + RECORD_HEADER_BYTES <= bytes.length) {
    const length = bytes.readUInt32BE(offset);
    const end = offset + RECORD_HEADER_BYTES + length;
    if (end > bytes.length) break;
    const payload = bytes.subarray(offset + RECORD_HEADER_BYTES, end);
    if (crc32(payload) !== bytes.readUInt32BE(offset + 4)) break;
    let record: JournalRecord;
    try {
      record = JSON.parse(payload.toString('utf8')) as JournalRecord;
    } catch {
      break;
    }
    records.push(record);
    offset = end;
  }
  return { fileId, baseSeq, records, validBytes: offset, bytes: bytes.length };
}

/** node:zlib's, loaded on use: only a journal that exists needs it, and loading it costs every command ~3 ms. */
function crc32(bytes: Uint8Array): number {
  return process.getBuiltinModule('node:zlib').crc32(bytes);
}

export function encodeRecord(record: JournalRecord): Buffer {
  const payload = Buffer.from(JSON.stringify(record), 'utf8');
  const header = Buffer.alloc(RECORD_HEADER_BYTES);
  header.writeUInt32BE(payload.length, 0);
  header.writeUInt32BE(crc32(payload), 4);
  return Buffer.concat([header, payload]);
}

/** Bytes a journal holding `recordBytes` of records takes. */
export function journalBytes(journal: Journal | undefined, recordBytes: number): number {
  return (journal ? Math.max(journal.validBytes, HEADER_BYTES) : HEADER_BYTES) + recordBytes;
}

/**
 * Appends an encoded record and makes it durable. `journal` is the journal as read under the lock:
 * its torn tail, if any, is cut off first. Without a journal of this file, a new one is written (temp
 * file and rename, so it appears whole), beginning after `baseSeq`.
 */
export async function appendRecord(file: string, journal: Journal | undefined, fileId: string, baseSeq: number, record: Buffer): Promise<void> {
  const path = journalPath(file);
  try {
    if (!journal || journal.fileId !== fileId) {
      const header = Buffer.alloc(HEADER_BYTES);
      MAGIC.copy(header, 0);
      header.write(fileId.padEnd(FILE_ID_BYTES, ' ').slice(0, FILE_ID_BYTES), MAGIC.length, 'latin1');
      header.writeBigUInt64BE(BigInt(baseSeq), MAGIC.length + FILE_ID_BYTES);
      const temp = tempPathFor(file); // named like the file's, so the next writer removes it if this one dies
      try {
        const handle = await open(temp, 'wx');
        try {
          await handle.writeFile(Buffer.concat([header, record]));
          await handle.sync();
        } finally {
          await handle.close();
        }
        await rename(temp, path);
      } catch (error) {
        await rm(temp, { force: true });
        throw error;
      }
      await syncDirectory(path);
      return;
    }
    const handle = await open(path, 'r+');
    try {
      if (journal.bytes > journal.validBytes) await handle.truncate(journal.validBytes);
      await handle.write(record, 0, record.length, journal.validBytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch (error) {
    throw new CatalogError(`cannot write the catalog journal ${path}: ${(error as Error).message}`, { cause: error });
  }
}

/** After a fold, whose file holds every record: a journal left behind by a crash is skipped anyway. */
export async function removeJournal(file: string): Promise<void> {
  await rm(journalPath(file), { force: true });
}

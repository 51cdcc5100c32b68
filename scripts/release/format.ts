/** Checks an executable's headers: the object format and the machine it is built for. */
import fs from 'node:fs';
import type { ExecutableFormat } from './config.ts';

export function detectFormat(file: string): ExecutableFormat | string {
  const fd = fs.openSync(file, 'r');
  const head = Buffer.alloc(4096);
  fs.readSync(fd, head, 0, head.length, 0);
  fs.closeSync(fd);
  if (head.readUInt32BE(0) === 0x7f454c46) { // \x7fELF
    const machine = head.readUInt16LE(18);
    return machine === 0x3e ? 'elf-x86_64' : machine === 0xb7 ? 'elf-aarch64' : `elf machine 0x${machine.toString(16)}`;
  }
  if (head.readUInt32LE(0) === 0xfeedfacf) {
    const cpu = head.readUInt32LE(4);
    return cpu === 0x01000007 ? 'macho-x86_64' : cpu === 0x0100000c ? 'macho-arm64' : `mach-o cpu 0x${cpu.toString(16)}`;
  }
  if (head.toString('latin1', 0, 2) === 'MZ') {
    const pe = head.readUInt32LE(0x3c);
    if (pe + 6 <= head.length && head.readUInt32BE(pe) === 0x50450000) {
      const machine = head.readUInt16LE(pe + 4);
      return machine === 0x8664 ? 'pe-x86_64' : `pe machine 0x${machine.toString(16)}`;
    }
  }
  return 'unknown';
}

export function checkFormat(file: string, expected: ExecutableFormat): void {
  const actual = detectFormat(file);
  if (actual !== expected) throw new Error(`${file} is ${actual}, not ${expected}`);
}

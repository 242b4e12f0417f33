/**
 * The cgroup layer's access to cgroup files, as one interface: the host's
 * (`hostFiles`), or a test's that records and confines every write
 * (test/unit/fuzz-config.test.ts) instead of patching `fs`.
 */
import fs = require('fs');
import path = require('path');
import { TsrunError } from '../errors';

export interface CgroupFiles {
  /** The file's text, or undefined when it cannot be read. */
  read(file: string): string | undefined;
  /** Write the value; throws the errno error (ENOENT: no such knob). */
  write(file: string, value: string): void;
  exists(file: string): boolean;
  mkdir(dir: string): void;
  /** rmdir(2); throws the errno error. */
  rmdir(dir: string): void;
  /** The names of the subdirectories, or undefined when dir cannot be read. */
  subdirs(dir: string): string[] | undefined;
  /** The names of the entries, or [] when dir cannot be read. */
  entries(dir: string): string[];
}

export const hostFiles: CgroupFiles = {
  read(file) {
    try {
      return fs.readFileSync(file, 'utf8');
    } catch {
      return undefined;
    }
  },
  write: (file, value) => fs.writeFileSync(file, value),
  exists: (file) => fs.existsSync(file),
  mkdir: (dir) => fs.mkdirSync(dir),
  rmdir: (dir) => fs.rmdirSync(dir),
  subdirs(dir) {
    try {
      return fs
        .readdirSync(dir, { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => e.name);
    } catch {
      return undefined;
    }
  },
  entries(dir) {
    try {
      return fs.readdirSync(dir);
    } catch {
      return [];
    }
  },
};

/** Write one cgroup file; a missing knob is named in the error, with the config field it serves. */
export function writeKnob(files: CgroupFiles, dir: string, file: string, value: string | number, field: string): void {
  const target = path.join(dir, file);
  try {
    files.write(target, String(value));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new TsrunError(`${field}: this host has no cgroup knob ${file} (${dir})`);
    const reason = (err as Error).message.replace(/^[A-Z]+: /, '').replace(/, \w+ '.*'$/, '');
    throw new TsrunError(`${field}: write ${value} to ${target}: ${reason}`);
  }
}

/** A file's text, or `fallback` when it cannot be read. */
export function readOr(files: CgroupFiles, file: string, fallback: string): string {
  return files.read(file) ?? fallback;
}

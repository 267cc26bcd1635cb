/** A small file's text, or null when it cannot be read (gone, a process that exited, no permission). */
import { readFileSync } from "node:fs";

export function readTextOrNull(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
}

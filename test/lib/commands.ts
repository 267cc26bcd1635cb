/** Commands the package tests run, with C locale, their stdout and stderr together; and file digests. */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";

export interface Result {
  code: number;
  /** stdout then stderr. */
  out: string;
}

export function run(argv: string[], env: Record<string, string> = {}, cwd?: string): Result {
  const p = Bun.spawnSync(argv, { env: { ...process.env, LC_ALL: "C", ...env }, stdout: "pipe", stderr: "pipe", ...(cwd === undefined ? {} : { cwd }) });
  return { code: p.exitCode ?? -1, out: p.stdout.toString() + p.stderr.toString() };
}

/** run(), throwing with the command's output when it fails. */
export function ok(argv: string[], env: Record<string, string> = {}, cwd?: string): string {
  const r = run(argv, env, cwd);
  if (r.code !== 0) throw new Error(`${argv.join(" ")} failed (exit ${r.code}):\n${r.out}`);
  return r.out;
}

export function sha256(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

/** `nvwa --version` run chrooted in an installed root, with /proc and /dev there (Bun needs them), in a private mount namespace. */
export function versionInRoot(root: string): Result {
  return run(["unshare", "--mount", "--propagation", "private", "sh", "-c", `mount -t proc proc '${root}/proc' && mount --bind /dev '${root}/dev' && exec chroot '${root}' /usr/bin/nvwa --version`]);
}

/**
 * kexec-tools, for the two cases the syscall path cannot cover: kernels without
 * kexec_file_load (`-c`, kexec_load) and openEuler quick kexec (`-q`). Argv building is pure;
 * running it is the only effect here.
 */
import { statSync } from "node:fs";
import { NvwaError } from "../errors.ts";
import { ignoreNotes, note, type OnNote } from "../note.ts";

export interface KexecExeLoad {
  exe: string;
  mode: "-c" | "-q";
  kernelPath: string;
  initrdPath: string | null;
  cmdline: string;
}

/** Pure: `kexec -l -c <kernel> --initrd=… --command-line=…` or `kexec -q <kernel> …`. */
export function kexecExeLoadArgv(a: KexecExeLoad): string[] {
  const action = a.mode === "-q" ? ["-q"] : ["-l", "-c"];
  return [a.exe, ...action, a.kernelPath, ...(a.initrdPath === null ? [] : [`--initrd=${a.initrdPath}`]), `--command-line=${a.cmdline}`];
}

/** Pure: `kexec -u`, which unloads through kexec_load whichever loader put the image there. */
export function kexecExeUnloadArgv(exe: string): string[] {
  return [exe, "-u"];
}

export function exeExists(path: string): boolean {
  try {
    const st = statSync(path);
    return st.isFile() && (st.mode & 0o111) !== 0;
  } catch {
    return false;
  }
}

export interface ExeResult {
  exitCode: number;
  stderr: string;
  stdout: string;
}

/** Runs kexec_exe; throws an NvwaError quoting its last stderr lines on failure. */
export function runKexecExe(argv: string[], what: string, onNote: OnNote = ignoreNotes): ExeResult {
  const [exe] = argv;
  if (exe === undefined || !exeExists(exe)) {
    throw new NvwaError("kexec.exe-missing", `cannot ${what}: ${exe ?? "(none)"} does not exist or is not executable`, {
      hint: "install kexec-tools or set kexec_exe in nvwa-server.yaml",
      details: { argv },
    });
  }
  onNote(note("debug", `running ${argv.map((a) => (/\s/.test(a) ? JSON.stringify(a) : a)).join(" ")}`));
  const p = Bun.spawnSync({ cmd: argv, stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const res: ExeResult = {
    exitCode: p.exitCode ?? -1,
    stdout: p.stdout.toString(),
    stderr: p.stderr.toString(),
  };
  if (res.exitCode !== 0) {
    const tail = res.stderr.trim().split("\n").slice(-3).join(" | ") || `exit code ${res.exitCode}`;
    throw new NvwaError("kexec.exe-failed", `${exe} failed to ${what}: ${tail}`, {
      hint: "run the same command by hand to see all of its output; `dmesg` may have more",
      details: { argv, exitCode: res.exitCode, stderr: res.stderr },
    });
  }
  return res;
}

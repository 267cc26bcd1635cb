/**
 * Runs the packaging tools (rpmbuild, rpmsign, gpg, createrepo_c, rpmkeys, xorriso) and turns a
 * failure into an NvwaError that names the tool, its exit status and the last lines it printed.
 */
import { NvwaError } from "../src/errors.ts";

/** Which Debian package brings each tool, for the hint when one is missing. */
const DEBIAN_PACKAGE: Record<string, string> = {
  rpmbuild: "rpm",
  rpmsign: "rpm",
  rpmkeys: "rpm",
  gpg: "gnupg",
  gpgconf: "gnupg",
  createrepo_c: "createrepo-c",
  xorriso: "xorriso",
};

export function which(tool: string): string | undefined {
  return Bun.which(tool) ?? undefined;
}

export function requireTools(tools: string[]): Record<string, string> {
  const found: Record<string, string> = {};
  const missing: string[] = [];
  for (const t of tools) {
    const p = which(t);
    if (p === undefined) missing.push(t);
    else found[t] = p;
  }
  if (missing.length > 0) {
    const pkgs = [...new Set(missing.map((t) => DEBIAN_PACKAGE[t] ?? t))];
    throw new NvwaError("package.missing-tool", `packaging needs ${missing.join(", ")}, which ${missing.length === 1 ? "is" : "are"} not installed`, {
      hint: `apt-get install -y ${pkgs.join(" ")}`,
      details: { missing },
    });
  }
  return found;
}

export interface RunOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** What the command is doing, for the error message ("signing the RPMs"). */
  what: string;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

function tail(text: string, lines = 8): string {
  return text.trim().split("\n").slice(-lines).join("\n");
}

export async function run(argv: string[], opts: RunOptions): Promise<RunResult> {
  const tool = argv[0] ?? "";
  let proc;
  try {
    proc = Bun.spawn(argv, {
      cwd: opts.cwd,
      env: { ...process.env, LC_ALL: "C", ...opts.env },
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
  } catch (e) {
    throw new NvwaError("package.tool-failed", `${opts.what}: cannot run ${tool}: ${e instanceof Error ? e.message : String(e)}`, {
      hint: `install ${DEBIAN_PACKAGE[tool] ?? tool}`,
      cause: e,
    });
  }
  const [code, stdout, stderr] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  if (code !== 0) {
    const said = tail(stderr) || tail(stdout);
    throw new NvwaError("package.tool-failed", `${opts.what}: ${tool} failed (exit ${code})${said === "" ? "" : `:\n${said}`}`, {
      hint: `run it by hand to see everything: ${argv.map((a) => (/^[\w./=:@+-]+$/.test(a) ? a : JSON.stringify(a))).join(" ")}`,
      details: { argv, code, stderr },
    });
  }
  return { stdout, stderr };
}

import { release } from "node:os";
import { defineCommand } from "./define.ts";
import { assertRelease } from "../kexec/release.ts";
import { chooseLatest } from "../kexec/latest.ts";
import { ExitCode, NvwaError, toNvwaError } from "../errors.ts";
import { explainDaemonDeath } from "./daemon-died.ts";
import { log } from "../log.ts";
import { request } from "../daemon/client.ts";
import type { ProgressEvent } from "../daemon/protocol.ts";
import { socketPath } from "./socket.ts";
import { argsOf } from "./arg-defs.ts";
import { kernelArg } from "./kernel-arg.ts";
import { writeOut } from "./output.ts";
import { printError } from "./render.ts";

const words = (s: string | undefined): string[] | undefined => (s === undefined ? undefined : s.split(/\s+/).filter((w) => w !== ""));

function show(e: ProgressEvent): void {
  const ms = e.ms === undefined ? "" : ` (${e.ms} ms)`;
  const text = `${e.message}${ms}`;
  if (e.level === "error") log.error(text);
  else if (e.level === "warn") log.warn(text);
  else if (e.level === "debug") log.debug(text);
  else if (e.kind === "phase" && e.ms !== undefined) log.success(text);
  else log.info(text);
}

interface UpdateReply {
  updateId?: string;
  kernel?: { from: string; to: string; loader: string };
  jump?: string;
  timings?: { step: string; ms: number }[];
}

/**
 * `--json`'s one object, for automation (Ansible, kured wrappers): what happened, in a field a
 * script can switch on. "refused" means nothing changed (bad input, a failed preflight);
 * "failed" means the update started and was rolled back, or the daemon was unreachable.
 */
export type UpdateResult =
  | { result: "jumping"; updateId: string; kernel: { from: string; to: string; loader: string }; jump: string; timings: { step: string; ms: number }[] }
  | { result: "current"; kernel: { from: string; newest: string | null } }
  | { result: "refused" | "failed"; exitCode: number; error: ReturnType<NvwaError["toJSON"]> };

/** Pure: the --json object of a failure. */
export function failureResult(e: unknown): UpdateResult {
  const err = toNvwaError(e);
  const refused = err.exitCode === ExitCode.usage || err.exitCode === ExitCode.preflight;
  return { result: refused ? "refused" : "failed", exitCode: err.exitCode, error: err.toJSON() };
}

async function update(args: { version?: string; latest?: boolean; fast?: boolean; append?: string; remove?: string; json?: boolean; "config-dir"?: string }): Promise<ExitCode> {
  const json = args.json === true;
  const choice = kernelArg("update", args.version, args.latest === true);
  let version: string;
  if (choice.kind === "latest") {
    const latest = chooseLatest(release());
    if (latest.kind === "current") {
      const newest = latest.newest === null ? "no kernel is installed in /boot" : `the newest installed is ${latest.newest}`;
      if (json) await writeOut(`${JSON.stringify({ result: "current", kernel: { from: latest.running, newest: latest.newest } } satisfies UpdateResult)}\n`);
      else await writeOut(`nothing to do: running ${latest.running}; ${newest}\n`);
      return ExitCode.current;
    }
    version = latest.version;
    if (!json) await writeOut(`--latest: ${latest.running} → ${version}\n`);
  } else {
    // A bad kernel name is refused here, before the daemon is even asked.
    version = assertRelease(choice.kind === "version" ? choice.version : "");
  }
  const append = words(args.append);
  const remove = words(args.remove);
  const result = (await request(socketPath(), "update", {
    version,
    ...(args.fast === true ? { fast: true } : {}),
    ...(append ? { cmdlineAppend: append } : {}),
    ...(remove ? { cmdlineRemove: remove } : {}),
  }, show).catch(async (e: unknown) => {
    // The daemon died mid-update: say in which phase and what its restart will do.
    if (e instanceof NvwaError && e.code === "daemon.disconnected") throw await explainDaemonDeath(args["config-dir"]);
    throw e;
  })) as UpdateReply;
  const timings = result.timings ?? [];
  const kernel = { from: result.kernel?.from ?? "?", to: result.kernel?.to ?? version, loader: result.kernel?.loader ?? "unknown" };
  if (json) {
    const out: UpdateResult = { result: "jumping", updateId: result.updateId ?? "?", kernel, jump: result.jump ?? "orderly", timings };
    await writeOut(`${JSON.stringify(out)}\n`);
    return ExitCode.ok;
  }
  await writeOut(`jumping ${kernel.from} → ${kernel.to}; the targets come back once it boots (\`nvwa status\`)\n`);
  if (timings.length > 0) await writeOut(`phases: ${timings.map((t) => `${t.step} ${t.ms} ms`).join(", ")}\n`);
  return ExitCode.ok;
}

/**
 * The client side: the daemon does the work (it must outlive this process's shell across the
 * jump's shutdown); this streams its progress and prints the phase timings.
 */
export const command = defineCommand({
  meta: { name: "update" },
  args: argsOf("update"),
  async run({ args }) {
    try {
      return await update(args);
    } catch (e) {
      if (args.json !== true) throw e;
      // Automation reads stdout: it gets the object; a person reading the log gets the line.
      await writeOut(`${JSON.stringify(failureResult(e))}\n`);
      return printError(e);
    }
  },
});

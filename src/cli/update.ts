import { defineCommand } from "./define.ts";
import { assertRelease } from "../kexec/release.ts";
import { ExitCode, NvwaError } from "../errors.ts";
import { explainDaemonDeath } from "./daemon-died.ts";
import { log } from "../log.ts";
import { request } from "../daemon/client.ts";
import type { ProgressEvent } from "../daemon/protocol.ts";
import { socketPath } from "./socket.ts";
import { argsOf } from "./arg-defs.ts";
import { writeOut } from "./output.ts";

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

/**
 * The client side: the daemon does the work (it must outlive this process's shell across the
 * jump's shutdown); this streams its progress and prints the phase timings.
 */
export const command = defineCommand({
  meta: { name: "update" },
  args: argsOf("update"),
  async run({ args }) {
    // A bad kernel name is refused here, before the daemon is even asked.
    const version = assertRelease(args.version);
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
    })) as { kernel?: { from: string; to: string; loader: string }; timings?: { step: string; ms: number }[] };
    const timings = (result.timings ?? []).map((t) => `${t.step} ${t.ms} ms`).join(", ");
    await writeOut(`jumping ${result.kernel?.from ?? "?"} → ${result.kernel?.to ?? version}; the targets come back once it boots (\`nvwa status\`)\n`);
    if (timings) await writeOut(`phases: ${timings}\n`);
    return ExitCode.ok;
  },
});

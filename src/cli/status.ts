import { defineCommand } from "./define.ts";
import { loadConfig, resolveConfigDir } from "../config/load.ts";
import { ExitCode } from "../errors.ts";
import { readManifestIfAny } from "../state/manifest-file.ts";
import { renderSummary, summarise } from "../update/summary.ts";
import { argsOf } from "./arg-defs.ts";
import { writeOut } from "./output.ts";

/**
 * Reads the manifest directly rather than asking the daemon: status must work when the daemon
 * is down, which is exactly when an operator needs it.
 */
export const command = defineCommand({
  meta: { name: "status" },
  args: argsOf("status"),
  async run({ args }) {
    const config = loadConfig(resolveConfigDir(args["config-dir"]));
    const m = readManifestIfAny(config.server.criuDir);
    if (m === null) {
      await writeOut(args.json ? `${JSON.stringify({ phase: "none" })}\n` : `no update recorded in ${config.server.criuDir}\n`);
      return ExitCode.ok;
    }
    const s = summarise(m);
    await writeOut(args.json ? `${JSON.stringify({ ...s, manifest: m }, null, 2)}\n` : renderSummary(s));
    return m.phase === "restore-failed" ? ExitCode.partial : ExitCode.ok;
  },
});

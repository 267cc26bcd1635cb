import { defineCommand } from "./define.ts";
import { ExitCode } from "../errors.ts";
import { runRestoreHelper } from "../daemon/restore-helper.ts";
import { normaliseUnitName } from "../config/schema.ts";
import { socketPath } from "./socket.ts";
import { argsOf } from "./arg-defs.ts";
import { writeOut } from "./output.ts";

/** The ExecStart of a service's restore drop-in after the jump; not for people to run. */
export const command = defineCommand({
  meta: { name: "restore" },
  args: argsOf("restore"),
  async run({ args }) {
    const r = await runRestoreHelper({ unit: normaliseUnitName(args.service), socketPath: socketPath() });
    await writeOut(`${r.unit} restored as pid ${r.mainPid}\n`);
    return ExitCode.ok;
  },
});

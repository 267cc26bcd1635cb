/** `nvwa server`: the daemon nvwa.service runs (src/daemon/main.ts). */
import { defineCommand } from "./define.ts";
import { resolveConfigDir } from "../config/load.ts";
import { runDaemon } from "../daemon/main.ts";
import { argsOf } from "./arg-defs.ts";
import { socketPath } from "./socket.ts";

export const command = defineCommand({
  meta: { name: "server" },
  args: argsOf("server"),
  run: ({ args }) => runDaemon(resolveConfigDir(args["config-dir"]), socketPath()),
});

/** Takes the update lock at argv[2] the way a running `nvwa update` does, says "held", then waits to be killed. */
import { acquireLock } from "../../../src/state/lock.ts";

const path = process.argv[2];
if (path === undefined) throw new Error("usage: hold-lock.ts <lock path>");
acquireLock(path, "update", { updateId: "held-by-test" });
process.stdout.write("held\n");
setInterval(() => {}, 1 << 30);

import { ExitCode, NvwaError } from "../errors.ts";

/** Commands whose implementation has not landed say so plainly instead of half-working. */
export function notAvailableYet(command: string): never {
  throw new NvwaError("cli.not-available", `\`nvwa ${command}\` is not available yet in this build`, {
    exitCode: ExitCode.failed,
    hint: "see README.md, \"Status\", for what this build can do",
  });
}

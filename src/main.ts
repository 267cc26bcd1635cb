import { main } from "./cli/main.ts";

// Keep this file and src/cli/main.ts small: everything they import statically is loaded on every
// start, `nvwa --help` included (test/unit/cli-startup.test.ts); commands load lazily.
void main(process.argv.slice(2)).then((code) => {
  // exitCode, not exit(): exit() can cut a piped --json document short.
  process.exitCode = code;
});

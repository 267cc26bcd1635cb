import { main } from "./cli/main.ts";

// No top-level await: the compiled executable is built with --bytecode, which needs CommonJS.
void main(process.argv.slice(2)).then((code) => {
  // exitCode, not exit(): exit() can cut a piped --json document short.
  process.exitCode = code;
});

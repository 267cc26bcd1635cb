import { main } from "./cli/main.ts";

const code = await main(process.argv.slice(2));
// Flush stdout before exiting: process.exit can truncate a piped --json document.
process.exitCode = code;

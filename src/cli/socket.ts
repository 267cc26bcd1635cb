import { DEFAULT_SOCKET_PATH } from "../daemon/protocol.ts";

/**
 * The daemon's socket. Its own module so that the clients (`update`, the `restore` helper) do not
 * load the daemon (src/cli/server.ts imports the whole update and restore machinery) to learn it.
 */
export function socketPath(): string {
  return process.env.NVWA_SOCKET ?? DEFAULT_SOCKET_PATH;
}

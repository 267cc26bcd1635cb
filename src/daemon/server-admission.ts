/**
 * Who may talk to the daemon (effects: reads SO_PEERCRED). The socket is 0600 in a 0700
 * directory, and each connection's peer credentials (SO_PEERCRED on the accepted fd) must show an
 * allowed uid (root). Bun's socket exposes the accepted fd as an undocumented `fd` property; if a
 * Bun version stops doing so the server refuses every connection rather than serve unchecked ones.
 */
import type { ConsolaInstance } from "consola";
import { peerCredentials, type PeerCredentials } from "../../ffi/unix.ts";
import { ExitCode } from "../errors.ts";
import { ProtocolError, type WireError } from "./protocol.ts";
import { STOPPING } from "./server-requests.ts";

export interface AdmissionRules {
  allowed: ReadonlySet<number>;
  stopping: boolean;
  /** Connections open, this one included. */
  connections: number;
  maxConnections: number;
}

/** The peer of a just accepted connection (when readable), and why it is refused, if it is. */
export function admit(socket: object, rules: AdmissionRules, log: ConsolaInstance): { peer: PeerCredentials | undefined; refusal: WireError | undefined } {
  const fd = (socket as { fd?: unknown }).fd;
  let peer: PeerCredentials | undefined;
  try {
    if (typeof fd === "number" && fd >= 0) peer = peerCredentials(fd);
  } catch (e) {
    log.warn(`daemon: cannot read a client's credentials: ${(e as Error).message}`);
  }
  if (peer === undefined) {
    return { peer, refusal: { code: ProtocolError.forbidden, message: "cannot verify who is connecting; refused", hint: "this Bun build does not expose socket fds; see src/daemon/server-admission.ts", exitCode: ExitCode.daemon } };
  }
  if (!rules.allowed.has(peer.uid)) {
    log.warn(`daemon: refused a client with uid ${peer.uid} (pid ${peer.pid})`);
    return { peer: undefined, refusal: { code: ProtocolError.forbidden, message: `uid ${peer.uid} may not use the nvwa daemon`, hint: "run nvwa as root", exitCode: ExitCode.daemon } };
  }
  if (rules.stopping) return { peer, refusal: STOPPING };
  if (rules.connections > rules.maxConnections) {
    return {
      peer,
      refusal: {
        code: ProtocolError.tooManyConnections,
        message: `the daemon already serves ${rules.maxConnections} connections`,
        hint: "close idle clients and retry",
        exitCode: ExitCode.daemon,
      },
    };
  }
  return { peer, refusal: undefined };
}

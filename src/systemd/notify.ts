/**
 * sd_notify(3) without libsystemd: one datagram of KEY=VALUE lines to $NOTIFY_SOCKET.
 * systemd takes the sender's pid from the socket credentials, so only the unit's main process
 * may send unless NotifyAccess= allows more (the restore drop-in sets NotifyAccess=all).
 */
import { sendDatagram } from "../../ffi/unix.ts";
import { NvwaError } from "../errors.ts";

export interface NotifyState {
  ready?: boolean;
  /** Free text shown by `systemctl status`. */
  status?: string;
  /** Hands the unit's main process over to another pid (the restored one). */
  mainpid?: number;
  stopping?: boolean;
  /** errno-style failure code shown by systemctl. */
  errno?: number;
}

/** The datagram's text (pure). MAINPID comes before READY so systemd has the pid when it sees READY. */
export function notifyMessage(s: NotifyState): string {
  const lines: string[] = [];
  if (s.mainpid !== undefined) {
    if (!Number.isInteger(s.mainpid) || s.mainpid <= 0) throw new NvwaError("internal", `invalid MAINPID ${s.mainpid}`);
    lines.push(`MAINPID=${s.mainpid}`);
  }
  if (s.ready) lines.push("READY=1");
  if (s.stopping) lines.push("STOPPING=1");
  if (s.status !== undefined) lines.push(`STATUS=${s.status.replace(/\n/g, " ")}`);
  if (s.errno !== undefined) lines.push(`ERRNO=${s.errno}`);
  return lines.join("\n");
}

/**
 * Sends the state to $NOTIFY_SOCKET. Returns false when there is no such socket (not started by
 * systemd, or Type= is not notify): like sd_notify, that is not an error.
 */
export function notify(state: NotifyState, socket: string | undefined = process.env.NOTIFY_SOCKET): boolean {
  if (socket === undefined || socket === "") return false;
  const text = notifyMessage(state);
  if (text === "") return true;
  sendDatagram(socket, Buffer.from(text, "utf8"));
  return true;
}

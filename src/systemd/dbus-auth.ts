/**
 * SASL EXTERNAL, the client side of D-Bus authentication (pure): what the client says, and the
 * server's answer read from the bytes as they arrive.
 */
import { NvwaError } from "../errors.ts";

/** A SASL line longer than this is not a server we understand. */
const MAX_AUTH_LINE = 4096;

/** "0" → "30": SASL EXTERNAL's identity is the uid as decimal text, hex-encoded. */
export function saslUidHex(uid: number): string {
  return Buffer.from(String(uid), "ascii").toString("hex");
}

/**
 * Everything the client says during authentication, as one write: the NUL byte (where a server
 * may read SCM_CREDENTIALS), AUTH EXTERNAL with our identity, and BEGIN, which the server acts
 * on only after its OK went out. sd-bus' own clients (systemctl, busctl) pipeline it the same way.
 *
 * BEGIN must not wait for the OK. sd-bus as a server (PID 1's /run/systemd/private; systemd 252
 * src/libsystemd/sd-bus/bus-socket.c, unchanged in 255) reads up to 256 bytes at a time while
 * authenticating; a message that arrives in the same read as a late BEGIN is moved to the front
 * of its read buffer and then left there: the connection goes on waiting for POLLIN
 * (sd_bus_get_events in sd-bus.c), and no more bytes come while the client waits for the reply.
 * The call is never answered, and PID 1 logs nothing about it even at debug level. A client that
 * sends BEGIN after the OK and its first call in the same turn of its event loop (nvwa did)
 * loses that call whenever PID 1 is slow to read: under load, or busy after a daemon-reload.
 * Sent with AUTH, BEGIN is in the server's first read and is handled as soon as the OK is
 * written, before the client can have sent anything else.
 */
export function authRequest(uid: number): Uint8Array {
  return Buffer.from(`\0AUTH EXTERNAL ${saslUidHex(uid)}\r\nBEGIN\r\n`, "ascii");
}

/** The server's answer: OK with its GUID (and the bytes after the line, already message data), or what it said instead. */
export type AuthAnswer = { guid: string; rest: Buffer } | { refused: string };

/** Reads the server's answer line to authRequest. */
export class AuthReply {
  private text = "";

  /** Appends a chunk; the answer once its line is whole (or is too long to be one), else undefined. */
  push(chunk: Buffer): AuthAnswer | undefined {
    this.text += chunk.toString("latin1");
    const nl = this.text.indexOf("\r\n");
    if (nl < 0) return this.text.length > MAX_AUTH_LINE ? { refused: "an endless SASL line" } : undefined;
    const line = this.text.slice(0, nl);
    if (!line.startsWith("OK ")) return { refused: `"${line.slice(0, 200)}"` };
    return { guid: line.slice(3).trim(), rest: Buffer.from(this.text.slice(nl + 2), "latin1") };
  }
}

export function authError(path: string, what: string): NvwaError {
  return new NvwaError("dbus.auth-rejected", `D-Bus server ${path} refused authentication: ${what}`, {
    hint: "nvwa must run as root to talk to systemd",
    details: { path },
  });
}

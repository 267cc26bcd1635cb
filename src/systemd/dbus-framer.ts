/**
 * Framing of a D-Bus byte stream (pure): whole messages out of chunks as the socket delivers them.
 */
import { decodeMessage, messageLength, type Message } from "./dbus-wire.ts";

/**
 * Cuts whole messages out of a byte stream that arrives in chunks of any size: several messages
 * in one chunk, one message over many, a header split anywhere.
 */
export class MessageFramer {
  private buf: Uint8Array = new Uint8Array(0);

  /** Appends a chunk; copied, since the runtime reuses the buffer it hands to the data handler. */
  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    const merged = new Uint8Array(this.buf.length + chunk.length);
    merged.set(this.buf);
    merged.set(chunk, this.buf.length);
    this.buf = merged;
  }

  /** The next whole message, or undefined until more bytes arrive. Throws dbus.* NvwaErrors on a stream that is not D-Bus. */
  next(): Message | undefined {
    const len = messageLength(this.buf);
    if (len === undefined || this.buf.length < len) return undefined;
    const m = decodeMessage(this.buf.subarray(0, len));
    this.buf = this.buf.slice(len);
    return m;
  }

  /** Bytes received that do not yet make a whole message. */
  get buffered(): number {
    return this.buf.length;
  }
}

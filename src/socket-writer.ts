/**
 * Bytes for a non-blocking socket, in order (effects: writes to the socket). A Bun socket's
 * write() takes what fits in the kernel's buffer and returns how much that was; the rest must be
 * kept and written again when the socket calls its drain handler. Used by the daemon's server
 * and client and by the D-Bus connection.
 */

/** What is written to: a Bun socket. write() returns the bytes taken, 0 or less for none. */
export interface WritableSocket {
  write(data: Uint8Array): number;
}

export class SocketWriter {
  private socket: WritableSocket | undefined;
  private queue: Uint8Array[] = [];
  private bytes = 0;

  /** maxPendingBytes: write() refuses data that would leave more than this unsent. */
  constructor(private readonly maxPendingBytes = Number.POSITIVE_INFINITY) {}

  /** The socket to write to; what was queued before goes out now. */
  attach(socket: WritableSocket): void {
    this.socket = socket;
    this.flush();
  }

  /**
   * Queues data behind what is still unsent and writes what the socket takes. False when that
   * would leave more than maxPendingBytes unsent: then everything unsent is dropped (the peer
   * does not read; the caller closes the connection).
   */
  write(data: Uint8Array): boolean {
    if (data.length === 0) return true;
    this.queue.push(data);
    this.bytes += data.length;
    if (this.bytes > this.maxPendingBytes) {
      this.queue = [];
      this.bytes = 0;
      return false;
    }
    this.flush();
    return true;
  }

  /** Writes what the socket takes (call it from the drain handler); true once nothing is left. */
  flush(): boolean {
    const s = this.socket;
    if (s === undefined) return this.queue.length === 0; // attach() writes it
    while (this.queue.length > 0) {
      const head = this.queue[0] as Uint8Array;
      const n = s.write(head);
      if (n <= 0) return false;
      this.bytes -= n;
      if (n < head.length) {
        this.queue[0] = head.subarray(n);
        return false; // the rest goes out on drain
      }
      this.queue.shift();
    }
    return true;
  }

  /** Bytes queued and not yet taken by the socket. */
  get pendingBytes(): number {
    return this.bytes;
  }
}

/**
 * The server role tests need from nvwa's D-Bus connection: answering method calls, so a test can
 * play a D-Bus service (a stand-in systemd, an echo service) on a real bus. nvwa itself serves
 * nothing; its connection only hands incoming calls to DBusConnection.onMethodCall.
 */
import type { DBusConnection } from "../../../src/systemd/dbus-conn.ts";
import { MessageFlag, MessageType, type DBusValue, type Message } from "../../../src/systemd/dbus-wire.ts";

/** The reply to a method call served here. */
export interface ServedReply {
  signature?: string;
  body?: DBusValue[];
}

/** Thrown from a method call handler to answer with a D-Bus error of that name. */
export class DBusRemoteError extends Error {
  constructor(
    readonly errorName: string,
    message: string,
  ) {
    super(message);
  }
}

/** Answers every method call on `conn` with what `handler` returns, or the error it throws. */
export function serveMethodCalls(conn: DBusConnection, handler: (m: Message) => ServedReply | Promise<ServedReply>): void {
  conn.onMethodCall((m) => void serve(conn, m, handler));
}

async function serve(conn: DBusConnection, m: Message, handler: (m: Message) => ServedReply | Promise<ServedReply>): Promise<void> {
  const noReply = (m.flags & MessageFlag.noReplyExpected) !== 0;
  const replyTo = { replySerial: m.serial, ...(m.sender === undefined ? {} : { destination: m.sender }) };
  try {
    const r = await handler(m);
    if (noReply || conn.closed) return;
    conn.send({ type: MessageType.methodReturn, flags: MessageFlag.noReplyExpected, ...replyTo, signature: r.signature ?? "", body: r.body ?? [] });
  } catch (e) {
    if (noReply || conn.closed) return;
    const name = e instanceof DBusRemoteError ? e.errorName : "org.freedesktop.DBus.Error.Failed";
    const text = e instanceof Error ? e.message : String(e);
    conn.send({ type: MessageType.error, flags: MessageFlag.noReplyExpected, errorName: name, ...replyTo, signature: "s", body: [text] });
  }
}

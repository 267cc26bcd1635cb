/**
 * Talking to the daemon: one request, its progress events, its final result or error.
 */
import { ExitCode, NvwaError } from "../errors.ts";
import { SocketWriter } from "../socket-writer.ts";
import {
  DEFAULT_SOCKET_PATH,
  parseResponse,
  type EmptyParams,
  type Method,
  type ProgressEvent,
  type RestoreParams,
  type UpdateParams,
} from "./protocol.ts";

type ParamsOf<M extends Method> = M extends "update" ? UpdateParams : M extends "restore" ? RestoreParams : EmptyParams;

export interface RequestOptions {
  /** Give up (daemon.timeout) after this long without the final line; none by default. */
  timeoutMs?: number;
}

let nextId = 1;

function unreachable(socketPath: string, code: string | undefined, cause: unknown): NvwaError {
  if (code === "EACCES" || code === "EPERM") {
    return new NvwaError("daemon.forbidden", `not allowed to connect to the nvwa daemon at ${socketPath}`, {
      hint: "run nvwa as root",
      exitCode: ExitCode.daemon,
      cause,
    });
  }
  return new NvwaError("daemon.unreachable", `the nvwa daemon is not running (${socketPath}: ${code ?? "cannot connect"})`, {
    hint: "start it: systemctl start nvwa",
    exitCode: ExitCode.daemon,
    details: { socketPath, errno: code },
    cause,
  });
}

/**
 * Sends one request and resolves with its result; each progress event goes to onEvent.
 * Rejects with the daemon's error as an NvwaError (same code, message, hint and exit code), or
 * daemon.unreachable / daemon.forbidden / daemon.disconnected / daemon.bad-response / daemon.timeout.
 */
export function request<M extends Method>(
  socketPath: string = DEFAULT_SOCKET_PATH,
  method: M,
  params: ParamsOf<M>,
  onEvent?: (e: ProgressEvent) => void,
  opts: RequestOptions = {},
): Promise<unknown> {
  const id = `${process.pid}-${nextId++}`;
  return new Promise<unknown>((resolve, reject) => {
    let settled = false;
    let buf = "";
    let timer: ReturnType<typeof setTimeout> | undefined;
    const out = new SocketWriter();
    out.write(Buffer.from(`${JSON.stringify({ id, method, params })}\n`, "utf8"));
    const settle = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      fn();
    };
    const onLine = (line: string): boolean => {
      const r = parseResponse(line);
      if (r === undefined) {
        settle(() =>
          reject(
            new NvwaError("daemon.bad-response", `the nvwa daemon sent a line nvwa cannot read: ${line.slice(0, 120)}`, {
              hint: "the daemon and this client are different nvwa versions? restart the daemon: systemctl restart nvwa",
              exitCode: ExitCode.daemon,
            }),
          ),
        );
        return true;
      }
      // A connection-level error (id null) is ours too: we sent nothing else on this connection.
      if (r.id !== id && r.id !== null) return false;
      if ("event" in r) {
        try {
          onEvent?.(r.event);
        } catch {
          // a rendering problem in the caller must not lose the update's result
        }
        return false;
      }
      if ("error" in r) {
        const e = r.error;
        settle(() =>
          reject(
            new NvwaError(e.code, e.message, {
              ...(e.hint === undefined ? {} : { hint: e.hint }),
              exitCode: (e.exitCode as ExitCode | undefined) ?? ExitCode.daemon,
              ...(e.details === undefined ? {} : { details: e.details }),
            }),
          ),
        );
        return true;
      }
      settle(() => resolve(r.result));
      return true;
    };

    Bun.connect({
      unix: socketPath,
      socket: {
        data(s, chunk) {
          buf += chunk.toString("utf8");
          let nl: number;
          while ((nl = buf.indexOf("\n")) >= 0) {
            const line = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            if (onLine(line)) {
              s.end();
              return;
            }
          }
        },
        drain() {
          out.flush();
        },
        close() {
          settle(() =>
            reject(
              new NvwaError("daemon.disconnected", `the nvwa daemon closed the connection before answering ${method}`, {
                hint: "see `journalctl -u nvwa` for why; the update log under log_dir has the details",
                exitCode: ExitCode.daemon,
              }),
            ),
          );
        },
        error(_s, e) {
          settle(() => reject(unreachable(socketPath, (e as NodeJS.ErrnoException).code, e)));
        },
      },
    }).then(
      (s) => {
        out.attach(s);
        if (opts.timeoutMs !== undefined) {
          const ms = opts.timeoutMs;
          timer = setTimeout(() => {
            settle(() =>
              reject(
                new NvwaError("daemon.timeout", `the nvwa daemon did not answer ${method} within ${ms} ms`, {
                  hint: "it may be busy with an update; check `journalctl -u nvwa`",
                  exitCode: ExitCode.daemon,
                }),
              ),
            );
            s.end();
          }, ms);
        }
      },
      (e: unknown) => settle(() => reject(unreachable(socketPath, (e as NodeJS.ErrnoException).code, e))),
    );
  });
}

/** True when a daemon answers ping at socketPath. */
export async function isDaemonRunning(socketPath: string = DEFAULT_SOCKET_PATH, timeoutMs = 5_000): Promise<boolean> {
  try {
    await request(socketPath, "ping", {}, undefined, { timeoutMs });
    return true;
  } catch {
    return false;
  }
}

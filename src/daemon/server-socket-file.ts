/**
 * The daemon socket's file (effects): a 0600 socket in a 0700 directory, never over a live
 * daemon's, and removed at stop only if it is still ours.
 */
import type { SocketHandler, UnixSocketListener } from "bun";
import { chmodSync, existsSync, lstatSync, statSync, unlinkSync } from "node:fs";
import { dirname } from "node:path";
import { ExitCode, NvwaError } from "../errors.ts";
import { ensureDir } from "../state/atomic.ts";

/** Refuses to start over a live daemon; removes a stale socket file left by a dead one. */
async function claimSocketPath(path: string): Promise<void> {
  if (!existsSync(path)) return;
  const st = lstatSync(path);
  if (!st.isSocket()) {
    throw new NvwaError("daemon.socket-path", `${path} exists and is not a socket`, {
      hint: `remove it if nothing needs it, then start the daemon again`,
    });
  }
  const alive = await Bun.connect({ unix: path, socket: { data() {}, error() {} } }).then(
    (s) => {
      s.end();
      return true;
    },
    () => false,
  );
  if (alive) {
    throw new NvwaError("daemon.already-running", `another nvwa daemon is listening on ${path}`, {
      hint: "stop it first (`systemctl stop nvwa`), or talk to it with `nvwa status`",
      exitCode: ExitCode.daemon,
    });
  }
  unlinkSync(path);
}

export interface PrivateListener<T> {
  listener: UnixSocketListener<T>;
  /** Stops listening and removes the socket file, unless a new daemon already replaced it. */
  stop(): void;
}

/** Listens on `path`, root's alone: the directory 0700, the socket 0600. */
export async function listenPrivate<T>(path: string, socket: SocketHandler<T>): Promise<PrivateListener<T>> {
  const dir = dirname(path);
  ensureDir(dir, 0o700);
  chmodSync(dir, 0o700); // it may have existed with a wider mode
  await claimSocketPath(path);
  const oldUmask = process.umask(0o177); // the socket is born 0600; chmod below makes sure
  let listener: UnixSocketListener<T>;
  try {
    listener = Bun.listen<T>({ unix: path, socket });
  } catch (e) {
    throw new NvwaError("daemon.listen", `cannot listen on ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, {
      hint: `check that ${dir} is a writable directory`,
      cause: e,
    });
  } finally {
    process.umask(oldUmask);
  }
  chmodSync(path, 0o600);
  const ino = statSync(path).ino;
  return {
    listener,
    stop() {
      listener.stop(true);
      try {
        // Only our own socket file: a new daemon may already have replaced it.
        if (statSync(path).ino === ino) unlinkSync(path);
      } catch {
        // already gone
      }
    },
  };
}

/**
 * `nvwa init`: back to a clean slate. Removes what nvwa saved (images, manifest, network
 * snapshot, rehearsal leftovers), every nvwa drop-in under systemd_etc (found by name, not
 * from today's config), unloads a kernel loaded for kexec, and reloads systemd. Says what it
 * removed. Refuses while an update runs, and without --force while saved processes wait for
 * their restore (their images are then the only copy of them).
 */
import { defineCommand } from "./define.ts";
import { existsSync, readdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { loadConfig, resolveConfigDir } from "../config/load.ts";
import { ExitCode, NvwaError, toNvwaError } from "../errors.ts";
import { defaultUnloader, isKexecLoaded, unloadKernel, type Loader } from "../kexec/index.ts";
import { acquireLock, lockPath, LOCK_FILE } from "../state/lock.ts";
import { CHECKPOINT_DIR, CONTAINERS_DIR } from "../container/keep.ts";
import { MANIFEST_FILE } from "../state/manifest.ts";
import { readManifestIfAny } from "../state/manifest-file.ts";
import { removeAllNvwaDropins } from "../systemd/dropins.ts";
import { LOCK_TABLE } from "../net/nft.ts";
import { removeTcpLock } from "../net/tcp-lock.ts";
import { SystemdManager } from "../systemd/manager.ts";
import { argsOf } from "./arg-defs.ts";
import { renderNote } from "./notes.ts";

const PENDING = ["committed", "jumping", "restoring"];

/** Only what nvwa itself writes is removed, so a criu_dir pointed at a shared folder is safe. */
function isOurs(dir: string, name: string): boolean {
  if ([MANIFEST_FILE, "net.json", "net.json.consumed", ".rehearsal"].includes(name)) return true;
  if (name.startsWith(".manifest.json.tmp-") || name.startsWith(".net.json.tmp-")) return true;
  const path = join(dir, name);
  try {
    if (!statSync(path).isDirectory()) return false;
    const files = readdirSync(path);
    // <criu_dir>/containers/<name>/: podman's logs of nvwa's container checkpoints
    if (name === CONTAINERS_DIR) return files.every((n) => isOurs(path, n));
    return files.includes("dump.log") || files.includes("restore.log") || files.includes("inventory.img");
  } catch {
    return false;
  }
}

export const command = defineCommand({
  meta: { name: "init" },
  args: argsOf("init"),
  async run({ args }) {
    const config = loadConfig(resolveConfigDir(args["config-dir"]));
    const { criuDir, systemdEtc, kexecExe } = config.server;
    const removed: string[] = [];
    let manifestPhase: string | undefined;
    let loader: string | undefined;
    let checkpoints: string[] = [];
    let waiting: string[] = [];
    try {
      const m = readManifestIfAny(criuDir);
      manifestPhase = m?.phase;
      loader = m?.kernel.loader;
      checkpoints = (m?.containers ?? []).map((c) => join(c.staticDir, CHECKPOINT_DIR));
      // Stopped by a checkpoint and never given back: that checkpoint is the container's only copy.
      waiting = (m?.containers ?? []).filter((c) => c.phase === "checkpointing" || c.phase === "checkpointed" || c.phase === "restoring").map((c) => c.name);
    } catch {
      // a damaged manifest is exactly what init is for
    }
    if (manifestPhase !== undefined && PENDING.includes(manifestPhase) && args.force !== true) {
      throw new NvwaError("init.restore-pending", `the last update is in phase "${manifestPhase}": its images are the only copy of the checkpointed processes`, {
        hint: "let the daemon restore them (`systemctl start nvwa`), or run `nvwa init --force` to discard them",
        exitCode: ExitCode.failed,
      });
    }
    if (waiting.length > 0 && args.force !== true) {
      throw new NvwaError("init.container-pending", `container(s) ${waiting.join(", ")} were checkpointed and have not run since: their checkpoints are their only copy`, {
        hint: `let the daemon restore them (\`systemctl restart nvwa\`), or podman container restore --keep <name>; \`nvwa init --force\` discards them`,
        exitCode: ExitCode.failed,
      });
    }
    const lock = existsSync(criuDir) ? acquireLock(lockPath(criuDir), "init", { onNote: renderNote }) : null;
    try {
      if (existsSync(criuDir)) {
        for (const name of readdirSync(criuDir)) {
          if (name === LOCK_FILE || !isOurs(criuDir, name)) continue;
          rmSync(join(criuDir, name), { recursive: true, force: true });
          removed.push(join(criuDir, name));
        }
      }
      // podman's checkpoints of nvwa's containers (kept after a failed restore), in their bundles.
      for (const dir of checkpoints) {
        if (!existsSync(dir)) continue;
        rmSync(dir, { recursive: true, force: true });
        removed.push(dir);
      }
      const dropins = removeAllNvwaDropins(systemdEtc);
      removed.push(...dropins);
      if (dropins.length > 0) {
        try {
          const mgr = await SystemdManager.connect();
          try {
            await mgr.reload();
          } finally {
            mgr.close();
          }
        } catch (e) {
          process.stderr.write(`nvwa: drop-ins removed but systemd was not reloaded (${toNvwaError(e).message}) — run \`systemctl daemon-reload\`\n`);
        }
      }
      if (isKexecLoaded()) {
        unloadKernel((loader as Loader | undefined) ?? defaultUnloader(), kexecExe, renderNote);
        removed.push("the kernel loaded for kexec");
      }
      // Left behind only if the daemon died in the middle of a boot-side restore.
      try {
        if (removeTcpLock()) removed.push(`the TCP lock (nftables table inet ${LOCK_TABLE})`);
      } catch {
        // no nf_tables in this kernel: there cannot be a lock either
      }
    } finally {
      lock?.release();
    }
    process.stdout.write(removed.length === 0 ? "nothing to remove: no saved state, drop-ins or loaded kernel\n" : `removed:\n${removed.map((r) => `  ${r}`).join("\n")}\n`);
    return ExitCode.ok;
  },
});

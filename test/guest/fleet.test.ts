/**
 * The fleet path, for real: Debian's ansible-playbook on the host runs the role in ansible/
 * against the QEMU guest over SSH (a forwarded port on the restricted user-mode network). The play
 * installs nvwa with apt from the signed apt repository, writes the configs, checks, moves the
 * node 6.1 → 6.12 with `nvwa update --latest` through Ansible's reboot module (new boot id), and
 * waits with `nvwa status --wait --json`; Redis is kept. A second play changes nothing. Then
 * kured's reboot command, run as kured runs it (from another mount namespace through
 * `nsenter -m/proc/1/ns/mnt`), reports that there is nothing newer with exit 6, and `nvwa check`
 * warns about a kernel loaded by hand.
 */
import { beforeAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildAptRepo } from "../../build/apt-repo.ts";
import { ensureGuestRepo, failureReport, ROOT, runScenario, waitForGuestMark, type DuringContext } from "./scenarios.ts";

const APT = join(ROOT, "dist/guest-apt");
const keyDir = mkdtempSync(join(tmpdir(), "nvwa-fleet-ssh-"));
const KEY = join(keyDir, "id_ed25519");

beforeAll(async () => {
  const p = Bun.spawnSync([process.execPath, "run", "build/compile.ts", "x64"], { cwd: ROOT, stdout: "inherit", stderr: "inherit" });
  expect(p.exitCode).toBe(0);
  await ensureGuestRepo();
  await buildAptRepo({ arches: ["x64"], out: APT });
  const k = Bun.spawnSync(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "nvwa-fleet-test", "-f", KEY]);
  expect(k.exitCode).toBe(0);
}, 600_000);

interface Recap {
  ok: number;
  changed: number;
  unreachable: number;
  failed: number;
}

interface PlayRun {
  code: number;
  recap: Recap | null;
  seconds: number;
}

interface FleetResult {
  plays: PlayRun[];
  kured?: { code: number; out: string };
}

/** Pure: the PLAY RECAP line of one host. */
export function parseRecap(text: string, host: string): Recap | null {
  const m = new RegExp(`^${host}\\s+:\\s+ok=(\\d+)\\s+changed=(\\d+)\\s+unreachable=(\\d+)\\s+failed=(\\d+)`, "m").exec(text);
  return m === null ? null : { ok: Number(m[1]), changed: Number(m[2]), unreachable: Number(m[3]), failed: Number(m[4]) };
}

const sshArgs = (port: number): string[] => ["-i", KEY, "-p", String(port), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=20"];

async function play(ctx: DuringContext, n: number): Promise<PlayRun> {
  const inv = join(ctx.out, "inventory.ini");
  writeFileSync(
    inv,
    [
      "[fleet]",
      `node1 ansible_host=127.0.0.1 ansible_port=${ctx.hostPort} ansible_user=root ansible_ssh_private_key_file=${KEY} ansible_python_interpreter=/usr/bin/python3`,
      "[fleet:vars]",
      "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'",
      "",
    ].join("\n"),
  );
  const vars = join(ctx.out, "vars.yml");
  writeFileSync(
    vars,
    [
      "nvwa_hosts: fleet",
      "nvwa_apt_uri: file:///mnt/apt",
      "nvwa_apt_key_remote_src: /mnt/apt/nvwa-archive-keyring.asc",
      "nvwa_services: [redis-test]",
      // The guest's address comes back only through nvwa (nothing configures eth0 at boot).
      "nvwa_restore_net: true",
      "nvwa_reboot_timeout: 1500",
      "nvwa_post_reboot_delay: 5",
      "",
    ].join("\n"),
  );
  const t0 = Date.now();
  const log = join(ctx.out, `ansible-${n}.txt`);
  const p = Bun.spawn(["ansible-playbook", "-i", inv, join(ROOT, "ansible/site.yml"), "-e", `@${vars}`], {
    cwd: ROOT,
    env: { ...process.env, ANSIBLE_NOCOLOR: "1", ANSIBLE_HOST_KEY_CHECKING: "False", ANSIBLE_RETRY_FILES_ENABLED: "False", ANSIBLE_LOCAL_TEMP: join(ctx.out, "ansible-tmp") },
    stdout: Bun.file(log),
    stderr: "pipe",
  });
  const [code, err] = await Promise.all([p.exited, new Response(p.stderr).text()]);
  if (err.trim() !== "") writeFileSync(`${log}.stderr`, err);
  const text = readFileSync(log, "utf8");
  process.stdout.write(`--- ansible play ${n}: exit ${code}\n${text.split("\n").slice(-12).join("\n")}\n`);
  return { code, recap: parseRecap(text, "node1"), seconds: (Date.now() - t0) / 1000 };
}

function ssh(ctx: DuringContext, command: string): { code: number; out: string } {
  const p = Bun.spawnSync(["ssh", ...sshArgs(ctx.hostPort), "root@127.0.0.1", command]);
  return { code: p.exitCode, out: `${p.stdout.toString()}${p.stderr.toString()}` };
}

async function fleet(ctx: DuringContext): Promise<FleetResult> {
  if (!(await waitForGuestMark(ctx.serialLog, "ansible-go", ctx.guestDone, 1))) return { plays: [] };
  const first = await play(ctx, 1);
  if (first.code !== 0) {
    ctx.stop();
    return { plays: [first] };
  }
  const second = await play(ctx, 2);
  // kured's --reboot-command as kured runs it: from its own mount namespace into the host's.
  const kured = ssh(ctx, "unshare -m --propagation private -- nsenter -m/proc/1/ns/mnt -- /usr/bin/nvwa update --latest --json; echo \"rc=$?\"");
  const done = ssh(ctx, "touch /var/lib/nvwa-test/ansible-done");
  if (done.code !== 0) ctx.stop();
  return { plays: [first, second], kured };
}

test("fleet: the Ansible role moves the node 6.1 → 6.12 with Redis kept, and a second run changes nothing", async () => {
  const r = await runScenario("fleet", { hostfwd: 22, dirs: [[APT, "/mnt/apt"]], adds: [[`${KEY}.pub`, "/root/.ssh/authorized_keys"]], during: fleet });
  const f = r.during as FleetResult | string | undefined;
  if (r.status !== 0) process.stderr.write(`${failureReport(r)}\n--- host side: ${JSON.stringify(f)}\n`);
  expect(typeof f).toBe("object");
  const { plays, kured } = f as FleetResult;
  // Play 1: changed things (installed, configured, updated), failed nothing.
  expect(plays[0]?.code).toBe(0);
  expect(plays[0]?.recap?.failed).toBe(0);
  expect(plays[0]?.recap?.changed).toBeGreaterThan(0);
  // Play 2: idempotent.
  expect(plays[1]?.code).toBe(0);
  expect(plays[1]?.recap).toMatchObject({ changed: 0, failed: 0, unreachable: 0 });
  expect(kured?.out).toContain('"result":"current"');
  expect(kured?.out).toContain("rc=6");
  expect(r.status).toBe(0);
  expect(r.results.kernel_before).toBe(r.kernels.old);
  expect(r.results.kernel_after).toBe(r.kernels.new);
  expect(r.results.phase).toBe("restored");
  expect(r.results.nvwa_package).toMatch(/^nvwa \S+ install ok installed$/);
  expect(Number(r.results.redis_keys)).toBeGreaterThanOrEqual(10_000);
  // After the plays: a kernel loaded by hand is named by `nvwa check` as the trap it is.
  expect(r.results.foreign_kernel).toStartWith("warn a kernel that nvwa did not load is loaded for kexec");
  process.stdout.write(`fleet: play 1 ${plays[0]?.seconds.toFixed(0)} s (changed ${plays[0]?.recap?.changed}), play 2 ${plays[1]?.seconds.toFixed(0)} s (changed 0)\n`);
}, 2_700_000);

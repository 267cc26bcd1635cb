/**
 * Containers (#15), the pure parts: podman's inspect reply read, the unit a conmon runs in, the
 * engine's error replies, the preflight rows (one thing wrong at a time), the manifest's container
 * records in the summary, the restore verdict and the recovery after a power cut. The client's
 * faults that can be caused here for real: no socket at the path, and a socket that never answers.
 * podman itself runs in the guest (test/guest/containers.test.ts).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ContainerFacts, ContainerProbe } from "../../src/container/facts.ts";
import { parseInspect, serviceOfCgroup, type ContainerInfo } from "../../src/container/inspect.ts";
import { containerLogDir, plannedContainer, withContainer } from "../../src/container/keep.ts";
import { describeEngineFailure, PodmanClient, podmanErrorText } from "../../src/container/podman-api.ts";
import { meaningfulLines } from "../../src/criu/log.ts";
import { checkContainers } from "../../src/container/preflight.ts";
import { RESTORE_DEFAULTS, SERVER_DEFAULTS, type NvwaConfig } from "../../src/config/types.ts";
import { decideRecovery } from "../../src/daemon/recovery-plan.ts";
import { isNvwaError } from "../../src/errors.ts";
import { settledPhase } from "../../src/restore/plan.ts";
import { newManifest, type ContainerTarget, type Manifest } from "../../src/state/manifest.ts";
import { renderSummary, summarise } from "../../src/update/summary.ts";
import { serviceProps } from "../lib/service-props.ts";

const ID = "3f2a9c1d4e5b6a7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7";

/** The fields nvwa reads, as podman 4.3.1 writes them (trimmed: the reply has many more). */
function inspectJson(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    Id: ID,
    Created: "2026-12-06T23:20:01.5Z",
    Name: "counter",
    OCIRuntime: "runc",
    StaticDir: `/var/lib/containers/storage/overlay-containers/${ID}/userdata`,
    ConmonPidFile: `/run/containers/storage/overlay-containers/${ID}/userdata/conmon.pid`,
    Pod: "",
    Dependencies: [],
    State: { OciVersion: "1.0.2-dev", Status: "running", Running: true, Paused: false, Pid: 40012, ConmonPid: 40001, Checkpointed: false },
    Config: { Hostname: "3f2a9c1d4e5b", Tty: false, Labels: null, SystemdMode: false },
    HostConfig: { AutoRemove: false, NetworkMode: "bridge", RestartPolicy: { Name: "", MaximumRetryCount: 0 } },
    ...over,
  };
}

function config(containers: string[], pids: number[] = []): NvwaConfig {
  return { restore: { ...RESTORE_DEFAULTS, containers, pids }, server: SERVER_DEFAULTS, files: { restore: null, server: null } };
}

function probe(info: ContainerInfo | null, over: Partial<ContainerProbe> = {}): ContainerProbe {
  return { name: info?.name ?? "counter", info, pids: [40012, 40013], processes: [40012], tcpConnections: 0, ...over };
}

function facts(containers: ContainerProbe[]): ContainerFacts {
  return { socket: "/run/podman/podman.sock", engine: { ok: true, apiVersion: "4.3.1" }, containers };
}

const info = (over: Record<string, unknown> = {}): ContainerInfo => parseInspect(inspectJson(over));

describe("podman's inspect", () => {
  test("the fields nvwa uses, with podman's defaults for the absent ones", () => {
    expect(info()).toEqual({
      id: ID,
      name: "counter",
      status: "running",
      running: true,
      pid: 40012,
      conmonPid: 40001,
      conmonPidFile: `/run/containers/storage/overlay-containers/${ID}/userdata/conmon.pid`,
      ociRuntime: "runc",
      staticDir: `/var/lib/containers/storage/overlay-containers/${ID}/userdata`,
      tty: false,
      systemdMode: false,
      pod: "",
      dependencies: [],
      autoRemove: false,
      restartPolicy: "",
      networkMode: "bridge",
    });
    expect(info({ Name: "/web", Config: { Labels: { PODMAN_SYSTEMD_UNIT: "container-web.service" } } })).toMatchObject({ name: "web", unitLabel: "container-web.service", tty: false });
  });

  test("a reply without an id or a bundle is refused with the field named", () => {
    const { Id: _id, ...noId } = inspectJson();
    const e = (() => {
      try {
        parseInspect(noId);
      } catch (x) {
        return x;
      }
      return null;
    })();
    expect(isNvwaError(e) && e.code).toBe("container.inspect-unreadable");
    expect(() => parseInspect(inspectJson({ StaticDir: "relative" }))).toThrow(/at StaticDir/);
  });

  test("conmon's cgroup: a unit other than podman's own is the container's unit", () => {
    expect(serviceOfCgroup("0::/system.slice/container-web.service\n")).toBe("container-web.service");
    expect(serviceOfCgroup(`0::/machine.slice/libpod-conmon-${ID}.scope\n`)).toBeUndefined();
    expect(serviceOfCgroup("0::/system.slice/podman.service\n")).toBeUndefined();
    expect(serviceOfCgroup("12:pids:/x\n")).toBeUndefined();
  });
});

describe("podman's error replies", () => {
  test("its JSON message, else its cause, else the plain text of an unknown route", () => {
    expect(podmanErrorText(500, JSON.stringify({ cause: "exit status 1", message: "`/usr/sbin/runc checkpoint --image-path …` failed: exit status 1", response: 500 }))).toBe(
      "`/usr/sbin/runc checkpoint --image-path …` failed: exit status 1",
    );
    expect(podmanErrorText(404, JSON.stringify({ cause: "no such container", message: "", response: 404 }))).toBe("no such container");
    expect(podmanErrorText(404, "404 page not found\n")).toBe("HTTP 404: 404 page not found");
    expect(podmanErrorText(502, "")).toBe("HTTP 502");
  });
});

describe("a failed checkpoint in one line", () => {
  // podman 4.3.1's reply and the tail of runc's criu log, from the guest's unixpeer container.
  const reply = `\`/usr/bin/runc checkpoint --image-path /var/lib/containers/storage/overlay-containers/${ID}/userdata/checkpoint --work-path /var/lib/containers/storage/overlay-containers/${ID}/userdata --file-locks ${ID}\` failed: exit status 1`;
  const log = [
    "(00.171288) \ttype ext4 source /dev/vda mnt_id 263 s_dev 0xfe00000 /usr @ ./usr flags 0x200001 options errors=remount-ro",
    "(00.773934) Error (criu/sk-unix.c:864): unix: External socket is used. Consider using --ext-unix-sk option.",
    "(00.913346) Error (criu/cr-dump.c:2053): Dumping FAILED.",
  ].join("\n");

  test("criu's reason first, podman's reply without the runtime's command line", () => {
    expect(describeEngineFailure(reply, meaningfulLines(log))).toBe("unix: External socket is used. Consider using --ext-unix-sk option. (podman: runc checkpoint failed: exit status 1)");
  });

  test("no log: podman's reply alone", () => {
    expect(describeEngineFailure("container state improper", [])).toBe("podman: container state improper");
  });
});

describe("the client's faults", () => {
  const dir = mkdtempSync(join(tmpdir(), "nvwa-podman-"));
  let silent: Server | null = null;
  afterAll(() => {
    silent?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("no socket at the path: engine-unreachable, with the unit to start", async () => {
    const e = await new PodmanClient(join(dir, "none.sock")).ping().catch((x: unknown) => x);
    expect(isNvwaError(e) && e.code).toBe("container.engine-unreachable");
    expect(isNvwaError(e) && e.hint).toContain("podman.socket");
  });

  // A stand-in for a hung engine: a real socket that accepts and never answers (a hang cannot be
  // caused in podman on demand).
  test("a socket that never answers: engine-timeout, not a hang", async () => {
    const path = join(dir, "silent.sock");
    silent = createServer(() => {});
    await new Promise<void>((r) => silent?.listen(path, r));
    const e = await new PodmanClient(path).ping(300).catch((x: unknown) => x);
    expect(isNvwaError(e) && e.code).toBe("container.engine-timeout");
  });
});

describe("preflight rows", () => {
  const row = (checks: ReturnType<typeof checkContainers>, id: string) => checks.find((c) => c.id === id);

  test("none configured: no rows; podman not answering: one failed row with the fix", () => {
    expect(checkContainers(undefined, config([]))).toEqual([]);
    const rows = checkContainers({ socket: "/run/podman/podman.sock", engine: { ok: false, error: "podman's API on /run/podman/podman.sock does not answer: ENOENT" }, containers: [] }, config(["counter"]));
    expect(rows).toEqual([expect.objectContaining({ id: "container.engine", status: "fail", fix: "start podman's API: systemctl enable --now podman.socket" })]);
  });

  test("a healthy container: ok, with its id, runtime and network", () => {
    const rows = checkContainers(facts([probe(info())]), config(["counter"]));
    expect(rows.map((r) => [r.id, r.status])).toEqual([
      ["container.engine", "ok"],
      ["container.counter", "ok"],
    ]);
    expect(row(rows, "container.counter")?.detail).toBe("running, id 3f2a9c1d4e5b, runc, network bridge, 1 process(es)");
  });

  const refusals: [string, ContainerProbe, RegExp, RegExp][] = [
    ["unknown", probe(null, { name: "nope" }), /podman has no container named nope/, /podman ps -a/],
    ["not running", probe(info({ State: { Status: "exited", Running: false } })), /is exited, not running/, /podman start counter/],
    ["crun", probe(info({ OCIRuntime: "crun" })), /runs with crun, which cannot checkpoint/, /--runtime runc/],
    ["a terminal", probe(info({ Config: { Tty: true } })), /has a terminal \(-t\)/, /without -t/],
    ["--rm", probe(info({ HostConfig: { AutoRemove: true } })), /--rm/, /without --rm/],
    ["restart always", probe(info({ HostConfig: { RestartPolicy: { Name: "always" } } })), /podman-restart\.service/, /--restart=on-failure/],
    ["a pod", probe(info({ Pod: "a1b2c3d4e5f6a7b8" })), /is in pod a1b2c3d4e5f6/, /outside the pod/],
    ["a unit systemd was not asked about", probe(info({ Config: { Labels: { PODMAN_SYSTEMD_UNIT: "container-web.service" } } })), /runs under container-web\.service, which systemd could not be asked about/, /as root/],
    [
      "a --new unit (Type=notify, podman run)",
      probe(info({ Config: { Labels: { PODMAN_SYSTEMD_UNIT: "container-web.service" } } }), { unitProps: serviceProps({ unit: "container-web.service", type: "notify", pidFile: "" }) }),
      /runs under container-web\.service \(Type=notify\): nvwa keeps a unit's container when/,
      /podman generate systemd --name counter \(without --new\)/,
    ],
    [
      "a unit following another pid file",
      probe(info(), { conmonUnit: "web.service", unitProps: serviceProps({ unit: "web.service", type: "forking", pidFile: "/run/web.pid" }) }),
      /runs under web\.service \(Type=forking, PIDFile=\/run\/web\.pid\)/,
      /without --new/,
    ],
    ["TCP connections on its own network", probe(info(), { tcpConnections: 2 }), /holds 2 established TCP connection\(s\) on its own network \(bridge\)/, /--network host/],
  ];
  for (const [what, p, detail, fix] of refusals) {
    test(`refused by name: ${what}`, () => {
      const r = row(checkContainers(facts([p]), config([p.name])), `container.${p.name}`);
      expect(r?.status).toBe("fail");
      expect(r?.title).toBe(`container ${p.name}`);
      expect(r?.detail).toMatch(detail);
      expect(r?.fix).toMatch(fix);
    });
  }

  test("a unit as podman generate systemd writes it (Type=forking, PIDFile= conmon.pid): ok, named; also under services: refused", () => {
    const unitProps = serviceProps({ unit: "container-counter.service", type: "forking", pidFile: `/run/containers/storage/overlay-containers/${ID}/userdata/conmon.pid` });
    const p = probe(info(), { conmonUnit: "container-counter.service", unitProps });
    const r = row(checkContainers(facts([p]), config(["counter"])), "container.counter");
    expect(r?.status).toBe("ok");
    expect(r?.detail).toEndWith(", under container-counter.service");
    const both = { ...config(["counter"]), restore: { ...RESTORE_DEFAULTS, containers: ["counter"], services: ["container-counter.service"] } };
    expect(row(checkContainers(facts([p]), both), "container.counter")?.detail).toBe("runs under container-counter.service, which is listed under services: too");
  });

  test("the runtime: runc, or crun when podman's default crun was built with CRIU", () => {
    const crun = probe(info({ OCIRuntime: "crun" }));
    const withCriu = { ...facts([crun]), defaultRuntime: { name: "crun", version: "crun version 1.14\ncommit: x\n+SYSTEMD +SELINUX +APPARMOR +CAP +SECCOMP +EBPF +CRIU +YAJL" } };
    expect(row(checkContainers(withCriu, config(["counter"])), "container.counter")?.status).toBe("ok");
    const debians = { ...facts([crun]), defaultRuntime: { name: "crun", version: "crun version 1.8.1\ncommit: x\n+SYSTEMD +SELINUX +APPARMOR +CAP +SECCOMP +EBPF +YAJL" } };
    expect(row(checkContainers(debians, config(["counter"])), "container.counter")?.detail).toContain("not a crun built with CRIU");
  });

  test("TCP connections on the host's network are kept: ok", () => {
    const r = row(checkContainers(facts([probe(info({ HostConfig: { NetworkMode: "host" } }), { tcpConnections: 1 })]), config(["counter"])), "container.counter");
    expect(r?.status).toBe("ok");
  });

  test("listed twice (name and id), or also under pids: refused", () => {
    const a = probe(info());
    const b = probe(info(), { name: ID.slice(0, 12) });
    const rows = checkContainers(facts([a, b]), config(["counter", ID.slice(0, 12)]));
    expect(row(rows, `container.${ID.slice(0, 12)}`)?.detail).toContain("is the same container as counter");
    expect(row(checkContainers(facts([a]), config(["counter"], [40013])), "container.counter")?.detail).toContain("its process 40013 is listed under pids: too");
  });

  test("an error reading one container fails its row only", () => {
    const rows = checkContainers(facts([probe(null, { name: "odd", error: "podman's inspect reply is not what nvwa reads (at Id): Invalid" }), probe(info())]), config(["odd", "counter"]));
    expect(rows.map((r) => r.status)).toEqual(["ok", "fail", "ok"]);
  });
});

function manifest(phase: Manifest["phase"], containers: ContainerTarget[]): Manifest {
  const m = newManifest({
    updateId: "u1",
    kernel: { from: "6.1", to: "6.12" },
    criuDir: "/var/nvwa/running",
    bootId: "boot-a",
    options: { debug: false, pinMemory: false, restoreNet: false, tcpEstablished: true, extUnixSk: true, fileLocks: true, hardwareBreakpoints: false, rehearsal: false, lazyRestore: false },
  });
  return { ...m, phase, containers };
}

const planned = plannedContainer({ name: "counter", id: ID, staticDir: `/var/lib/containers/storage/overlay-containers/${ID}/userdata`, rootPid: 40012, pids: [40012], networkMode: "bridge" }, "/var/nvwa/running");

describe("the manifest's containers", () => {
  test("a planned record: podman's bundle, nvwa's log directory under criu_dir", () => {
    expect(planned).toMatchObject({ name: "counter", engine: "podman", phase: "planned", logDir: "/var/nvwa/running/containers/counter" });
    expect(containerLogDir("/var/nvwa/running", "web")).toBe("/var/nvwa/running/containers/web");
    expect(() => withContainer(manifest("checkpointing", [planned]), "other", (c) => c)).toThrow(/no container "other"/);
  });

  test("the update is restored only when every container is; restoring while one is checkpointed", () => {
    const restored: ContainerTarget = { ...planned, phase: "restored" };
    expect(settledPhase(manifest("restoring", [restored]))).toBe("restored");
    expect(settledPhase(manifest("restoring", [{ ...planned, phase: "checkpointed" }]))).toBe("restoring");
    expect(settledPhase(manifest("restoring", [{ ...planned, phase: "restore-failed" }]))).toBe("restore-failed");
  });

  test("a power cut during the checkpoint: a checkpointed container is named among the lost", () => {
    const d = decideRecovery(manifest("checkpointing", [{ ...planned, phase: "checkpointed" }]), { bootId: "boot-b", kexecLoaded: false, alive: new Set() });
    expect(d).toEqual({ action: "lost", targets: ["container counter"] });
  });

  test("nvwa status: each container with its phase, downtime and steps, its error with the hint", () => {
    const done: ContainerTarget = { ...planned, phase: "restored", timings: { checkpoint: { start: 1000, end: 2500 }, restore: { start: 9000, end: 10_200 } } };
    const failed: ContainerTarget = { ...planned, name: "web", phase: "restore-failed", error: { code: "container.restore-failed", message: "cannot restore container web: …", hint: "podman's log of it: /var/nvwa/running/containers/web/restore.log" } };
    const s = summarise(manifest("restore-failed", [done, failed]));
    expect(s.containers?.[0]).toMatchObject({ name: "counter", id: ID.slice(0, 12), phase: "restored", downtimeMs: 9200 });
    const text = renderSummary(s);
    expect(text).toContain("  container counter (id 3f2a9c1d4e5b): restored, downtime 9.20 s\n    checkpoint 1.50 s, restore 1.20 s\n");
    expect(text).toContain("  container web (id 3f2a9c1d4e5b): restore-failed\n    error: cannot restore container web: … — podman's log of it: /var/nvwa/running/containers/web/restore.log\n");
    expect(text).not.toContain("targets: none");
    expect(summarise(manifest("restored", [])).containers).toBeUndefined();
  });
});

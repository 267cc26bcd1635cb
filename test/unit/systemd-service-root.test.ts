import { describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NvwaError } from "../../src/errors.ts";
import { cgroupProcs, chooseServiceRoot, treeRoots } from "../../src/systemd/service-root.ts";

describe("treeRoots", () => {
  test("a parent and its children: only the parent", () => {
    const ppid = new Map([[10, 1], [11, 10], [12, 11]]);
    expect(treeRoots([12, 11, 10], (p) => ppid.get(p))).toEqual([10]);
  });
  test("two separate trees and a vanished process", () => {
    const ppid = new Map([[10, 1], [11, 10], [20, 1]]);
    expect(treeRoots([20, 11, 10, 30], (p) => ppid.get(p))).toEqual([10, 20, 30]);
  });
});

describe("chooseServiceRoot", () => {
  const oneshot = { unit: "job.service", type: "oneshot", mainPid: 0 };
  test("MainPID wins whenever systemd has one", () => {
    expect(chooseServiceRoot({ unit: "a.service", type: "simple", mainPid: 42 }, [7, 8])).toBe(42);
    expect(chooseServiceRoot({ ...oneshot, mainPid: 5 }, [])).toBe(5);
  });
  test("a non-oneshot without MainPID stays 0 (the plan refuses it)", () => {
    expect(chooseServiceRoot({ unit: "a.service", type: "simple", mainPid: 0 }, [7])).toBe(0);
  });
  test("a oneshot: its one cgroup tree", () => {
    expect(chooseServiceRoot(oneshot, [33000])).toBe(33000);
  });
  test("a oneshot with nothing running, or several trees, is refused by name", () => {
    const codeOf = (roots: number[]): string => {
      try {
        chooseServiceRoot(oneshot, roots);
      } catch (e) {
        expect(e).toBeInstanceOf(NvwaError);
        expect((e as NvwaError).message).toContain("job.service");
        return (e as NvwaError).code;
      }
      return "no error";
    };
    expect(codeOf([])).toBe("service.oneshot-no-process");
    expect(codeOf([3, 4])).toBe("service.oneshot-many-trees");
  });
});

describe("cgroupProcs", () => {
  test("reads cgroup.procs under the cgroup2 mount", () => {
    const root = mkdtempSync(join(tmpdir(), "nvwa-cg-"));
    mkdirSync(join(root, "system.slice/job.service"), { recursive: true });
    writeFileSync(join(root, "system.slice/job.service/cgroup.procs"), "33000\n33001\n");
    const mountinfo = `35 24 0:30 / ${root} rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate\n`;
    expect(cgroupProcs("/system.slice/job.service", mountinfo)).toEqual([33000, 33001]);
    expect(cgroupProcs("/system.slice/gone.service", mountinfo)).toEqual([]);
    expect(cgroupProcs("", mountinfo)).toEqual([]);
  });
});

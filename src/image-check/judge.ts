/**
 * judgeImage(facts): the rows `nvwa check --root DIR` shows, one per kernel and one per other
 * thing the image needs (criu, nvwa.service and its enablement, nvwa's executable, the two config
 * files, each listed service), each failing or warning row with its fix. Pure, over what scan.ts
 * read.
 */
import { fail, ok, warn, type Check } from "../update/preflight-types.ts";
import type { ConfigFileFacts, ImageFacts, ImageKernel, UnitFacts } from "./facts.ts";
import { judgeKernelConfig } from "./requirements.ts";

interface Problem {
  status: "fail" | "warn";
  text: string;
  fix: string;
}

const unique = (xs: string[]): string[] => [...new Set(xs)];

/** One row from a summary of what was found and the problems, fails first; ok when there are none. */
function row(id: string, title: string, summary: string, problems: Problem[]): Check {
  if (problems.length === 0) return ok(id, title, summary);
  const ordered = [...problems.filter((p) => p.status === "fail"), ...problems.filter((p) => p.status === "warn")];
  const detail = [summary, ...ordered.map((p) => p.text)].filter((s) => s !== "").join("; ");
  const fix = unique(ordered.map((p) => p.fix)).join("; ");
  return ordered[0]?.status === "fail" ? fail(id, title, detail, fix) : warn(id, title, detail, fix);
}

function judgeKernel(k: ImageKernel, f: ImageFacts): Check {
  const id = `kernel.${k.version}`;
  const title = `kernel ${k.version}`;
  if (k.rescue) return ok(id, title, "dracut's rescue image: not a kernel to update to, not checked");
  if (k.versionProblem !== null) {
    return warn(id, title, `"${k.version}" is not a kernel release (${k.versionProblem}): \`nvwa update\` cannot name it, not checked`, `rename or remove vmlinuz-${k.version}`);
  }
  const problems: Problem[] = [];
  const found: string[] = [];
  if (k.kernel === null) {
    problems.push({ status: "fail", text: `no kernel file: ${k.triedKernels.join(", ")} lead to no file`, fix: "reinstall the kernel package in the image" });
  } else {
    found.push(k.image?.format === undefined ? k.kernel : `${k.kernel} (${k.image.format})`);
  }
  if (k.image?.problem !== undefined) problems.push({ status: "fail", text: k.image.problem.message, fix: k.image.problem.hint });
  if (k.initrd === null) {
    problems.push({
      status: "fail",
      text: `no initramfs (tried ${k.triedInitrds.join(", ")})`,
      fix: `build it in the image: \`update-initramfs -c -k ${k.version}\` (Debian) or \`dracut --kver ${k.version}\` (openEuler, Fedora)`,
    });
  } else {
    found.push(`initramfs ${k.initrd}`);
  }
  let loader = "";
  if (k.config === null) {
    problems.push({
      status: "fail",
      text: k.configProblem ?? `no kernel config (tried ${k.triedConfigs.join(", ")}): what nvwa needs from it cannot be checked`,
      fix: "install the kernel's config with it (distribution kernel packages ship /boot/config-<version>)",
    });
  } else {
    found.push(`config ${k.config.path}`);
    const j = judgeKernelConfig(k.config.options, f.kexecTools);
    if (j.loader !== null) loader = `; loads the next kernel with ${j.loader}`;
    for (const x of j.findings) problems.push({ status: x.status, text: `${x.what}: ${x.cost}`, fix: x.fix });
  }
  return row(id, title, `${found.join(", ")}${loader}`, problems);
}

function judgeKernels(f: ImageFacts): Check[] {
  if (f.kernels.length === 0) {
    return [fail("kernels", "kernels", `no kernel in the image: no vmlinuz-* in /boot, no vmlinuz in ${f.kernelDirs.filter((d) => d !== "/boot").map((d) => `${d}/<version>/`).join(" or ")}`, "install a kernel package in the image")];
  }
  return f.kernels.map((k) => judgeKernel(k, f));
}

function judgeCriu(f: ImageFacts): Check {
  const from = f.criu.fromConfig ? "criu_exe in nvwa-server.yaml" : "the default criu_exe";
  if (f.criu.problem === null) return ok("criu", "criu", `${f.criu.path} (${from})`);
  return fail("criu", "criu", `${f.criu.problem} (${from})`, "install criu in the image (nvwa's package requires it), or set criu_exe in /etc/nvwa/nvwa-server.yaml to where the image has it");
}

function judgeUnit(f: ImageFacts): Check {
  const u = f.unit;
  const id = "unit";
  const title = u.name;
  if (u.path === null) return fail(id, title, `${u.name} is not in the image (looked in ${unique(u.tried.map((p) => p.slice(0, p.lastIndexOf("/")))).join(", ")})`, "install the nvwa package in the image");
  if (u.masked) return fail(id, title, `${u.path} is masked`, `systemctl --root=${f.root} unmask ${u.name}`);
  if (u.unreadable || u.enablement === null) return fail(id, title, `${u.path} cannot be read`, "check the file's permissions in the image");
  const e = u.enablement;
  if (e.wantsDirs.length === 0) {
    return fail(id, title, `${u.path} has no WantedBy= or RequiredBy= in [Install], so it cannot be enabled`, "install nvwa's own unit file (WantedBy=multi-user.target)");
  }
  if (e.links.length > 0) return ok(id, title, `${u.path}, enabled (${e.links.join(", ")})`);
  if (e.dangling.length > 0) {
    const d = e.dangling[0] as { link: string; target: string };
    return fail(id, title, `${u.path}: ${d.link} points at ${d.target}, which is not in the image, so it is not enabled`, `systemctl --root=${f.root} reenable ${u.name}`);
  }
  return fail(
    id,
    title,
    `${u.path} is not enabled: no link in /etc/systemd/system/${e.wantsDirs.join(" or ")}/; after a kernel jump nothing would restore the workloads`,
    `systemctl --root=${f.root} enable ${u.name}`,
  );
}

function judgeNvwa(f: ImageFacts): Check {
  const via = f.unit.path === null ? "" : ` (ExecStart of ${f.unit.name})`;
  if (f.nvwa.problem === null) return ok("nvwa", "nvwa executable", `${f.nvwa.path}${via}`);
  return fail("nvwa", "nvwa executable", `${f.nvwa.problem}${via}`, "install the nvwa package in the image");
}

function judgeConfigFile(id: string, c: ConfigFileFacts, summary: string, absent: Check): Check {
  const title = c.path.slice(c.path.lastIndexOf("/") + 1);
  if (!c.present) return absent;
  if (c.problems.length === 0) return ok(id, title, `${c.path}: ${summary}`);
  const messages = c.problems.map((p) => p.error.message);
  const detail = messages.length === 1 ? (messages[0] as string) : `${messages.length} problems: ${messages.join("; ")}`;
  return fail(id, title, detail, unique(c.problems.map((p) => p.error.hint ?? "see README.md, \"Configuration\"")).join("; "));
}

function judgeConfigs(f: ImageFacts): Check[] {
  const r = f.restore.config;
  const count = (n: number, what: string): string => `${n} ${what}${n === 1 ? "" : "s"}`;
  const restore = judgeConfigFile(
    "config.restore",
    f.restore,
    `valid: ${count(r.services.length, "service")}${r.pids.length > 0 ? `, ${count(r.pids.length, "pid")}` : ""}, restore_net ${r.restoreNet ? "on" : "off"}`,
    warn("config.restore", "nvwa-restore.yaml", `${f.restore.path} is not in the image: the defaults apply, and they name nothing to keep running`, "install nvwa's package in the image, or write the file with the services to keep"),
  );
  const server = judgeConfigFile("config.server", f.server, `valid: criu_dir ${f.server.config.criuDir}`, ok("config.server", "nvwa-server.yaml", `${f.server.path} is not in the image: the defaults apply`));
  const out = [restore, server];
  // A pid names a process of one running system; an image is booted afresh, so its pids mean
  // nothing there (and a pid that happens to exist would be the wrong process).
  if (r.pids.length > 0) {
    out.push(
      warn(
        "config.pids",
        "pids",
        `pids ${r.pids.join(", ")} in ${f.restore.path} name processes of a running system; in an image they mean nothing and are not checked`,
        "list the workloads as services in the image; write pids only into the config of a running machine",
      ),
    );
  }
  return out;
}

function judgeService(s: UnitFacts, f: ImageFacts): Check {
  const id = `service.${s.name}`;
  const title = `service ${s.name}`;
  if (s.path === null) {
    return fail(id, title, `no unit file ${s.name} in the image (looked in ${unique(s.tried.map((p) => p.slice(0, p.lastIndexOf("/")))).join(", ")})`, `install the package that provides ${s.name} in the image, or remove it from services in nvwa-restore.yaml`);
  }
  if (s.masked) return fail(id, title, `${s.path} is masked: systemd will not start it`, `systemctl --root=${f.root} unmask ${s.name}, or remove it from services in nvwa-restore.yaml`);
  return ok(id, title, s.path);
}

/** Pure: every row for the image, in the order a person reads them: kernels, tools, unit, configs, services. */
export function judgeImage(f: ImageFacts): Check[] {
  return [...judgeKernels(f), judgeCriu(f), judgeUnit(f), judgeNvwa(f), ...judgeConfigs(f), ...f.services.map((s) => judgeService(s, f))];
}

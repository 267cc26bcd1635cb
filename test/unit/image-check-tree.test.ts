/**
 * Paths inside an image tree (src/image-check/tree-path.ts): links are followed with the tree as
 * `/`, never onto this machine's files of the same name. Needs no root: the tree is built under
 * a temporary directory.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describeMiss, found, linkTextInTree, lookupInTree, type TreeLookup, type TreeMiss } from "../../src/image-check/tree-path.ts";

let root: string;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), "nvwa-tree-"));
  mkdirSync(join(root, "usr/lib/systemd/system"), { recursive: true });
  mkdirSync(join(root, "usr/sbin"), { recursive: true });
  mkdirSync(join(root, "etc/systemd/system/multi-user.target.wants"), { recursive: true });
  mkdirSync(join(root, "boot"));
  writeFileSync(join(root, "usr/lib/systemd/system/nvwa.service"), "[Unit]\n");
  writeFileSync(join(root, "boot/initrd.img-6.1"), "x");
  // merged /usr, as Debian and openEuler have it: relative links at the top
  symlinkSync("usr/lib", join(root, "lib"));
  symlinkSync("usr/sbin", join(root, "sbin"));
  // systemctl enable writes absolute links
  symlinkSync("/usr/lib/systemd/system/nvwa.service", join(root, "etc/systemd/system/multi-user.target.wants/nvwa.service"));
  // a link to a file this machine has and the tree has not
  symlinkSync("/bin/sh", join(root, "usr/sbin/criu"));
  // relative, climbing past the top: clamped there, as `/..` is `/`
  symlinkSync("../../../../../../boot/initrd.img-6.1", join(root, "boot/initramfs-6.1.img"));
  symlinkSync("loop-b", join(root, "boot/loop-a"));
  symlinkSync("loop-a", join(root, "boot/loop-b"));
  symlinkSync("/dev/null", join(root, "etc/systemd/system/masked.service"));
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

const miss = (l: TreeLookup): TreeMiss => {
  if (found(l)) throw new Error(`expected a miss, found ${l.imagePath}`);
  return l;
};

describe("lookupInTree", () => {
  test("a plain file: its image path and host path", () => {
    const l = lookupInTree(root, "/usr/lib/systemd/system/nvwa.service");
    expect(found(l) && l.hostPath).toBe(join(root, "usr/lib/systemd/system/nvwa.service"));
    expect(found(l) && l.stats.isFile()).toBe(true);
  });

  test("relative links at the top (merged /usr) are followed inside the tree", () => {
    const l = lookupInTree(root, "/lib/systemd/system/nvwa.service");
    expect(found(l) && l.imagePath).toBe("/usr/lib/systemd/system/nvwa.service");
  });

  test("an absolute link leads into the tree, not to this machine's file", () => {
    const l = lookupInTree(root, "/etc/systemd/system/multi-user.target.wants/nvwa.service");
    expect(found(l) && l.hostPath).toBe(join(root, "usr/lib/systemd/system/nvwa.service"));
  });

  test("a link to a file this machine has but the tree lacks is missing", () => {
    expect(existsSync("/bin/sh")).toBe(true);
    expect(miss(lookupInTree(root, "/usr/sbin/criu"))).toEqual({ imagePath: "/bin", why: "missing" });
    // and through the merged-/usr link too
    expect(miss(lookupInTree(root, "/sbin/criu")).why).toBe("missing");
  });

  test("`..` stops at the tree's top", () => {
    const l = lookupInTree(root, "/boot/initramfs-6.1.img");
    expect(found(l) && l.imagePath).toBe("/boot/initrd.img-6.1");
    expect(found(lookupInTree(root, "/../../boot/initrd.img-6.1"))).toBe(true);
  });

  test("a loop of links ends with too-many-links", () => {
    expect(miss(lookupInTree(root, "/boot/loop-a")).why).toBe("too-many-links");
  });

  test("a file used as a directory", () => {
    expect(miss(lookupInTree(root, "/boot/initrd.img-6.1/x")).why).toBe("not-a-directory");
  });

  test("followLast: false looks at the link itself", () => {
    const l = lookupInTree(root, "/usr/sbin/criu", false);
    expect(found(l) && l.stats.isSymbolicLink()).toBe(true);
    expect(linkTextInTree(root, "/usr/sbin/criu")).toBe("/bin/sh");
    expect(linkTextInTree(root, "/etc/systemd/system/masked.service")).toBe("/dev/null");
    expect(linkTextInTree(root, "/usr/lib/systemd/system/nvwa.service")).toBeNull();
  });

  test("describeMiss names the path asked for and where the lookup stopped", () => {
    expect(describeMiss(miss(lookupInTree(root, "/usr/sbin/criu")), "/usr/sbin/criu")).toBe("/usr/sbin/criu does not exist in the image (/bin does not)");
    expect(describeMiss(miss(lookupInTree(root, "/boot/nope")), "/boot/nope")).toBe("/boot/nope does not exist in the image");
  });
});

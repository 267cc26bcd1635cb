/** An images directory on a temp dir: emptied before a dump, measured, images removed but logs kept. */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { hasTcpStreams, imageBytes, namesHaveTcpStreams, prepareImagesDir, removeImages, syncImages } from "../../src/criu/images.ts";

const dir = mkdtempSync(join(tmpdir(), "nvwa-images-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("namesHaveTcpStreams: criu's tcp-stream-<inode hex>.img", () => {
  expect(namesHaveTcpStreams(["core-1.img", "tcp-stream-1d274.img"])).toBe(true);
  expect(namesHaveTcpStreams(["core-1.img", "inetsk.img", "tcp-stream-.img"])).toBe(false);
});

test("prepare, measure, sync, remove", () => {
  const d = join(dir, "948");
  prepareImagesDir(d);
  expect(statSync(d).mode & 0o777).toBe(0o700);
  writeFileSync(join(d, "stale-core.img"), "old");
  prepareImagesDir(d);
  expect(readdirSync(d)).toEqual([]);
  writeFileSync(join(d, "pages-1.img"), Buffer.alloc(8192));
  writeFileSync(join(d, "tcp-stream-abc.img"), Buffer.alloc(100));
  writeFileSync(join(d, "dump.log"), "log text");
  expect(imageBytes(d)).toBe(8292);
  expect(hasTcpStreams(d)).toBe(true);
  expect(syncImages(d)).toBe(8292 + "log text".length);
  removeImages(d);
  expect(readdirSync(d)).toEqual(["dump.log"]);
  expect(imageBytes(join(dir, "missing"))).toBe(0);
});

import { describe, expect, test } from "bun:test";
import { notify, notifyMessage } from "../../src/systemd/notify.ts";
import { NvwaError } from "../../src/errors.ts";

describe("sd_notify message", () => {
  test("MAINPID comes before READY; STATUS is one line", () => {
    expect(notifyMessage({ ready: true, mainpid: 4242, status: "restored\nfine" })).toBe("MAINPID=4242\nREADY=1\nSTATUS=restored fine");
    expect(notifyMessage({ ready: true })).toBe("READY=1");
    expect(notifyMessage({ stopping: true, errno: 5 })).toBe("STOPPING=1\nERRNO=5");
    expect(notifyMessage({})).toBe("");
  });

  test("an invalid MAINPID is refused", () => {
    expect(() => notifyMessage({ mainpid: 0 })).toThrow(NvwaError);
    expect(() => notifyMessage({ mainpid: 1.5 })).toThrow(NvwaError);
  });

  test("without NOTIFY_SOCKET nothing is sent and that is not an error", () => {
    expect(notify({ ready: true }, undefined)).toBe(false);
    expect(notify({ ready: true }, "")).toBe(false);
  });
});

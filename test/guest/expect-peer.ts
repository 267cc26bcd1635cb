/** Assertions on a scenario's host-side TCP peer (scenarios.ts runs it; the demo imports scenarios.ts without bun:test). */
import { expect } from "bun:test";
import type { ScenarioRun } from "./scenarios.ts";

/**
 * The host-side TCP peer kept its one connection across the jump: a reply before it and one after,
 * in order, from the same local port, and the guest saw the same peer address on both boots.
 */
export function expectPeerKept(r: ScenarioRun): void {
  const p = r.tcpPeer;
  expect(p?.error).toBeUndefined();
  expect(p?.exchanges.map((e) => [e.boot, e.reply])).toEqual([
    [1, ":1"],
    [2, ":2"],
  ]);
  expect(new Set(p?.exchanges.map((e) => e.localPort)).size).toBe(1);
  expect(r.results.tcp_peer_after).toBe(r.results.tcp_peer_before);
}

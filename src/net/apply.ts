/**
 * Carries out a restore plan over rtnetlink, one item at a time, and reports each: applied,
 * already present, or failed with the kernel's reason. One item failing never stops the rest:
 * a missing route must not cost the workloads their addresses.
 */
import { ERRNO } from "../../ffi/errno.ts";
import { isNvwaError } from "../errors.ts";
import type { NetAction, NetChange, NetItemKind } from "./plan.ts";
import { dumpLinks } from "./read-state.ts";
import {
  addAddressRequest,
  addRouteRequest,
  addRuleRequest,
  createLinkRequest,
  MissingLinkError,
  updateLinkRequest,
  type IndexOf,
  type RtnlRequest,
} from "./requests.ts";
import { Rtnl, RtnlError } from "./rtnl.ts";

export type NetItemStatus = "applied" | "present" | "failed";

export interface NetItemReport {
  kind: NetItemKind;
  item: string;
  status: NetItemStatus;
  /** Why it failed (failed only). */
  reason?: string;
  notes: string[];
}

export interface NetRestoreReport {
  items: NetItemReport[];
  applied: number;
  present: number;
  failed: number;
  durationMs: number;
}

export function summarize(items: NetItemReport[], durationMs: number): NetRestoreReport {
  const count = (s: NetItemStatus) => items.filter((i) => i.status === s).length;
  return { items, applied: count("applied"), present: count("present"), failed: count("failed"), durationMs };
}

function requestFor(change: NetChange, index: IndexOf): RtnlRequest {
  switch (change.type) {
    case "create-link":
      return createLinkRequest(change.link, index);
    case "update-link":
      return updateLinkRequest(change, index);
    case "add-address":
      return addAddressRequest(change.address, index);
    case "add-route":
      return addRouteRequest(change.route, index);
    case "add-rule":
      return addRuleRequest(change.rule);
  }
}

/**
 * Applies the plan. Throws only when rtnetlink itself cannot be used (no socket, a link dump
 * refused); every per-item refusal is in the report.
 */
export function applyNetRestore(actions: NetAction[], rtnl?: Rtnl): NetRestoreReport {
  const started = performance.now();
  const own = rtnl === undefined;
  const client = rtnl ?? new Rtnl();
  try {
    let names = new Map<string, number>();
    const refresh = () => {
      names = new Map([...dumpLinks(client).names].map(([i, n]) => [n, i] as [string, number]));
    };
    refresh();
    const index: IndexOf = (name) => names.get(name);

    const items: NetItemReport[] = [];
    for (const a of actions) {
      const base = { kind: a.kind, item: a.item, notes: [...a.notes] };
      if (a.op === "present") {
        items.push({ ...base, status: "present" });
        continue;
      }
      if (a.op === "fail") {
        items.push({ ...base, status: "failed", reason: a.reason });
        continue;
      }
      try {
        const req = requestFor(a.change, index);
        client.request(req.type, req.flags, req.body, a.item);
        if (a.change.type === "create-link") {
          base.notes.unshift("created (was missing after the jump)");
          refresh();
          const { name, mtu } = a.change.link;
          if (mtu > 0) {
            const set = updateLinkRequest({ name, mtu, up: false, master: null }, index);
            try {
              client.request(set.type, set.flags, set.body, `${a.item}: mtu ${mtu}`);
            } catch (e) {
              if (!(e instanceof RtnlError)) throw e;
              items.push({ ...base, status: "failed", reason: `created, but setting mtu ${mtu} failed: ${e.reason}` });
              continue;
            }
          }
        }
        items.push({ ...base, status: "applied" });
      } catch (e) {
        if (e instanceof RtnlError && e.errno === ERRNO.EEXIST) {
          items.push({ ...base, status: "present", notes: [...base.notes, "the kernel already had it (EEXIST)"] });
        } else if (e instanceof RtnlError) {
          items.push({ ...base, status: "failed", reason: e.reason });
        } else if (e instanceof MissingLinkError) {
          items.push({ ...base, status: "failed", reason: `link ${e.link} does not exist` });
        } else if (isNvwaError(e)) {
          // The socket itself failed (e.g. the kernel did not answer in time): this item is
          // lost, the next ones may still go through.
          items.push({ ...base, status: "failed", reason: e.message });
        } else {
          throw e;
        }
      }
    }
    // Each item is told by the caller (restore.ts), from the report.
    return summarize(items, performance.now() - started);
  } finally {
    if (own) client.close();
  }
}

/**
 * The TCP connections of a dumped tree, as 4-tuples. nvwa records them at dump time so that,
 * after the jump, it can hold their packets back (net/tcp-lock.ts) until criu has restored the
 * sockets: criu's own dump-time lock does not survive the kexec.
 */
import { readFileSync } from "node:fs";
import { fdLinks } from "../proc-fds.ts";
import { ipToString } from "./ip-text.ts";

export interface TcpTuple {
  family: "inet" | "inet6";
  local: string;
  localPort: number;
  remote: string;
  remotePort: number;
}

/**
 * States with a peer that may still send: ESTABLISHED, FIN_WAIT1, FIN_WAIT2, CLOSE_WAIT,
 * LAST_ACK, CLOSING (include/net/tcp_states.h). LISTEN has no peer; TIME_WAIT and CLOSE hold no
 * socket of the tree's.
 */
const CONNECTED_STATES = new Set([0x01, 0x04, 0x05, 0x08, 0x09, 0x0b]);

/**
 * Pure: one address of /proc/net/tcp{,6}, "0100007F:1F90". The kernel prints each 32-bit word of
 * the address as a host-order integer (%08X), so on little-endian machines each word's bytes are
 * reversed; `littleEndian` says which order this machine uses.
 */
export function parseProcAddress(field: string, littleEndian = true): { ip: string; port: number; mapped?: boolean } | null {
  const m = /^([0-9A-Fa-f]{8}|[0-9A-Fa-f]{32}):([0-9A-Fa-f]{4})$/.exec(field);
  if (m === null) return null;
  const hex = m[1] as string;
  const bytes = new Uint8Array(hex.length / 2);
  for (let w = 0; w < hex.length / 8; w++) {
    for (let i = 0; i < 4; i++) {
      const byte = Number.parseInt(hex.slice(w * 8 + i * 2, w * 8 + i * 2 + 2), 16);
      bytes[w * 4 + (littleEndian ? 3 - i : i)] = byte;
    }
  }
  // An IPv6 socket talking to an IPv4 peer shows ::ffff:a.b.c.d; its packets are IPv4.
  const mapped = bytes.length === 16 && bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
  return { ip: ipToString(mapped ? bytes.subarray(12) : bytes), port: Number.parseInt(m[2] as string, 16), ...(mapped ? { mapped } : {}) };
}

export interface ProcTcpEntry {
  tuple: TcpTuple;
  state: number;
  inode: number;
}

/** Pure: the rows of /proc/<pid>/net/tcp or tcp6 (the header line is skipped). */
export function parseProcNetTcp(text: string, family: "inet" | "inet6", littleEndian = true): ProcTcpEntry[] {
  const out: ProcTcpEntry[] = [];
  for (const line of text.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const local = parseProcAddress(f[1] as string, littleEndian);
    const remote = parseProcAddress(f[2] as string, littleEndian);
    const state = Number.parseInt(f[3] as string, 16);
    const inode = Number(f[9]);
    if (local === null || remote === null || !Number.isFinite(state) || !Number.isInteger(inode)) continue;
    const fam = local.mapped === true && remote.mapped === true ? "inet" : family;
    out.push({ tuple: { family: fam, local: local.ip, localPort: local.port, remote: remote.ip, remotePort: remote.port }, state, inode });
  }
  return out;
}

/** Pure: the connected entries whose socket inode the tree holds, each connection once. */
export function treeConnections(entries: ProcTcpEntry[], inodes: ReadonlySet<number>): TcpTuple[] {
  const seen = new Set<string>();
  const out: TcpTuple[] = [];
  for (const e of entries) {
    if (!CONNECTED_STATES.has(e.state) || !inodes.has(e.inode)) continue;
    const key = `${e.tuple.local}|${e.tuple.localPort}|${e.tuple.remote}|${e.tuple.remotePort}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(e.tuple);
  }
  return out;
}

/** Socket inodes open in any of these processes (a process gone meanwhile contributes none). */
export function socketInodes(pids: readonly number[]): Set<number> {
  const out = new Set<number>();
  for (const link of fdLinks(pids)) {
    const m = /^socket:\[(\d+)\]$/.exec(link);
    if (m !== null) out.add(Number(m[1]));
  }
  return out;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * The TCP connections the processes hold, read from the first process's network namespace
 * (a dumped tree shares one). Best effort: unreadable files mean no connections.
 */
export function tcpConnectionsOf(processes: readonly number[]): TcpTuple[] {
  const first = processes[0];
  if (first === undefined) return [];
  const entries: ProcTcpEntry[] = [];
  for (const [file, family] of [
    ["tcp", "inet"],
    ["tcp6", "inet6"],
  ] as const) {
    try {
      entries.push(...parseProcNetTcp(readFileSync(`/proc/${first}/net/${file}`, "utf8"), family, LITTLE_ENDIAN));
    } catch {
      // no IPv6, or the process is gone
    }
  }
  return treeConnections(entries, socketInodes(processes));
}

/**
 * Pure: the one fact nvwa reads from criu's inventory.img, the dump's run id. criu names the
 * nftables table of its network lock after it ("CRIU-" + the first 21 characters, the rest cut by
 * criu's 32-byte "inet CRIU-..." buffer; criu/netfilter.c nftables_get_table) and only a criu
 * restore removes that table, so a tree resumed with SIGCONT after a --leave-stopped dump leaves it
 * behind, and every later nftables-locked dump on the machine reads it again.
 *
 * Image layout (criu/include/magic.h, images/inventory.proto): a u32 magic (preceded by the
 * common or service magic since criu 3.x), then one entry: u32 length + a protobuf
 * inventory_entry whose field 13 is `optional string dump_criu_run_id` (criu >= 3.18; older criu
 * named the table after the root pid).
 */

const IMG_COMMON_MAGIC = 0x54564319;
const IMG_SERVICE_MAGIC = 0x55105940;
const DUMP_CRIU_RUN_ID = 13;

function varint(b: Uint8Array, at: number): { value: number; next: number } | null {
  let value = 0;
  let shift = 0;
  for (let i = at; i < b.length && shift < 63; i++) {
    const byte = b[i] as number;
    value += (byte & 0x7f) * 2 ** shift;
    if ((byte & 0x80) === 0) return { value, next: i + 1 };
    shift += 7;
  }
  return null;
}

/** dump_criu_run_id from inventory.img's bytes; null when absent (older criu) or unreadable. */
export function dumpRunId(img: Uint8Array): string | null {
  if (img.length < 12) return null;
  const v = new DataView(img.buffer, img.byteOffset, img.byteLength);
  let off = 4;
  const first = v.getUint32(0, true);
  if (first === IMG_COMMON_MAGIC || first === IMG_SERVICE_MAGIC) off = 8;
  if (off + 4 > img.length) return null;
  const len = v.getUint32(off, true);
  const pb = img.subarray(off + 4, off + 4 + len);
  if (pb.length !== len) return null;
  let i = 0;
  while (i < pb.length) {
    const tag = varint(pb, i);
    if (tag === null) return null;
    const field = Math.floor(tag.value / 8);
    const wire = tag.value % 8;
    i = tag.next;
    if (wire === 0) {
      const x = varint(pb, i);
      if (x === null) return null;
      i = x.next;
    } else if (wire === 1) i += 8;
    else if (wire === 5) i += 4;
    else if (wire === 2) {
      const n = varint(pb, i);
      if (n === null || n.next + n.value > pb.length) return null;
      if (field === DUMP_CRIU_RUN_ID) return new TextDecoder().decode(pb.subarray(n.next, n.next + n.value));
      i = n.next + n.value;
    } else return null;
  }
  return null;
}

/** The name of the nftables table criu's dump-time lock lives in (family inet). */
export function criuLockTable(runId: string | null, rootPid: number): string {
  return runId === null || runId === "" ? `CRIU-${rootPid}` : `CRIU-${runId.slice(0, 21)}`;
}

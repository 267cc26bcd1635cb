/**
 * systemd's Manager over D-Bus (effects): reaching PID 1 (its private socket, else the system
 * bus), units, their properties, jobs, daemon-reload and the orderly kexec. All names and
 * signatures are systemd's org.freedesktop.systemd1 API (man org.freedesktop.systemd1).
 */
import { NvwaError } from "../errors.ts";
import { DBusConnection, type CallOptions } from "./dbus-conn.ts";
import type { DBusValue, Message } from "./dbus-wire.ts";
import {
  JOB_IFACE,
  MANAGER_IFACE,
  MANAGER_PATH,
  PROPERTIES_IFACE,
  SERVICE_IFACE,
  SERVICE_PROPERTIES,
  SANDBOX_PROPERTIES,
  SYSTEMD_BUS_NAME,
  UNIT_IFACE,
  UNIT_PROPERTIES,
  parseServiceProperties,
  unwrap,
  type JobResult,
  type ServiceProperties,
} from "./units.ts";

export const SYSTEMD_PRIVATE_SOCKET = "/run/systemd/private";
export const SYSTEM_BUS_SOCKET = "/run/dbus/system_bus_socket";

/** StartUnit/StopUnit modes (man org.freedesktop.systemd1). */
export type JobMode = "replace" | "fail" | "isolate" | "ignore-dependencies" | "ignore-requirements" | "replace-irreversibly";

export interface JobOutcome {
  job: string;
  unit: string;
  /** From JobRemoved; "unknown" when the job vanished without us seeing its signal. */
  result: JobResult;
}

const RELOAD_TIMEOUT_MS = 120_000;
const DEFAULT_JOB_TIMEOUT_MS = 120_000;
const JOB_POLL_MS = 1_000;
const FINISHED_JOBS_KEPT = 256;

export interface SystemdConnectOptions {
  privateSocket?: string;
  busSocket?: string | null;
  /** For connecting and authenticating. */
  timeoutMs?: number;
  /** For each method call's reply (default: D-Bus' 25 s). */
  callTimeoutMs?: number;
}

export class SystemdManager {
  /** JobRemoved signals seen so far: a job can finish before its StartUnit reply is handled. */
  private readonly finished = new Map<string, JobOutcome>();
  private readonly waiters = new Map<string, (o: JobOutcome) => void>();

  constructor(
    readonly conn: DBusConnection,
    /** How long each method call may wait for its reply (default: D-Bus' 25 s). */
    private readonly callTimeoutMs?: number,
  ) {
    conn.onSignal((m) => this.onSignal(m));
  }

  /**
   * Connects to PID 1 (private socket, else the system bus). On the bus, systemd only emits
   * signals once a client called Subscribe; on the private socket it always does.
   */
  static async connect(opts: SystemdConnectOptions = {}): Promise<SystemdManager> {
    const conn = await connectSystemd(opts);
    const mgr = new SystemdManager(conn, opts.callTimeoutMs);
    if (conn.bus) {
      await conn.call({
        destination: "org.freedesktop.DBus",
        path: "/org/freedesktop/DBus",
        interface: "org.freedesktop.DBus",
        member: "AddMatch",
        signature: "s",
        body: [`type='signal',sender='${SYSTEMD_BUS_NAME}',interface='${MANAGER_IFACE}',member='JobRemoved'`],
      });
      try {
        await mgr.managerCall("Subscribe");
      } catch (e) {
        if (!(e instanceof NvwaError && e.code === "dbus.org.freedesktop.systemd1.AlreadySubscribed")) throw e;
      }
    }
    return mgr;
  }

  close(): void {
    this.conn.close();
  }

  private get destination(): { destination?: string } {
    return this.conn.bus ? { destination: SYSTEMD_BUS_NAME } : {};
  }

  private onSignal(m: Message): void {
    if (m.interface !== MANAGER_IFACE || m.member !== "JobRemoved" || m.signature !== "uoss") return;
    const [, job, unit, result] = m.body as [number, string, string, string];
    const outcome: JobOutcome = { job, unit, result: result as JobResult };
    const waiter = this.waiters.get(job);
    if (waiter) {
      this.waiters.delete(job);
      waiter(outcome);
      return;
    }
    this.finished.set(job, outcome);
    if (this.finished.size > FINISHED_JOBS_KEPT) {
      const oldest = this.finished.keys().next().value;
      if (oldest !== undefined) this.finished.delete(oldest);
    }
  }

  /** Every call to PID 1 goes through here: its destination (on a bus) and the reply timeout. */
  private call(c: Omit<CallOptions, "destination">): Promise<Message> {
    const timeoutMs = c.timeoutMs ?? this.callTimeoutMs;
    return this.conn.call({ ...this.destination, ...c, ...(timeoutMs === undefined ? {} : { timeoutMs }) });
  }

  /** A method of the Manager object; resolves with the reply's values. */
  async managerCall(member: string, signature = "", body: DBusValue[] = [], timeoutMs?: number): Promise<DBusValue[]> {
    const reply = await this.call({ path: MANAGER_PATH, interface: MANAGER_IFACE, member, signature, body, ...(timeoutMs === undefined ? {} : { timeoutMs }) });
    return reply.body;
  }

  /** Object path of a unit, loading it from disk if needed (works for inactive units too). */
  async loadUnit(name: string): Promise<string> {
    return String((await this.managerCall("LoadUnit", "s", [name]))[0]);
  }

  async getProperty(path: string, iface: string, property: string): Promise<DBusValue> {
    const reply = await this.call({ path, interface: PROPERTIES_IFACE, member: "Get", signature: "ss", body: [iface, property] });
    const v = unwrap(reply.body[0]);
    if (v === undefined) throw new NvwaError("dbus.unexpected-type", `Properties.Get(${iface}.${property}) on ${path} returned nothing`);
    return v;
  }

  /**
   * The properties nvwa decides on, read one by one (pipelined) rather than with GetAll: one
   * property getter failing inside systemd fails a whole GetAll.
   */
  async serviceProperties(unit: string): Promise<ServiceProperties> {
    const path = await this.loadUnit(unit);
    const unitProps = new Map<string, DBusValue>();
    await Promise.all(
      UNIT_PROPERTIES.map(async (p) => {
        unitProps.set(p, await this.getProperty(path, UNIT_IFACE, p));
      }),
    );
    const serviceProps = new Map<string, DBusValue>();
    if (unitProps.get("LoadState") === "loaded") {
      await Promise.all([
        ...SERVICE_PROPERTIES.map(async (p) => {
          serviceProps.set(p, await this.getProperty(path, SERVICE_IFACE, p));
        }),
        // Each tolerated missing: an older systemd lacks some, and they only name what a refusal says.
        ...SANDBOX_PROPERTIES.map(async (p) => {
          try {
            serviceProps.set(p, await this.getProperty(path, SERVICE_IFACE, p));
          } catch {
            // not known to this systemd
          }
        }),
      ]);
    } else {
      // A unit that is not loaded has no Service values worth reading; preflight reports LoadState.
      for (const [k, v] of Object.entries({ Type: "", MainPID: 0, StandardOutput: "", StandardError: "", PrivateTmp: false })) {
        serviceProps.set(k, v);
      }
    }
    return parseServiceProperties(unit, path, unitProps, serviceProps);
  }

  /** Queues a start job; returns the job's object path. */
  async startUnit(name: string, mode: JobMode = "replace"): Promise<string> {
    return String((await this.managerCall("StartUnit", "ss", [name, mode]))[0]);
  }

  /**
   * Waits for a job to finish: by its JobRemoved signal, and by polling the job object in case
   * the signal is missed (the job object disappears when the job is done).
   */
  waitForJob(job: string, timeoutMs = DEFAULT_JOB_TIMEOUT_MS): Promise<JobOutcome> {
    const seen = this.finished.get(job);
    if (seen) {
      this.finished.delete(job);
      return Promise.resolve(seen);
    }
    return new Promise<JobOutcome>((resolve, reject) => {
      let done = false;
      const finish = (o: JobOutcome | NvwaError): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        clearInterval(poller);
        this.waiters.delete(job);
        if (o instanceof NvwaError) reject(o);
        else resolve(o);
      };
      this.waiters.set(job, finish);
      const timer = setTimeout(
        () =>
          finish(
            new NvwaError("systemd.job-timeout", `systemd job ${job} did not finish in ${timeoutMs} ms`, {
              hint: "see `systemctl list-jobs` and `journalctl -b` for what it waits on",
              details: { job },
            }),
          ),
        timeoutMs,
      );
      const poller = setInterval(() => {
        this.getProperty(job, JOB_IFACE, "State").then(
          () => undefined, // still queued or running
          (e: unknown) => {
            if (done) return;
            const code = e instanceof NvwaError ? e.code : "";
            if (code === "dbus.timeout" || code === "dbus.disconnected") return;
            const late = this.finished.get(job);
            if (late) this.finished.delete(job);
            finish(late ?? { job, unit: "", result: "unknown" });
          },
        );
      }, JOB_POLL_MS);
    });
  }

  async startUnitAndWait(name: string, mode: JobMode = "replace", timeoutMs?: number): Promise<JobOutcome> {
    return this.waitForJob(await this.startUnit(name, mode), timeoutMs);
  }

  /** daemon-reload. systemd answers only once the reload is complete. */
  async reload(): Promise<void> {
    await this.managerCall("Reload", "", [], RELOAD_TIMEOUT_MS);
  }
}

/**
 * Connects to systemd: its private socket first, then the system bus (where systemd is
 * org.freedesktop.systemd1 and calls need a destination).
 */
export async function connectSystemd(
  opts: { privateSocket?: string; busSocket?: string | null; timeoutMs?: number } = {},
): Promise<DBusConnection> {
  const privatePath = opts.privateSocket ?? SYSTEMD_PRIVATE_SOCKET;
  const busPath = opts.busSocket === undefined ? SYSTEM_BUS_SOCKET : opts.busSocket;
  const timing = opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs };
  try {
    return await DBusConnection.connect({ path: privatePath, bus: false, ...timing });
  } catch (first) {
    if (busPath === null) throw first;
    try {
      // Not said: which socket reached systemd changes nothing for the caller, and the bus is
      // only the fallback of test machines (systemd as PID 1 always has its private socket).
      return await DBusConnection.connect({ path: busPath, bus: true, ...timing });
    } catch (second) {
      throw new NvwaError(
        "dbus.unreachable",
        `cannot reach systemd over D-Bus: ${(first as Error).message}; ${(second as Error).message}`,
        {
          hint: "nvwa needs systemd as PID 1 and root privileges; check `systemctl is-system-running`",
          details: { privateSocket: privatePath, busSocket: busPath },
          cause: second,
        },
      );
    }
  }
}

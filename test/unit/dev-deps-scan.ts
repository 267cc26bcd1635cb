/**
 * Which external commands the build and test scripts run, found by reading them, and which
 * Debian package brings each: the machinery of test/unit/dev-deps.test.ts, which fails when
 * build/dev.sh does not install a package the scripts need (issue 12: a fresh machine met
 * `E: install arch-test for foreign architecture support` in the arm64 image build, which CI's
 * cached images had hidden).
 *
 * Commands are discovered, not listed: in shell scripts every word in command position (after
 * `;`, `|`, `&&`, `$(`, `<(`, `then`, `exec`, `timeout …`, `xargs …` and so on), the arguments
 * of `need_cmds`, and assignments whose value is a known command (`qemu_default=qemu-system-…`);
 * in TypeScript the first element of argv arrays given to Bun.spawn/spawnSync and to the
 * project's own wrappers of them (found by reading their bodies), argv builders (`…Argv()`),
 * `requireTools([...])` and `Bun.which("…")`. A command word nobody has mapped to a package is
 * itself a failure, so a new tool cannot slip by unmapped.
 *
 * Not seen: commands inside strings handed to `sh -c` / `bash -c` and inside heredocs, commands
 * run by name held in variables (`"${qemu[@]}"`), and whatever runs inside the guest (chroot,
 * in_guest, the scenarios' run.sh): the guest has its own package list (build-image.sh).
 */

/** Where a command was met. */
export interface Use {
  cmd: string;
  file: string;
  line: number;
  /** How it was found: "command", "need_cmds", "command -v", "assignment", "spawn", … */
  how: string;
}

/**
 * Command → the Debian (bookworm) package to install for it. Maintained by hand; the test
 * checks each entry against `dpkg -S` where the command is installed.
 */
export const COMMAND_PACKAGE: Readonly<Record<string, string>> = {
  // coreutils
  ...Object.fromEntries(
    [
      "basename", "cat", "chmod", "chown", "chroot", "cp", "cut", "date", "dd", "dirname", "du", "env", "head", "id", "install", "ln", "ls",
      "mkdir", "mktemp", "mv", "nice", "nohup", "nproc", "readlink", "realpath", "rm", "rmdir", "sha256sum", "sleep", "sort", "stat", "stdbuf",
      "sync", "tail", "tee", "timeout", "touch", "tr", "truncate", "uname", "wc",
    ].map((c) => [c, "coreutils"]),
  ),
  ...Object.fromEntries(["flock", "setpriv", "setsid", "unshare", "nsenter"].map((c) => [c, "util-linux"])),
  mount: "mount",
  umount: "mount",
  find: "findutils",
  xargs: "findutils",
  grep: "grep",
  sed: "sed",
  tar: "tar",
  gzip: "gzip",
  awk: "mawk",
  bash: "bash",
  sh: "dash",
  dpkg: "dpkg",
  "dpkg-query": "dpkg",
  "dpkg-deb": "dpkg",
  "dpkg-divert": "dpkg",
  "apt-get": "apt",
  "apt-cache": "apt",
  "apt-config": "apt",
  "apt-helper": "apt",
  // what the README's commands start from, not installed by dev.sh (see PREREQUISITES)
  node: "nodejs",
  npm: "npm",
  sudo: "sudo",
  // the guest image and the criu tree (mmdebstrap), their disks, QEMU
  mmdebstrap: "mmdebstrap",
  "arch-test": "arch-test",
  "dpkg-architecture": "dpkg-dev",
  "qemu-aarch64-static": "qemu-user-static",
  "mkfs.ext4": "e2fsprogs",
  mke2fs: "e2fsprogs",
  debugfs: "e2fsprogs",
  e2fsck: "e2fsprogs",
  "qemu-img": "qemu-utils",
  "qemu-system-x86_64": "qemu-system-x86",
  "qemu-system-aarch64": "qemu-system-arm",
  file: "file",
  // host tests
  ip: "iproute2",
  python3: "python3",
  "dbus-daemon": "dbus-daemon",
  "systemd-analyze": "systemd",
  pkill: "procps",
  // the fleet test: Ansible on the host drives the guest over SSH
  "ansible-playbook": "ansible-core",
  ssh: "openssh-client",
  "ssh-keygen": "openssh-client",
  // packaging
  rpm: "rpm",
  rpmbuild: "rpm",
  rpmsign: "rpm",
  rpmkeys: "rpm",
  createrepo_c: "createrepo-c",
  dnf: "dnf",
  rpmlint: "rpmlint",
  xorriso: "xorriso",
  gpg: "gnupg",
  gpgconf: "gnupg",
};

/**
 * Debian's base: packages every Debian system has (Essential: yes, or Priority: required on
 * bookworm), so dev.sh need not list them. Kept small on purpose: only what the scripts use.
 * The test checks each against dpkg's own Essential/Priority fields where dpkg is there.
 */
export const DEBIAN_BASE: readonly string[] = ["apt", "bash", "coreutils", "dash", "dpkg", "findutils", "grep", "gzip", "mawk", "mount", "sed", "tar", "util-linux"];

/** What the README's two commands start from (a Debian machine "with Node.js and npm", as root or with sudo). */
export const PREREQUISITES: Readonly<Record<string, string>> = {
  node: "the README's starting point: a machine with Node.js and npm",
  npm: "the README's starting point: a machine with Node.js and npm",
  sudo: "dev.sh re-runs itself with sudo only when not started as root (README: as root, or with sudo)",
};

/**
 * Needs that no command word shows: what a tool needs for the way the scripts use it. Each
 * applies to a script whose text matches `when`.
 */
export const IMPLIED: readonly { when: RegExp; commands: string[]; why: string }[] = [
  {
    // build-image.sh arm64: mmdebstrap checks a foreign --architectures with arch-test before it
    // starts and stops with "E: install arch-test for foreign architecture support" without it;
    // the foreign package scripts then run under qemu-user-static through binfmt_misc.
    when: /\bmmdebstrap\b[\s\S]*--arch(?:itecture)?s?=/,
    commands: ["arch-test", "qemu-aarch64-static"],
    why: "mmdebstrap --architectures (a foreign architecture: arm64 on x86_64)",
  },
  {
    // The eatmydata hook (extract.sh, customize.sh) runs `dpkg-architecture -a … -q DEB_HOST_MULTIARCH`
    // on the host and downloads with apt-helper.
    when: /--hook-dir=\/usr\/share\/mmdebstrap\/hooks\/eatmydata\b/,
    commands: ["dpkg-architecture", "apt-helper", "dpkg-deb"],
    why: "mmdebstrap's eatmydata hook",
  },
];

/** Files the scripts read by their path, and the package that ships each. */
export const KNOWN_FILES: readonly { path: RegExp; pkg: string }[] = [
  { path: /\/usr\/share\/keyrings\/debian-archive-keyring\.gpg/, pkg: "debian-archive-keyring" },
  { path: /\/usr\/lib\/binfmt\.d\/qemu-/, pkg: "qemu-user-static" },
  { path: /\/usr\/share\/mmdebstrap\//, pkg: "mmdebstrap" },
  { path: /\/usr\/share\/qemu-efi-aarch64\//, pkg: "qemu-efi-aarch64" },
];

const BUILTINS = new Set(
  (
    ". : [ alias bg bind break builtin caller cd command compgen complete compopt continue declare dirs disown echo enable eval exec exit " +
    "export false fc fg getopts hash help history jobs kill let local logout mapfile popd printf pushd pwd read readarray readonly return " +
    "set shift shopt source suspend test times trap true type typeset ulimit umask unalias unset wait " +
    // keywords
    "if then else elif fi case esac for select while until do done in function time { } ! [[ ]] coproc"
  ).split(" "),
);

/** Words that may precede a command without being one. */
const PREFIX_WORDS = new Set(["if", "then", "else", "elif", "do", "while", "until", "!", "{", "}", "fi", "done", "time"]);

// --- shell: a lexer good enough for these scripts ------------------------------------------------

type Tok = { kind: "word"; raw: string; lit: string | null; line: number; array?: (string | null)[] } | { kind: "op"; op: string; line: number } | { kind: "arith"; line: number };

type WordTok = Extract<Tok, { kind: "word" }>;

const ASSIGN = /^[A-Za-z_][A-Za-z0-9_]*(\[[^\]]*\])?\+?=/;

class ShellLexer {
  private i = 0;
  private line: number;
  private heredocs: { delim: string; strip: boolean }[] = [];
  /** Every command list: the script's, and each $( ), <( ), >( ) inside it. */
  readonly lists: Tok[][] = [];

  constructor(private readonly s: string) {
    this.line = 1;
  }

  run(): Tok[][] {
    this.list(false);
    return this.lists;
  }

  private ch(k = 0): string {
    return this.s[this.i + k] ?? "";
  }

  private list(inSubst: boolean): void {
    const toks: Tok[] = [];
    this.lists.push(toks);
    let depth = 0;
    while (this.i < this.s.length) {
      const c = this.ch();
      if (c === "\n") {
        toks.push({ kind: "op", op: "\n", line: this.line });
        this.i++;
        this.line++;
        this.heredocBodies();
      } else if (c === " " || c === "\t" || c === "\r") {
        this.i++;
      } else if (c === "\\" && this.ch(1) === "\n") {
        this.i += 2;
        this.line++;
      } else if (c === "#") {
        while (this.i < this.s.length && this.ch() !== "\n") this.i++;
      } else if (c === ")") {
        this.i++;
        if (inSubst && depth === 0) return;
        depth--;
        toks.push({ kind: "op", op: ")", line: this.line });
      } else if (c === "(") {
        if (this.ch(1) === "(") {
          toks.push({ kind: "arith", line: this.line });
          this.i += 2;
          this.arith(2);
        } else {
          depth++;
          toks.push({ kind: "op", op: "(", line: this.line });
          this.i++;
        }
      } else if (c === ";") {
        const op = this.s.startsWith(";;&", this.i) ? ";;&" : this.s.startsWith(";;", this.i) ? ";;" : this.s.startsWith(";&", this.i) ? ";&" : ";";
        toks.push({ kind: "op", op, line: this.line });
        this.i += op.length;
      } else if (c === "&") {
        if (this.ch(1) === ">") {
          this.i += this.ch(2) === ">" ? 3 : 2;
          this.redirectTarget();
        } else {
          const op = this.ch(1) === "&" ? "&&" : "&";
          toks.push({ kind: "op", op, line: this.line });
          this.i += op.length;
        }
      } else if (c === "|") {
        const op = this.ch(1) === "|" ? "||" : this.ch(1) === "&" ? "|&" : "|";
        toks.push({ kind: "op", op, line: this.line });
        this.i += op.length;
      } else if (c === "<" || c === ">") {
        if (this.ch(1) === "(") {
          this.i += 2;
          this.list(true);
        } else {
          this.redirect();
        }
      } else {
        const w = this.word();
        if (w !== null) toks.push(w);
      }
    }
  }

  /** At `<` or `>` (any fd before it already consumed): the operator and its target. */
  private redirect(): void {
    for (const op of ["<<<", "<<-", "<<", "<>", "<&", ">>", ">&", ">|", "<", ">"]) {
      if (!this.s.startsWith(op, this.i)) continue;
      this.i += op.length;
      if (op === "<<" || op === "<<-") {
        while (this.ch() === " " || this.ch() === "\t") this.i++;
        const d = this.word();
        this.heredocs.push({ delim: d?.lit ?? d?.raw.replace(/['"\\]/g, "") ?? "", strip: op === "<<-" });
        return;
      }
      this.redirectTarget();
      return;
    }
  }

  private redirectTarget(): void {
    while (this.ch() === " " || this.ch() === "\t") this.i++;
    if ((this.ch() === "<" || this.ch() === ">") && this.ch(1) === "(") {
      this.i += 2;
      this.list(true);
      return;
    }
    this.word();
  }

  private heredocBodies(): void {
    for (const h of this.heredocs.splice(0)) {
      while (this.i < this.s.length) {
        const end = this.s.indexOf("\n", this.i);
        const lineText = this.s.slice(this.i, end === -1 ? this.s.length : end);
        this.i = end === -1 ? this.s.length : end + 1;
        this.line++;
        if ((h.strip ? lineText.replace(/^\t+/, "") : lineText) === h.delim) break;
      }
    }
  }

  /** Skips an arithmetic expression whose `depth` opening parentheses were consumed (not the $( ) in it). */
  private arith(depth: number): void {
    let d = depth;
    while (this.i < this.s.length && d > 0) {
      const c = this.ch();
      if (c === "$" && this.ch(1) === "(" && this.ch(2) !== "(") {
        this.i += 2;
        this.list(true); // $(( $(du …) + 256 )): the command inside still runs
        continue;
      }
      if (c === "(") d++;
      else if (c === ")") d--;
      else if (c === "\n") this.line++;
      this.i++;
    }
  }

  /** Skips `${…}` whose `${` was consumed. */
  private braces(): void {
    let d = 1;
    while (this.i < this.s.length && d > 0) {
      const c = this.ch();
      if (c === "\\") this.i++;
      else if (c === "'") this.i = this.s.indexOf("'", this.i + 1) === -1 ? this.s.length : this.s.indexOf("'", this.i + 1);
      else if (c === "{") d++;
      else if (c === "}") d--;
      else if (c === "\n") this.line++;
      this.i++;
    }
  }

  /** At `$`: an expansion. Returns true when it was one (the word is then not literal). */
  private dollar(): boolean {
    const n = this.ch(1);
    if (n === "(") {
      if (this.ch(2) === "(") {
        this.i += 3;
        this.arith(2);
      } else {
        this.i += 2;
        this.list(true);
      }
      return true;
    }
    if (n === "{") {
      this.i += 2;
      this.braces();
      return true;
    }
    if (/[A-Za-z0-9_@*#?$!-]/.test(n)) {
      this.i += 2;
      if (/[A-Za-z_]/.test(n)) while (/[A-Za-z0-9_]/.test(this.ch())) this.i++;
      return true;
    }
    return false;
  }

  private word(): WordTok | null {
    const line = this.line;
    const start = this.i;
    let lit: string | null = "";
    while (this.i < this.s.length) {
      const c = this.ch();
      if (" \t\r\n;&|()".includes(c)) {
        const raw = this.s.slice(start, this.i);
        if (c === "(" && ASSIGN.test(raw) && raw.endsWith("=")) return this.arrayAssignment(raw, line);
        break;
      }
      if (c === "<" || c === ">") {
        const raw = this.s.slice(start, this.i);
        if (/^(\d+|\{[A-Za-z_][A-Za-z0-9_]*\})$/.test(raw)) {
          this.redirect(); // `2>&1`, `9>file`, `{fd}>file`: the word was the fd
          return null;
        }
        break;
      }
      if (c === "\\") {
        if (this.ch(1) === "\n") this.line++;
        else if (lit !== null) lit += this.ch(1);
        this.i += 2;
      } else if (c === "'") {
        const end = this.s.indexOf("'", this.i + 1);
        const body = this.s.slice(this.i + 1, end === -1 ? this.s.length : end);
        this.line += body.split("\n").length - 1;
        if (lit !== null) lit += body;
        this.i = end === -1 ? this.s.length : end + 1;
      } else if (c === '"') {
        this.i++;
        while (this.i < this.s.length && this.ch() !== '"') {
          const d = this.ch();
          if (d === "\\") {
            if (lit !== null) lit += this.ch(1);
            this.i += 2;
          } else if (d === "$" && this.dollar()) {
            lit = null;
          } else if (d === "`") {
            lit = null;
            this.i = this.s.indexOf("`", this.i + 1) + 1 || this.s.length;
          } else {
            if (d === "\n") this.line++;
            if (lit !== null) lit += d;
            this.i++;
          }
        }
        this.i++;
      } else if (c === "$" && this.ch(1) === "'") {
        let j = this.i + 2;
        while (j < this.s.length && this.s[j] !== "'") j += this.s[j] === "\\" ? 2 : 1;
        lit = null;
        this.i = j + 1;
      } else if (c === "$" && this.dollar()) {
        lit = null;
      } else if (c === "`") {
        lit = null;
        this.i = this.s.indexOf("`", this.i + 1) + 1 || this.s.length;
      } else {
        if (lit !== null) lit += c;
        this.i++;
      }
    }
    const raw = this.s.slice(start, this.i);
    return raw === "" ? null : { kind: "word", raw, lit, line };
  }

  /** `name=(a b c)`: one word carrying its elements. */
  private arrayAssignment(raw: string, line: number): WordTok {
    this.i++; // (
    const elems: (string | null)[] = [];
    while (this.i < this.s.length) {
      const c = this.ch();
      if (c === ")") {
        this.i++;
        break;
      }
      if (c === "\n") {
        this.line++;
        this.i++;
      } else if (c === " " || c === "\t" || c === "\r") {
        this.i++;
      } else if (c === "#") {
        while (this.i < this.s.length && this.ch() !== "\n") this.i++;
      } else if (c === "\\" && this.ch(1) === "\n") {
        this.i += 2;
        this.line++;
      } else {
        const w = this.word();
        if (w !== null) elems.push(w.lit);
        else if (w === null && this.ch() !== ")" && !" \t\r\n#".includes(this.ch())) this.i++; // stray operator character: skip it
      }
    }
    return { kind: "word", raw, lit: null, line, array: elems };
  }
}

/** Where Debian puts the commands it ships; another absolute path is a test's own (/nonexistent/kexec). */
const SYSTEM_DIRS = new Set(["/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/lib/apt"]);

function commandName(word: string): string | null {
  if (word === "") return null;
  const slash = word.lastIndexOf("/");
  if (slash === -1) return word;
  if (word.startsWith("/") && SYSTEM_DIRS.has(word.slice(0, slash))) return word.slice(slash + 1) || null;
  return null; // the project's own scripts (./x, "$DIR/build-image.sh", node_modules/.bin/bun), test paths
}

/** Options that take a value, per prefix command (short and long forms). */
const OPTION_VALUES: Record<string, Set<string>> = {
  timeout: new Set(["-k", "-s", "--kill-after", "--signal"]),
  env: new Set(["-u", "-C", "-S", "--unset", "--chdir", "--split-string"]),
  xargs: new Set(["-I", "-d", "-n", "-P", "-L", "-a", "-E", "-s", "--delimiter", "--max-args", "--max-procs", "--arg-file", "--max-lines"]),
  sudo: new Set(["-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-U"]),
  nice: new Set(["-n", "--adjustment"]),
  flock: new Set(["-w", "-E", "--timeout", "--conflict-exit-code"]),
  setsid: new Set([]),
  nohup: new Set([]),
  stdbuf: new Set(["-i", "-o", "-e"]),
};

/** Every command a shell script runs (as far as can be read), and the functions it defines. */
export function shellCommandUses(file: string, text: string): { uses: Use[]; functions: Set<string> } {
  const uses: Use[] = [];
  const functions = new Set<string>();
  const use = (cmd: string, line: number, how: string): void => {
    uses.push({ cmd, file, line, how });
  };
  const lists = new ShellLexer(text).run();

  type Word = WordTok;
  const simple = (words: Word[]): void => {
    let j = 0;
    while (j < words.length && PREFIX_WORDS.has(words[j]?.raw ?? "")) j++;
    for (; j < words.length; j++) {
      const w = words[j] as Word;
      if (!ASSIGN.test(w.raw)) break;
      // A value that is a known command (`qemu_default=qemu-system-x86_64`, `mm=(mmdebstrap …)`).
      const value = w.array === undefined ? (w.lit === null ? null : w.lit.slice(w.lit.indexOf("=") + 1)) : (w.array[0] ?? null);
      const name = value === null ? null : commandName(value);
      if (name !== null && COMMAND_PACKAGE[name] !== undefined) use(name, w.line, "assignment");
    }
    run(words.slice(j));
  };
  const run = (words: Word[]): void => {
    const first = words[0];
    if (first === undefined || first.lit === null) return; // nothing, or a command held in a variable
    const name = commandName(first.lit);
    if (name === null) return;
    const args = words.slice(1);
    if (name === "exec" || name === "time") return run(args);
    if (name === "command") {
      if (args[0]?.lit === "-v" || args[0]?.lit === "-V") {
        const looked = args[1]?.lit == null ? null : commandName(args[1].lit);
        if (looked !== null) use(looked, first.line, "command -v");
        return;
      }
      return run(args);
    }
    use(name, first.line, "command");
    if (name === "need_cmds") {
      for (const a of args) {
        const n = a.lit === null ? null : commandName(a.lit);
        if (n !== null) use(n, a.line, "need_cmds");
      }
      return;
    }
    const takes = OPTION_VALUES[name];
    if (takes === undefined) return; // chroot and in_guest run their command elsewhere: the guest
    let k = 0;
    while (k < args.length) {
      const a = args[k]?.lit ?? "";
      if (a === "--") {
        k++;
        break;
      }
      if (name === "env" && ASSIGN.test(a)) k++;
      else if (a.startsWith("-") && a !== "-") k += takes.has(a) ? 2 : 1;
      else break;
    }
    if (name === "timeout") k++; // the duration
    if (name === "flock") {
      if (/^\d+$/.test(args[k]?.lit ?? "")) return; // `flock 9`: a held fd, no command
      k++; // the lock file
    }
    run(args.slice(k));
  };

  for (const toks of lists) {
    const cases: { pattern: boolean }[] = [];
    let i = 0;
    while (i < toks.length) {
      const t = toks[i] as Tok;
      const top = cases.at(-1);
      if (t.kind === "op") {
        if (t.op === ";;" || t.op === ";&" || t.op === ";;&") {
          if (top !== undefined) top.pattern = true;
        }
        i++;
        continue;
      }
      if (top?.pattern === true) {
        if (t.kind === "word" && t.raw === "esac") {
          cases.pop();
          i++;
          continue;
        }
        while (i < toks.length && !((toks[i] as Tok).kind === "op" && (toks[i] as { op: string }).op === ")")) i++;
        i++;
        top.pattern = false;
        continue;
      }
      if (t.kind === "arith") {
        i++;
        continue;
      }
      // Reserved words that take over the rest of the command.
      let j = i;
      while (j < toks.length && toks[j]?.kind === "word" && PREFIX_WORDS.has((toks[j] as Word).raw)) j++;
      const head = toks[j];
      if (head?.kind === "word" && head.raw === "[[") {
        while (j < toks.length && !(toks[j]?.kind === "word" && (toks[j] as Word).raw === "]]")) j++;
        i = j + 1;
        continue;
      }
      if (head?.kind === "word" && (head.raw === "for" || head.raw === "select")) {
        while (j < toks.length && !(toks[j]?.kind === "op" && [";", "\n"].includes((toks[j] as { op: string }).op))) j++;
        i = j;
        continue;
      }
      if (head?.kind === "word" && head.raw === "case") {
        while (j < toks.length && !(toks[j]?.kind === "word" && (toks[j] as Word).raw === "in")) j++;
        cases.push({ pattern: true });
        i = j + 1;
        continue;
      }
      if (head?.kind === "word" && head.raw === "function") {
        const n = toks[j + 1];
        if (n?.kind === "word" && n.lit !== null) functions.add(n.lit);
        i = j + 2;
        continue;
      }
      const words: Word[] = [];
      while (i < toks.length && toks[i]?.kind !== "op") {
        const w = toks[i] as Tok;
        if (w.kind === "word") words.push(w);
        i++;
      }
      const open = toks[i];
      const close = toks[i + 1];
      if (words.length === 1 && open?.kind === "op" && open.op === "(" && close?.kind === "op" && close.op === ")") {
        if (words[0]?.lit != null) functions.add(words[0].lit); // name() { … }
        i += 2;
        continue;
      }
      simple(words);
    }
  }
  return { uses, functions };
}

// --- TypeScript ---------------------------------------------------------------------------------

const STR = String.raw`"([^"\\$]+)"|'([^'\\$]+)'|\x60([^\x60\\$]+)\x60`;

function firstString(m: RegExpMatchArray, from: number): string | undefined {
  return m[from] ?? m[from + 1] ?? m[from + 2];
}

function lineAt(text: string, index: number): number {
  return text.slice(0, index).split("\n").length;
}

/** The body of the function whose header starts at `index`: up to the first line that closes it at column 0 (or the end). */
function bodyFrom(text: string, index: number): string {
  const end = text.indexOf("\n}", index);
  return text.slice(index, end === -1 ? text.length : end);
}

const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** Every command the TypeScript files run by a literal name. */
export function tsCommandUses(files: readonly { file: string; text: string }[]): Use[] {
  // String constants (`const PYTHON = "/usr/bin/python3"`) stand for their value in argv.
  const constants = new Map<string, string>();
  for (const { text } of files) {
    for (const m of text.matchAll(/(?:export\s+)?const\s+([A-Za-z_$][\w$]*)\s*=\s*"([^"\s$]+)"\s*;/g)) if (m[1] && m[2]) constants.set(m[1], m[2]);
  }
  // Wrappers: functions whose string[] parameter reaches Bun.spawn/spawnSync (directly or through another wrapper).
  const spawners = new Set(["spawn", "spawnSync"]);
  const candidates: { name: string; param: string; body: string }[] = [];
  for (const { text } of files) {
    for (const m of text.matchAll(/function\s+([A-Za-z_$][\w$]*)\s*\(\s*([A-Za-z_$][\w$]*)\s*:\s*string\[\]/g)) {
      if (m[1] && m[2] && m.index !== undefined) candidates.push({ name: m[1], param: m[2], body: bodyFrom(text, m.index) });
    }
  }
  for (let changed = true; changed; ) {
    changed = false;
    for (const c of candidates) {
      if (spawners.has(c.name)) continue;
      const calls = new RegExp(String.raw`(?:\b(?:${[...spawners].map(escapeRe).join("|")})\(\s*(?:\[\s*)?|\bcmd:\s*(?:\[\s*)?)${escapeRe(c.param)}\b`);
      if (calls.test(c.body)) {
        spawners.add(c.name);
        changed = true;
      }
    }
  }
  const callee = [...spawners].map(escapeRe).join("|");
  const FIRST = String.raw`(?:${STR}|([A-Za-z_$][\w$]*)\s*[,\]])`;
  const uses: Use[] = [];
  for (const { file, text } of files) {
    const add = (value: string | undefined, ident: string | undefined, index: number, how: string): void => {
      const v = value ?? (ident === undefined ? undefined : constants.get(ident));
      const name = v === undefined ? null : commandName(v);
      const line = lineAt(text, index);
      if (name !== null && /^[\w.+-]+$/.test(name) && !uses.some((u) => u.cmd === name && u.file === file && u.line === line && u.how === how)) uses.push({ cmd: name, file, line, how });
    };
    // spawn(["cmd", …]), spawnSync({ cmd: ["cmd", …] }), run(["cmd", …]) and the like
    for (const m of text.matchAll(new RegExp(String.raw`\b(?:${callee})\(\s*(?:\{\s*cmd:\s*)?\[\s*${FIRST}`, "g"))) add(firstString(m, 1), m[4], m.index ?? 0, "spawn");
    for (const m of text.matchAll(new RegExp(String.raw`\bcmd:\s*\[\s*${FIRST}`, "g"))) add(firstString(m, 1), m[4], m.index ?? 0, "spawn");
    // const args = ["bash", …] later given to a spawner
    for (const m of text.matchAll(new RegExp(String.raw`(?:const|let)\s+([A-Za-z_$][\w$]*)(?:\s*:\s*string\[\])?\s*=\s*\[\s*${FIRST}`, "g"))) {
      const v = m[1] ?? "";
      if (new RegExp(String.raw`\b(?:${callee})\(\s*(?:\{\s*cmd:\s*)?${escapeRe(v)}\b|\bcmd:\s*${escapeRe(v)}\b`).test(text)) add(firstString(m, 2), m[5], m.index ?? 0, "spawned array");
    }
    // argv builders: function fooArgv(…) { return ["cmd", …] }
    for (const m of text.matchAll(/function\s+\w*Argv\s*\(/g)) {
      const body = bodyFrom(text, m.index ?? 0);
      const r = body.match(new RegExp(String.raw`return\s*\[\s*${FIRST}`));
      if (r) add(firstString(r, 1), r[4], (m.index ?? 0) + (r.index ?? 0), "argv builder");
    }
    for (const m of text.matchAll(/requireTools\(\[([^\]]*)\]/g)) {
      for (const s of (m[1] ?? "").matchAll(/"([^"]+)"/g)) add(s[1], undefined, m.index ?? 0, "requireTools");
    }
    for (const m of text.matchAll(/\bBun\.which\(\s*"([^"]+)"/g)) add(m[1], undefined, m.index ?? 0, "Bun.which");
  }
  return uses;
}

// --- the check ----------------------------------------------------------------------------------

/** The packages in dev.sh's APT_PACKAGES=( … ) (comments dropped). */
export function aptPackagesOf(devSh: string): string[] {
  const m = devSh.match(/^APT_PACKAGES=\(\n?([\s\S]*?)^\)/m);
  if (!m) throw new Error("build/dev.sh has no APT_PACKAGES=( … ) block");
  return (m[1] ?? "")
    .split("\n")
    .map((l) => l.replace(/#.*/, ""))
    .flatMap((l) => l.split(/\s+/))
    .filter((w) => w !== "");
}

export interface DepsInput {
  shell: readonly { file: string; text: string }[];
  ts: readonly { file: string; text: string }[];
  aptPackages: readonly string[];
}

export interface DepsReport {
  uses: Use[];
  /** Package → why (the first use that needs it). */
  needed: Map<string, string>;
  problems: string[];
}

/** Every command the scripts run, the package each needs, and what dev.sh fails to install. */
export function checkDevDeps(input: DepsInput): DepsReport {
  const uses: Use[] = [];
  // A script's functions, and those of the scripts it sources (`. "…/lib.sh"`), are not commands.
  const scanned = input.shell.map(({ file, text }) => ({ file, text, ...shellCommandUses(file, text) }));
  const base = (f: string): string => f.slice(f.lastIndexOf("/") + 1);
  for (const s of scanned) {
    const sourced = [...s.text.matchAll(/^\s*(?:\.|source)\s+.*?([\w.-]+\.sh)"?\s*$/gm)].map((m) => m[1]);
    const functions = new Set([...s.functions, ...scanned.filter((o) => sourced.includes(base(o.file))).flatMap((o) => [...o.functions])]);
    uses.push(...s.uses.filter((u) => !functions.has(u.cmd) || u.how === "need_cmds"));
  }
  uses.push(...tsCommandUses(input.ts));
  // Comments do not count (dev.sh's own explain what the rules are about).
  const code = [
    ...input.shell.map(({ file, text }) => ({ file, text: text.replace(/(^|\s)#.*$/gm, "$1") })),
    ...input.ts.map(({ file, text }) => ({ file, text: text.replace(/\/\*[\s\S]*?\*\//g, (c) => c.replace(/[^\n]/g, "")).replace(/(^|\s)\/\/.*$/gm, "$1") })),
  ];
  for (const { file, text } of code) {
    for (const rule of IMPLIED) {
      if (rule.when.test(text)) for (const cmd of rule.commands) uses.push({ cmd, file, line: 0, how: rule.why });
    }
  }
  const problems: string[] = [];
  const needed = new Map<string, string>();
  const installed = new Set([...input.aptPackages, ...DEBIAN_BASE]);
  const where = (u: Use): string => `${u.file}${u.line > 0 ? `:${u.line}` : ""} (${u.how})`;
  const unmapped = new Set<string>();
  for (const u of uses) {
    if (BUILTINS.has(u.cmd)) continue;
    if (PREREQUISITES[u.cmd] !== undefined) continue;
    const pkg = COMMAND_PACKAGE[u.cmd];
    if (pkg === undefined) {
      if (!unmapped.has(u.cmd)) problems.push(`${where(u)}: runs "${u.cmd}", and no Debian package is known for it: add it to COMMAND_PACKAGE in test/unit/dev-deps-scan.ts (and the package to build/dev.sh)`);
      unmapped.add(u.cmd);
      continue;
    }
    if (!needed.has(pkg)) needed.set(pkg, `${u.cmd} at ${where(u)}`);
  }
  for (const { file, text } of code) {
    for (const f of KNOWN_FILES) {
      const m = text.match(f.path);
      if (m && !needed.has(f.pkg)) needed.set(f.pkg, `${m[0]} at ${file}:${lineAt(text, m.index ?? 0)}`);
    }
  }
  for (const [pkg, why] of needed) {
    if (!installed.has(pkg)) problems.push(`build/dev.sh does not install ${pkg}, needed for ${why}: add it to APT_PACKAGES`);
  }
  return { uses, needed, problems };
}

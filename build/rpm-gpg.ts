/**
 * The signing key: the distributor's real key when NVWA_GPG_KEY_ID is set (from $GNUPGHOME or
 * ~/.gnupg, optionally unlocked with NVWA_GPG_PASSPHRASE_FILE), otherwise a throw-away key made
 * for this build in a temporary GNUPGHOME and destroyed with it. Either way the public key is
 * exported as RPM-GPG-KEY-nvwa next to the packages it verifies.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir, homedir } from "node:os";
import { join } from "node:path";
import { ExitCode, NvwaError } from "../src/errors.ts";
import { fingerprintsOf, gpgKeygenArgv } from "./rpm-plan.ts";
import { run } from "./rpm-run.ts";

export interface SigningKey {
  /** Full fingerprint of the primary key. */
  fingerprint: string;
  gnupgHome: string;
  passphraseFile: string | undefined;
  throwaway: boolean;
  /** Kills the gpg-agent and, for a throw-away key, deletes the key. */
  dispose(): Promise<void>;
}

async function listSecret(gnupgHome: string, id?: string): Promise<string[]> {
  const { stdout } = await run(["gpg", "--homedir", gnupgHome, "--batch", "--with-colons", "--list-secret-keys", ...(id === undefined ? [] : [id])], {
    what: "looking up the signing key",
  });
  return fingerprintsOf(stdout);
}

async function stopAgent(gnupgHome: string): Promise<void> {
  try {
    await run(["gpgconf", "--homedir", gnupgHome, "--kill", "all"], { what: "stopping gpg-agent" });
  } catch {
    // no agent was started, or gpgconf is missing: nothing is left running either way
  }
}

export async function throwawayKey(): Promise<SigningKey> {
  // Short path: gpg-agent's socket lives in the home and sun_path holds 108 bytes.
  const gnupgHome = mkdtempSync(join(tmpdir(), "nvwa-gpg-"));
  await run(gpgKeygenArgv(gnupgHome), { what: "generating the throw-away signing key" });
  const [fingerprint] = await listSecret(gnupgHome);
  if (fingerprint === undefined) throw new NvwaError("package.gpg-key", "gpg made no key", { hint: "run `gpg --quick-gen-key` by hand to see why" });
  return {
    fingerprint,
    gnupgHome,
    passphraseFile: undefined,
    throwaway: true,
    async dispose() {
      await stopAgent(gnupgHome);
      rmSync(gnupgHome, { recursive: true, force: true });
    },
  };
}

export async function keyFromEnvironment(env: Record<string, string | undefined> = process.env): Promise<SigningKey | undefined> {
  const id = env.NVWA_GPG_KEY_ID;
  if (id === undefined || id === "") return undefined;
  const gnupgHome = env.GNUPGHOME ?? join(homedir(), ".gnupg");
  const passphraseFile = env.NVWA_GPG_PASSPHRASE_FILE || undefined;
  if (passphraseFile !== undefined && !existsSync(passphraseFile)) {
    throw new NvwaError("package.gpg-key", `NVWA_GPG_PASSPHRASE_FILE names ${passphraseFile}, which does not exist`, {
      exitCode: ExitCode.usage,
      hint: "point it at a file holding the key's passphrase, or unset it for a key without one",
    });
  }
  let found: string[];
  try {
    found = await listSecret(gnupgHome, id);
  } catch (e) {
    throw new NvwaError("package.gpg-key", `NVWA_GPG_KEY_ID=${id}: no such secret key in ${gnupgHome}`, {
      exitCode: ExitCode.usage,
      hint: "import the signing key (gpg --import) into that GNUPGHOME, or set GNUPGHOME to where it is",
      cause: e,
    });
  }
  if (found.length !== 1) {
    throw new NvwaError("package.gpg-key", `NVWA_GPG_KEY_ID=${id} matches ${found.length} secret keys in ${gnupgHome}`, {
      exitCode: ExitCode.usage,
      hint: "give the full fingerprint of the signing key",
    });
  }
  const fingerprint = found[0] ?? id;
  return {
    fingerprint,
    gnupgHome,
    passphraseFile,
    throwaway: false,
    async dispose() {
      // the distributor's agent and keyring are theirs to keep
    },
  };
}

export async function exportPublicKey(key: SigningKey): Promise<string> {
  const { stdout } = await run(["gpg", "--homedir", key.gnupgHome, "--batch", "--armor", "--export", key.fingerprint], {
    what: "exporting the public key",
  });
  if (!stdout.includes("BEGIN PGP PUBLIC KEY BLOCK")) {
    throw new NvwaError("package.gpg-key", `gpg exported nothing for key ${key.fingerprint}`, { hint: "check the key with `gpg --list-keys`" });
  }
  return stdout;
}

/** Detached ASCII signature, as yum/dnf expect for repomd.xml (repo_gpgcheck=1). */
export async function detachSign(key: SigningKey, file: string): Promise<void> {
  await run(
    [
      "gpg", "--homedir", key.gnupgHome, "--batch", "--yes",
      ...(key.passphraseFile === undefined ? [] : ["--pinentry-mode", "loopback", "--passphrase-file", key.passphraseFile]),
      "--local-user", key.fingerprint, "--armor", "--detach-sign", "--output", `${file}.asc`, file,
    ],
    { what: `signing ${file}` },
  );
}

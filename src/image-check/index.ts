/** `nvwa check --root DIR`: an OS image tree checked offline, without booting it. */
import type { Check } from "../update/preflight-types.ts";
import { judgeImage } from "./judge.ts";
import { scanImage } from "./scan.ts";

export { judgeImage } from "./judge.ts";
export { imageRoot, scanImage } from "./scan.ts";
export { parseKernelConfig } from "./kernel-config.ts";
export { judgeKernelConfig } from "./requirements.ts";

/** Every row for the tree at `root` (absolute, an existing directory). Reads only under it. */
export function checkImage(root: string): Check[] {
  return judgeImage(scanImage(root));
}

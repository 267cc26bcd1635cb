/** Guest comparisons (issue 9): filled in once the guest path is proven; see BENCHMARKS.md. */
export async function guestBench(): Promise<string[]> {
  return ["## Guest", "", "Not measured in this build: the guest comparison (nvwa vs by-hand vs cold reboot) is not written yet.", ""];
}

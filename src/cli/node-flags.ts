// The Node.js flags the sidecar runs with, in one place. Every launcher we ship (`make run`, the
// Dockerfile, the systemd unit, `npm start`, the benchmark) passes them; a test checks each one, and
// the start-up log warns when they are missing. Not the `meshaudit` bin's shebang: `env -S`, needed
// to pass a flag there, is missing from BusyBox (Alpine) and older coreutils, where the command
// would not start at all; without the flag it starts, warns, and uses more memory.
//
// Why a small young generation: V8's default lets it grow to 16 MiB semi-spaces. The hot path makes
// little JS garbage but many short-lived Buffers, whose memory is only returned when a scavenge
// collects their wrappers: the bigger the young generation, the more dead Buffers wait for it. In
// `make bench` (A/B runs, docs/performance.md), 4 MiB semi-spaces took scenario 1's peak RSS from
// ~118 MB to ~98 MB, its ack p99 from ~16 ms to ~7 ms and
// its events/s up by about a third (the young generation stays in the CPU caches). 2 MiB saved 15 MB
// more but cost scenario 4 (10,000 AccessAudits, a bigger old generation) ~20% more CPU per event.
// The price is paid by Record calls: grpc-js's per-call objects live across a commit, more of them
// survive a small young generation, and scenario 3 did 10-15% fewer calls/s than with 8 MiB. V8
// reads the flag when the heap is made, so it cannot be set from inside the process
// (v8.setFlagsFromString is too late).

/** The flags, as passed to `node` before the script. */
export const SIDECAR_NODE_FLAGS: readonly string[] = Object.freeze(['--max-semi-space-size=4']);

/**
 * The flags of SIDECAR_NODE_FLAGS this process was not started with (on the command line or in
 * NODE_OPTIONS), compared by name: `--max-semi-space-size=4` counts as given (an operator's choice).
 */
export function missingNodeFlags(execArgv: readonly string[], nodeOptions = ''): string[] {
  // NODE_OPTIONS may quote an option ("--max-semi-space-size=4"); node unquotes it.
  const options = nodeOptions.split(/\s+/).map((o) => o.replace(/^["']|["']$/g, ''));
  const given = new Set([...execArgv, ...options].map(flagName));
  return SIDECAR_NODE_FLAGS.filter((f) => !given.has(flagName(f)));
}

function flagName(arg: string): string {
  // Node accepts both spellings: --max-semi-space-size and --max_semi_space_size.
  return arg.split('=')[0].replace(/_/g, '-');
}

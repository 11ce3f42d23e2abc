// The file backend's public surface: the sink, its events, and the naming and retention rules it applies.
export { FileSink } from './file-sink';
export type { FileSinkEvent, FileSinkOptions } from './file-sink';
export { rotatedName, timeFromName } from './rotation-names';
export { applyRetention, listRotatedFiles, RetentionError } from './retention';
export type { Doomed, RetentionHold, RotatedFile } from './retention';
export { COMPRESSED_SUFFIX, rotatedFromName } from './rotation-names';
export { FinalAfterCommit, gunzippedBytes } from './compression';

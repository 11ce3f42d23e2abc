// What NATS takes as a subject token and as a JetStream stream name. The forwarders' config
// (config/load.ts) and `meshaudit query --nats` (cli/query-command.ts) check names by these alone, so
// that the command refuses exactly what the config refuses. They live here, not beside the message
// contract (forward/nats-record.ts): config sits below forward in the layering. Pure: no I/O.

/** A NATS subject token: no separator, wildcard or whitespace (the zone and the instance in each subject). */
export const SUBJECT_TOKEN = /^[^\s.*>]{1,253}$/;
/** SUBJECT_TOKEN in words, for the errors that refuse a name. */
export const SUBJECT_TOKEN_RULE = "1 to 253 characters, no '.', '*', '>' or whitespace";

/** A JetStream stream name: what a subject, a file name and the JetStream API all take. */
export const STREAM_NAME = /^[A-Za-z0-9_-]{1,255}$/;
/** STREAM_NAME in words, for the errors that refuse a name. */
export const STREAM_NAME_RULE = "1 to 255 letters, digits, '-' or '_'";

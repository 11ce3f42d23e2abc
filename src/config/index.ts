// The config module's public surface: load a frozen Config, or parse YAML with field lines.
export type { Config, FileBackendConfig, RotationConfig } from './types';
export {
  ConfigError,
  defaultConfig,
  loadConfig,
  type LoadConfigOptions,
  type LoadedConfig,
} from './load';
export {
  DEFAULT_MAX_ALIASES,
  DEFAULT_MAX_ALIAS_NODES,
  DEFAULT_MAX_BYTES,
  DEFAULT_MAX_DEPTH,
  YamlError,
  parseYamlDocuments,
  type YamlDocuments,
  type YamlOptions,
} from './yaml';
export * from './defaults';

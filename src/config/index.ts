// The config module's public surface: load a frozen Config (with the warnings to log), or the defaults.
export type { Config, FileBackendConfig, RotationConfig } from './types';
export { ConfigError, defaultConfig, loadConfig, type LoadedConfig } from './load';

// The config module's public surface: load a frozen Config (with the warnings to log), or the defaults.
export type {
  AuthConfig,
  Config,
  FileBackendConfig,
  FileModes,
  RotationConfig,
  TlsConfig,
  UnixSocketConfig,
} from './types';
export { ConfigError, defaultConfig, loadConfig, type LoadedConfig } from './load';

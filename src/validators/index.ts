// The violations toolkit's surface: what every validator of meshaudit uses.
export { nearest } from './suggest';
export * from './violations';

// Root hooks for the whole run (mocha's --require, see .mocharc.json): what every test file shares.
import { removeTempDirs } from './helpers';

export const mochaHooks = {
  /** The temp directories the tests made: `make test` fails when anything is left in its temp directory. */
  afterAll(): void {
    removeTempDirs();
  },
};

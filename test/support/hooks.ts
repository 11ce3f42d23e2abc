// Root hooks for the whole run (mocha's --require, see .mocharc.json): what every test file shares.
import { removeTempDirs } from './helpers';
import { destroyAllClusters, dropAllSchemas } from './postgres';

export const mochaHooks = {
  /**
   * What the tests made: throwaway PostgreSQL clusters a test forgot (stopped before their directories
   * go), schemas left on the shared server, and the temp directories (`make test` fails when anything is
   * left in its temp directory).
   */
  async afterAll(): Promise<void> {
    try {
      await destroyAllClusters();
      await dropAllSchemas();
    } finally {
      removeTempDirs();
    }
  },
};

// Root hooks for the whole run (mocha's --require, see .mocharc.json): what every test file shares.
import { removeTempDirs } from './helpers';
import { stopAllNatsNodes } from './nats';
import { destroyAllClusters, dropAllSchemas } from './postgres';

export const mochaHooks = {
  /**
   * What the tests made: throwaway nats-server nodes and PostgreSQL clusters a test forgot (stopped before their directories
   * go), schemas left on the shared server, and the temp directories (`make test` fails when anything is
   * left in its temp directory).
   */
  async afterAll(): Promise<void> {
    try {
      await stopAllNatsNodes();
      await destroyAllClusters();
      await dropAllSchemas();
    } finally {
      removeTempDirs();
    }
  },
};

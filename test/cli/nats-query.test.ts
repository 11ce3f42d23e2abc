import { expect } from 'chai';
import { kindToken } from '../../src/cli/nats-query';

describe('kindToken (the subjects an --action list narrows meshaudit query --nats to)', () => {
  it("names the actions' kind when they share one, and every kind otherwise", () => {
    const table: Array<[string[], string]> = [
      [[], '*'],
      [['CREATE'], 'resource'],
      [['CREATE', 'UPDATE', 'DELETE'], 'resource'],
      [['GENERATE_DATAPLANE_TOKEN', 'GENERATE_ZONE_TOKEN'], 'token'],
      [['VIEW_CONFIG_DUMP', 'VIEW_STATS', 'VIEW_CLUSTERS'], 'view'],
      [['DELETE', 'GENERATE_USER_TOKEN'], '*'],
      [['VIEW_STATS', 'UPDATE'], '*'],
    ];
    for (const [actions, kind] of table) expect(kindToken(actions), actions.join(',')).to.equal(kind);
  });
});

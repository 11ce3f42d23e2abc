import { expect } from 'chai';
import { ACTIONS } from '../../src/rules/actions';
import { typeRegistry } from '../../src/rules/resource-types';
import { nearest } from '../../src/validators';

describe('nearest (did you mean)', () => {
  const table: Array<[string, string, readonly string[], string | undefined]> = [
    ['suggests the action a letter is missing from', 'CREAT', ACTIONS, 'CREATE'],
    ['ignores case', 'create', ACTIONS, 'CREATE'],
    ['suggests the type a letter is missing from', 'TrafficPermision', [...typeRegistry().keys()], 'TrafficPermission'],
    ['suggests the nearest, not the first close one', 'VIEW_STAT', ACTIONS, 'VIEW_STATS'],
    ['fixes a transposition', 'UDPATE', ACTIONS, 'UPDATE'],
    ['suggests a rule field', 'acess', ['types', 'mesh', 'access', 'accessAll'], 'access'],
    ['prefers an exact match to a near one', 'access', ['accessAll', 'access'], 'access'],
    ['keeps the first of candidates at the same distance', 'ab', ['ac', 'ad'], 'ac'],
    ['accepts two edits in a short word', 'abc', ['axx'], 'axx'],
    ['refuses three edits in a short word', 'abc', ['xyz'], undefined],
    ['accepts a third of a long word edited', 'abcdefghijkl', ['abcdefghwxyz'], 'abcdefghwxyz'],
    ['refuses more than a third of a long word edited', 'abcdefghijkl', ['abcdefgvwxyz'], undefined],
    ['suggests nothing when nothing is near', 'DROP_TABLE', ACTIONS, undefined],
    ['suggests nothing for an empty value', '', ['a', 'b'], undefined],
    ['suggests nothing without candidates', 'CREATE', [], undefined],
  ];
  for (const [name, value, candidates, expected] of table) {
    it(name, () => {
      expect(nearest(value, candidates)).to.equal(expected);
    });
  }
});

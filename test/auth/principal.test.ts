import { expect } from 'chai';
import {
  ADMIN_GROUP,
  CONTROL_PLANE_GROUP,
  covers,
  DEFAULT_PERMISSIONS,
  holds,
  isLoopback,
  type Principal,
} from '../../src/auth/principal';

const admin: Principal = { name: 'alice', groups: [ADMIN_GROUP], via: 'token' };
const cp: Principal = { name: 'zone-1-cp', groups: [CONTROL_PLANE_GROUP], zones: ['zone-1'], via: 'certificate' };
const shipper: Principal = { name: 'shipper', groups: ['logs'], via: 'token' };

describe('principals and permissions', () => {
  it('lets control planes stream, and the administrator do everything, by default', () => {
    expect(holds(cp, 'stream', DEFAULT_PERMISSIONS)).to.equal(true);
    for (const p of ['manageRules', 'read', 'admin'] as const)
      expect(holds(cp, p, DEFAULT_PERMISSIONS)).to.equal(false);
    for (const p of ['stream', 'manageRules', 'read', 'admin'] as const)
      expect(holds(admin, p, DEFAULT_PERMISSIONS), p).to.equal(true);
    expect(holds(shipper, 'read', DEFAULT_PERMISSIONS)).to.equal(false);
  });

  it('grants a permission to any group listed for it', () => {
    expect(holds(shipper, 'read', { ...DEFAULT_PERMISSIONS, read: [ADMIN_GROUP, 'logs'] })).to.equal(true);
    expect(holds(admin, 'manageRules', { ...DEFAULT_PERMISSIONS, manageRules: [] })).to.equal(false);
  });

  it('covers the zones and instances it names, and every one where it names none', () => {
    expect(covers(cp, 'zone-1', 'cp-0')).to.equal(true);
    expect(covers(cp, 'zone-2', 'cp-0')).to.equal(false);
    expect(covers(admin, 'zone-2', 'cp-7')).to.equal(true);
    const one = { ...cp, instances: ['cp-0'] };
    expect(covers(one, 'zone-1', 'cp-0')).to.equal(true);
    expect(covers(one, 'zone-1', 'cp-1')).to.equal(false);
  });

  it('knows loopback addresses, IPv4, IPv6, mapped and by name, from the rest', () => {
    for (const at of [
      '127.0.0.1:5000',
      '127.1.2.3:1',
      '::1:5000',
      '[::1]:5000',
      '::ffff:127.0.0.1:40000',
      'localhost:5690',
    ])
      expect(isLoopback(at), at).to.equal(true);
    for (const at of [
      '10.0.0.1:5000',
      '::ffff:10.0.0.1:5000',
      'fe80::1:5000',
      'unknown',
      '1127.0.0.1:5',
      '0.0.0.0:5690',
    ])
      expect(isLoopback(at), at).to.equal(false);
  });
});

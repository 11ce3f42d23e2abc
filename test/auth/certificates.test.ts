import { expect } from 'chai';
import { certificateNames, certificatePrincipal, type CertificateIdentity } from '../../src/auth/certificates';

const RULES: CertificateIdentity[] = [
  { match: { uri: 'spiffe://zone-1/cp' }, user: 'zone-1-cp', groups: ['mesh-system:control-plane'], zones: ['zone-1'] },
  { match: { commonName: 'alice', dns: 'ops.example' }, user: 'alice', groups: ['mesh-system:admin'] },
  { match: { uri: 'spiffe://zone-2/*' }, user: 'zone-2', groups: ['mesh-system:control-plane'], zones: ['zone-2'] },
];

describe('certificate identities', () => {
  it("reads the URI and DNS names of Node's subjectaltname, quoted ones too", () => {
    expect(
      certificateNames('cp', 'DNS:a.example, URI:spiffe://zone-1/cp, IP Address:10.0.0.1, URI:"spiffe://x/a,b"'),
    ).to.deep.equal({ commonName: 'cp', uris: ['spiffe://zone-1/cp', 'spiffe://x/a,b'], dnsNames: ['a.example'] });
    expect(certificateNames('', undefined)).to.deep.equal({ commonName: undefined, uris: [], dnsNames: [] });
  });

  it('maps a SPIFFE ID to its user, groups and zones: the first rule whose names are all there wins', () => {
    expect(certificatePrincipal(certificateNames('x', 'URI:spiffe://zone-1/cp'), RULES)).to.deep.equal({
      name: 'zone-1-cp',
      groups: ['mesh-system:control-plane'],
      zones: ['zone-1'],
      via: 'certificate',
    });
    expect(certificatePrincipal(certificateNames('x', 'URI:spiffe://zone-2/cp-7'), RULES)?.name).to.equal('zone-2');
  });

  it('needs every name a rule gives, exactly unless it ends with *', () => {
    expect(certificatePrincipal(certificateNames('alice', 'DNS:ops.example'), RULES)?.name).to.equal('alice');
    expect(certificatePrincipal(certificateNames('alice', 'DNS:other.example'), RULES)).to.equal(undefined);
    expect(certificatePrincipal(certificateNames('x', 'URI:spiffe://zone-1/cp/extra'), RULES)).to.equal(undefined);
    expect(certificatePrincipal(certificateNames('spiffe://zone-1/cp', ''), RULES)).to.equal(undefined);
  });
});

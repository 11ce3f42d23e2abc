import { expect } from 'chai';
import { indexTokens, isTokenHash, newToken, TOKEN_PREFIX, tokenHash, tokenPrincipal } from '../../src/auth/tokens';

describe('tokens', () => {
  it('makes random tokens with a recognisable prefix, 256 bits each', () => {
    const a = newToken();
    expect(a.startsWith(TOKEN_PREFIX)).to.equal(true);
    expect(Buffer.from(a.slice(TOKEN_PREFIX.length), 'base64url')).to.have.length(32);
    expect(newToken()).to.not.equal(a);
  });

  it('finds the entry whose hash the presented token has, and none for another token', () => {
    const token = newToken();
    const entries = [
      { name: 'ci', groups: ['deployers'], sha256: tokenHash(newToken()) },
      { name: 'zone-1-cp', groups: ['mesh-system:control-plane'], zones: ['zone-1'], sha256: tokenHash(token) },
    ];
    expect(isTokenHash(entries[1].sha256)).to.equal(true);
    expect(tokenPrincipal(indexTokens(entries), token)).to.deep.equal({
      name: 'zone-1-cp',
      groups: ['mesh-system:control-plane'],
      zones: ['zone-1'],
      via: 'token',
    });
    expect(tokenPrincipal(indexTokens(entries), newToken())).to.equal(undefined);
    expect(tokenPrincipal(indexTokens(entries), '')).to.equal(undefined);
  });
});

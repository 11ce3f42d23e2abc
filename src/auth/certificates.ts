// From a client certificate to a principal: the names a certificate carries (subject CN, URI and DNS
// subject alternative names) matched against meshaudit.auth.certificateIdentities, first match wins.
import type { Principal } from './principal';

/** The names of a verified client certificate that rules match on. */
export interface CertificateNames {
  readonly commonName?: string;
  readonly uris: readonly string[];
  readonly dnsNames: readonly string[];
}

/**
 * One rule of meshaudit.auth.certificateIdentities: every name given in `match` must be on the
 * certificate. A value ending in `*` matches every name that starts with what comes before it
 * (`spiffe://zone-1/*`); any other value matches itself only.
 */
export interface CertificateIdentity {
  readonly match: { readonly commonName?: string; readonly uri?: string; readonly dns?: string };
  readonly user: string;
  readonly groups: readonly string[];
  readonly zones?: readonly string[];
  readonly instances?: readonly string[];
}

/**
 * The names in Node's `subjectaltname` (`DNS:a.example, URI:spiffe://zone-1/cp, IP Address:10.0.0.1`).
 * Node quotes a name holding a comma or a quote as a JSON string (`URI:"spiffe://a,b"`).
 */
export function certificateNames(commonName: string | undefined, subjectAltName: string | undefined): CertificateNames {
  const uris: string[] = [];
  const dnsNames: string[] = [];
  for (const entry of splitAltNames(subjectAltName ?? '')) {
    const colon = entry.indexOf(':');
    if (colon < 0) continue;
    const kind = entry.slice(0, colon);
    const value = unquote(entry.slice(colon + 1));
    if (kind === 'URI') uris.push(value);
    else if (kind === 'DNS') dnsNames.push(value);
  }
  return { commonName: commonName || undefined, uris, dnsNames };
}

function splitAltNames(text: string): string[] {
  const out: string[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"' && text[i - 1] !== '\\') quoted = !quoted;
    else if (c === ',' && !quoted) {
      out.push(text.slice(start, i).trim());
      start = i + 1;
    }
  }
  if (start < text.length) out.push(text.slice(start).trim());
  return out.filter((e) => e !== '');
}

function unquote(value: string): string {
  if (!value.startsWith('"')) return value;
  try {
    return JSON.parse(value) as string;
  } catch {
    return value;
  }
}

function matches(pattern: string | undefined, names: readonly string[]): boolean {
  if (pattern === undefined) return true;
  if (pattern.endsWith('*')) {
    const prefix = pattern.slice(0, -1);
    return names.some((n) => n.startsWith(prefix));
  }
  return names.includes(pattern);
}

/** The principal of the first rule whose names are all on the certificate; undefined when none is. */
export function certificatePrincipal(
  names: CertificateNames,
  rules: readonly CertificateIdentity[],
): Principal | undefined {
  const cn = names.commonName === undefined ? [] : [names.commonName];
  for (const rule of rules) {
    const { commonName, uri, dns } = rule.match;
    if (matches(commonName, cn) && matches(uri, names.uris) && matches(dns, names.dnsNames)) {
      return {
        name: rule.user,
        groups: rule.groups,
        ...(rule.zones === undefined ? {} : { zones: rule.zones }),
        ...(rule.instances === undefined ? {} : { instances: rule.instances }),
        via: 'certificate',
      };
    }
  }
  return undefined;
}

import { expect } from 'chai';
import { parseArgs } from '../../src/cli/args';
import {
  CLIENT_OPTIONS,
  clientFlagsOf,
  COMMON_OPTIONS,
  parseCommandLine,
  UsageError,
} from '../../src/cli/command-line';

const CLIENT = { ...CLIENT_OPTIONS, file: { type: 'string', short: 'f' }, ...COMMON_OPTIONS } as const;

describe('the command line', () => {
  it('reads the sidecar flags, --rules taking every following argument that is not a flag', () => {
    expect(parseArgs(['--rules', 'a.yaml', 'b.yaml', '--config', 'c.yaml', '--rules=d.yaml', 'e.yaml'])).to.deep.equal({
      rules: ['a.yaml', 'b.yaml', 'd.yaml', 'e.yaml'],
      config: 'c.yaml',
      checkConfig: false,
      help: false,
      version: false,
    });
    expect(parseArgs(['--check-config', '-h', '--version'])).to.include({
      checkConfig: true,
      help: true,
      version: true,
    });
  });

  it('refuses each mistake of the sidecar flags in one line naming the flag', () => {
    for (const [argv, message] of [
      [['--rulez', 'a'], 'unknown flag "--rulez", did you mean "--rules"?'],
      [['--config'], '--config needs a file name'],
      [['--config', '--rules', 'a'], '--config needs a file name'],
      [['--config=a', '--config=b'], '--config: given twice'],
      [['--rules'], '--rules needs at least one file name'],
      [['--rules', '--check-config'], '--rules needs at least one file name'],
      [['a.yaml'], 'unknown argument "a.yaml"'],
      [['--check-config', 'a.yaml'], 'unknown argument "a.yaml"'],
      [['--help=yes'], '--help takes no value'],
    ] as const) {
      expect(() => parseArgs(argv), argv.join(' ')).to.throw(UsageError, message);
    }
  });

  it('reads the client options once for every command, with the default address and "-" as a positional', () => {
    const { values, positionals } = parseCommandLine(['-f', 'x.yaml', '--token-file=t', '-', 'list'], CLIENT);
    expect(positionals).to.deep.equal(['-', 'list']);
    expect(values).to.deep.equal({ file: 'x.yaml', 'token-file': 't' });
    expect(clientFlagsOf(values)).to.deep.equal({
      address: '127.0.0.1:5690',
      tokenFile: 't',
      cacert: undefined,
      cert: undefined,
      key: undefined,
    });
    expect(() => clientFlagsOf({ cert: 'c', key: 'k' })).to.throw(UsageError, '--cert needs --cacert (TLS)');
    expect(() => clientFlagsOf({ key: 'k', cacert: 'ca' })).to.throw(UsageError, '--cert and --key go together');
    expect(() => parseCommandLine(['--address', '-f', 'x'], CLIENT)).to.throw(
      UsageError,
      '--address needs a value, HOST:PORT',
    );
    expect(() => parseCommandLine(['-x'], CLIENT)).to.throw(UsageError, 'unknown flag "-x"');
  });
});

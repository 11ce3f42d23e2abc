// deploy/kubernetes/ as a cluster would receive it. Neither kustomize nor a cluster is available here: the
// overlays are rendered the way kustomize renders kustomizations of this shape (resources, a component,
// strategic-merge patches, a ConfigMap from files), the chart's Deployment by a stand-in
// (test/fixtures/kong-mesh-control-plane.yaml), and every object is checked against the Kubernetes schemas of
// kubernetes-models, unknown fields included (kubectl's field validation is strict by default). Then what the
// manifests say is checked against the code: the config loads as the sidecar loads it, and ports, paths, users
// and node flags agree with the config, the Dockerfile and src/cli/node-flags.ts.
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as yaml from 'js-yaml';
import { Deployment } from 'kubernetes-models/apps/v1';
import { ConfigMap } from 'kubernetes-models/v1';
import { loadConfig } from '../../src/config';
import { loadAccessAuditFiles } from '../../src/config/rules-files';
import { SIDECAR_NODE_FLAGS } from '../../src/cli/node-flags';
import { knownTypesOf } from '../../src/cli/sidecar';
import { tempDir } from '../support/helpers';

const ROOT = path.resolve(__dirname, '../../..');
const KUBERNETES = path.join(ROOT, 'deploy/kubernetes');
const STAND_IN = path.join(ROOT, 'test/fixtures/kong-mesh-control-plane.yaml');
const ZONES = ['zone-1', 'zone-2'];

type Obj = Record<string, any>;

/** The schema of each kind the overlays may produce: a kind without one fails the test, not passes it. */
const MODELS: Record<string, new (data: any) => { validate(): void }> = {
  'apps/v1/Deployment': Deployment,
  'v1/ConfigMap': ConfigMap,
};

/** The keys of a kustomization the renderer below implements: any other would be silently ignored by it. */
const RENDERED_KEYS = ['apiVersion', 'kind', 'resources', 'components', 'patches', 'configMapGenerator', 'helmCharts'];

/**
 * Strategic merge patch keys of the lists our patches touch (Kubernetes' patchMergeKey); any other list is
 * replaced, as the API's own types say.
 */
const MERGE_KEYS: Record<string, string> = {
  containers: 'name',
  initContainers: 'name',
  volumes: 'name',
  env: 'name',
  ports: 'containerPort',
  volumeMounts: 'mountPath',
};

const readYaml = (file: string): Obj[] => yaml.loadAll(fs.readFileSync(file, 'utf8')) as Obj[];
const kustomizationOf = (dir: string): Obj => readYaml(path.join(dir, 'kustomization.yaml'))[0];
const idOf = (o: Obj): string => `${o.apiVersion}/${o.kind}/${o.metadata?.namespace ?? ''}/${o.metadata?.name}`;

/** Applies a strategic-merge patch to `base` (a copy is returned): maps merge, keyed lists merge by key, null deletes. */
function strategicMerge(base: unknown, patch: unknown, field = ''): unknown {
  if (Array.isArray(patch)) {
    const key = MERGE_KEYS[field];
    if (key === undefined || !Array.isArray(base)) return structuredClone(patch);
    const merged = structuredClone(base) as Obj[];
    for (const item of patch as Obj[]) {
      const at = merged.findIndex((b) => b[key] === item[key]);
      if (at < 0) merged.push(structuredClone(item));
      else merged[at] = strategicMerge(merged[at], item) as Obj;
    }
    return merged;
  }
  if (patch !== null && typeof patch === 'object') {
    const merged: Obj = base !== null && typeof base === 'object' ? structuredClone(base as Obj) : {};
    for (const [k, v] of Object.entries(patch)) {
      expect(k, 'a patch directive the renderer does not implement').to.not.match(/^\$/);
      if (v === null) delete merged[k];
      else merged[k] = strategicMerge(merged[k], v, k);
    }
    return merged;
  }
  return patch;
}

/** What `kustomize build --enable-helm dir` gives, the chart rendered by the stand-in; `into` for a component. */
function render(dir: string, into: Obj[] = []): Obj[] {
  const k = kustomizationOf(dir);
  expect(
    Object.keys(k).filter((key) => !RENDERED_KEYS.includes(key)),
    dir,
  ).to.deep.equal([]);
  const objects = into;
  for (const chart of k.helmCharts ?? []) {
    // The chart's Deployment is named <releaseName>-control-plane in the release's namespace.
    expect(chart, dir).to.include({ name: 'kong-mesh', releaseName: 'kong-mesh', namespace: 'kong-mesh-system' });
    const [deployment] = readYaml(STAND_IN);
    const env = deployment.spec.template.spec.containers[0].env.find((e: Obj) => e.name === 'KUMA_MULTIZONE_ZONE_NAME');
    env.value = chart.valuesInline.kuma.controlPlane.zone;
    objects.push(deployment);
  }
  for (const r of k.resources ?? []) {
    const file = path.join(dir, r);
    objects.push(...(fs.statSync(file).isDirectory() ? render(file) : readYaml(file)));
  }
  for (const c of k.components ?? []) {
    expect(kustomizationOf(path.join(dir, c)).kind).to.equal('Component');
    render(path.join(dir, c), objects);
  }
  for (const g of k.configMapGenerator ?? []) {
    // Without the hash the name is the generator's: the Deployment's reference needs no rewriting.
    expect(g.options?.disableNameSuffixHash, `${dir}: configMapGenerator ${g.name}`).to.equal(true);
    const data = Object.fromEntries(
      g.files.map((f: string) => [path.basename(f), fs.readFileSync(path.join(dir, f), 'utf8')]),
    );
    objects.push({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: g.name, namespace: g.namespace }, data });
  }
  for (const p of k.patches ?? []) {
    expect(Object.keys(p), `${dir}: patches take a path alone here`).to.deep.equal(['path']);
    for (const patch of readYaml(path.join(dir, p.path))) {
      const matches = objects.filter((o) => idOf(o) === idOf(patch));
      expect(matches, `${dir}/${p.path} patches exactly one object: ${idOf(patch)}`).to.have.length(1);
      objects[objects.indexOf(matches[0])] = strategicMerge(matches[0], patch) as Obj;
    }
  }
  return objects;
}

/** The schema of `doc`'s kind. */
function modelOf(doc: Obj): (typeof MODELS)[string] {
  const Model = MODELS[`${doc.apiVersion}/${doc.kind}`];
  expect(Model, `a schema for ${doc.apiVersion} ${doc.kind}`).to.not.equal(undefined);
  return Model;
}

/** The schema's complaints about `doc` (none: valid). */
function schemaErrors(doc: Obj, Model = modelOf(doc)): Array<{ instancePath: string; message?: string }> {
  try {
    new Model(doc).validate();
    return [];
  } catch (err: any) {
    if (!Array.isArray(err.errors)) throw err;
    return err.errors;
  }
}

/**
 * The fields of `doc` the schema does not know (kubernetes-models allows unknown properties, the API server
 * does not): each field is replaced in turn by a value no Kubernetes type accepts, `[[]]`, and a field the
 * schema knows makes the validation fail at or under its path.
 */
function unknownFields(doc: Obj): string[] {
  const Model = modelOf(doc);
  const unknown: string[] = [];
  const visit = (value: unknown, at: string[]): void => {
    if (value === null || typeof value !== 'object') return;
    for (const key of Object.keys(value)) {
      const field = [...at, key];
      const probe = structuredClone(doc);
      let parent: any = probe;
      for (const step of at) parent = parent[step];
      parent[key] = [[]];
      const pointer = `/${field.map((s) => s.replace(/~/g, '~0').replace(/\//g, '~1')).join('/')}`;
      const errors = schemaErrors(probe, Model);
      if (!errors.some((e) => e.instancePath === pointer || e.instancePath.startsWith(`${pointer}/`))) {
        unknown.push(pointer);
      }
      visit((value as Obj)[key], field);
    }
  };
  visit(doc, []);
  return unknown;
}

/** Every file under `dir`, relative to it. */
function filesUnder(dir: string): string[] {
  return fs
    .readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((d) => d.isFile())
    .map((d) => path.relative(dir, path.join(d.parentPath, d.name)))
    .sort();
}

/** The port of a `host:port` address. */
const portOf = (address: string): number => Number(/:(\d+)$/.exec(address)![1]);

describe('deploy/kubernetes', () => {
  it('lists in its kustomizations files that exist, and every file it has but its README is listed by one', () => {
    const listed = new Set<string>();
    const missing: string[] = [];
    for (const file of filesUnder(KUBERNETES).filter((f) => path.basename(f) === 'kustomization.yaml')) {
      const dir = path.dirname(path.join(KUBERNETES, file));
      listed.add(path.join(KUBERNETES, file));
      const k = kustomizationOf(dir);
      expect(k.apiVersion, file).to.match(/^kustomize\.config\.k8s\.io\/v1(beta|alpha)1$/);
      expect(k.kind, file).to.be.oneOf(['Kustomization', 'Component']);
      const refs: string[] = [
        ...(k.resources ?? []),
        ...(k.components ?? []),
        ...(k.patches ?? []).map((p: Obj) => p.path),
        ...(k.configMapGenerator ?? []).flatMap((g: Obj) => g.files),
      ];
      for (const ref of refs) {
        const target = path.join(dir, ref);
        if (!fs.existsSync(target)) missing.push(`${file}: ${ref}`);
        else if (fs.statSync(target).isDirectory()) {
          if (!fs.existsSync(path.join(target, 'kustomization.yaml')))
            missing.push(`${file}: ${ref}/kustomization.yaml`);
        } else listed.add(target);
      }
    }
    expect(missing).to.deep.equal([]);
    const unlisted = filesUnder(KUBERNETES).filter((f) => f !== 'README.md' && !listed.has(path.join(KUBERNETES, f)));
    expect(unlisted).to.deep.equal([]);
  });

  it('finds unknown fields and wrong types, as the API server would (the check itself)', () => {
    const [deployment] = render(path.join(KUBERNETES, 'zone-1'));
    const typo = structuredClone(deployment);
    typo.spec.template.spec.initContainers[0].securityContext.readOnlyRootFilesytem = true;
    expect(unknownFields(typo)).to.deep.equal([
      '/spec/template/spec/initContainers/0/securityContext/readOnlyRootFilesytem',
    ]);
    const wrong = structuredClone(deployment);
    wrong.spec.template.spec.initContainers[0].ports[0].containerPort = '5692';
    expect(schemaErrors(wrong).map((e) => e.instancePath)).to.deep.equal([
      '/spec/template/spec/initContainers/0/ports/0/containerPort',
    ]);
  });

  const dockerfile = fs.readFileSync(path.join(ROOT, 'deploy/container/Dockerfile'), 'utf8');

  for (const zone of ZONES) {
    describe(`the ${zone} overlay, rendered`, () => {
      let objects: Obj[];
      let deployment: Obj;
      let configMap: Obj;
      let pod: Obj;
      let sidecar: Obj;
      before(() => {
        objects = render(path.join(KUBERNETES, zone));
        deployment = objects.find((o) => o.kind === 'Deployment')!;
        configMap = objects.find((o) => o.kind === 'ConfigMap')!;
        pod = deployment.spec.template.spec;
        sidecar = pod.initContainers.find((c: Obj) => c.name === 'meshaudit');
      });
      const volumeOf = (mountPath: string): Obj => {
        const mount = sidecar.volumeMounts.find((m: Obj) => m.mountPath === mountPath);
        expect(mount, `a volume mounted at ${mountPath}`).to.not.equal(undefined);
        return { mount, volume: pod.volumes.find((v: Obj) => v.name === mount.name) };
      };
      /** The config and rules of the ConfigMap, loaded by the sidecar's own code. */
      const load = () => {
        const dir = tempDir();
        for (const [key, text] of Object.entries(configMap.data)) fs.writeFileSync(path.join(dir, key), text as string);
        const loaded = loadConfig({ file: path.join(dir, 'meshaudit.yaml'), cwd: dir });
        const audits = loadAccessAuditFiles(
          [path.join(dir, 'access-audits.yaml')],
          knownTypesOf(loaded.config),
          loaded.config.limits,
        );
        return { loaded, audits, raw: yaml.load(configMap.data['meshaudit.yaml']) as Obj };
      };

      it('is the chart Deployment and the ConfigMap, each valid against the Kubernetes schemas', () => {
        expect(objects.map(idOf)).to.deep.equal([
          'apps/v1/Deployment/kong-mesh-system/kong-mesh-control-plane',
          'v1/ConfigMap/kong-mesh-system/meshaudit',
        ]);
        for (const o of objects) {
          expect(schemaErrors(o), idOf(o)).to.deep.equal([]);
          expect(unknownFields(o), idOf(o)).to.deep.equal([]);
        }
      });

      it('adds meshaudit as a native sidecar, and leaves the control plane container as the chart made it', () => {
        expect(sidecar).to.include({ restartPolicy: 'Always' });
        expect(pod.containers.map((c: Obj) => c.name)).to.deep.equal(['control-plane']);
        const chart = render(path.join(KUBERNETES, zone, 'control-plane'))[0];
        expect(pod.containers).to.deep.equal(chart.spec.template.spec.containers);
        // The startup probe holds the control plane back until the sidecar is ready.
        expect(sidecar.startupProbe).to.not.equal(undefined);
        expect(sidecar.livenessProbe).to.equal(undefined);
      });

      it('runs as the image user, unprivileged, on a read-only root file system', () => {
        const [, uid, gid] = /^USER (\d+):(\d+)$/m.exec(dockerfile)!.map(Number);
        expect(uid).to.be.greaterThan(0);
        expect(sidecar.securityContext).to.deep.equal({
          runAsNonRoot: true,
          runAsUser: uid,
          runAsGroup: gid,
          readOnlyRootFilesystem: true,
          allowPrivilegeEscalation: false,
          capabilities: { drop: ['ALL'] },
          seccompProfile: { type: 'RuntimeDefault' },
        });
        expect(pod.securityContext).to.include({ fsGroup: gid, fsGroupChangePolicy: 'OnRootMismatch' });
        expect(sidecar.resources.requests).to.have.keys('cpu', 'memory');
        expect(sidecar.resources.limits).to.have.keys('memory');
      });

      it('starts the image entrypoint (the node flags) on the ConfigMap mounted as a folder', () => {
        // A `command` would replace the ENTRYPOINT, and with it the node flags (node-flags.test.ts checks them).
        expect(sidecar.command).to.equal(undefined);
        const entrypoint: string[] = JSON.parse(/^ENTRYPOINT (.*)$/m.exec(dockerfile)![1]);
        expect(entrypoint.slice(entrypoint.indexOf('node') + 1)).to.include.members([...SIDECAR_NODE_FLAGS]);
        const configFile = sidecar.args[sidecar.args.indexOf('--config') + 1];
        const rulesFile = sidecar.args[sidecar.args.indexOf('--rules') + 1];
        expect(sidecar.args).to.deep.equal(['--config', configFile, '--rules', rulesFile]);
        for (const file of [configFile, rulesFile]) {
          const { mount, volume } = volumeOf(path.dirname(file));
          expect(mount, 'mounted whole, so that the kubelet updates it').to.not.have.property('subPath');
          expect(mount.readOnly).to.equal(true);
          expect(volume.configMap.name).to.equal(configMap.metadata.name);
          expect(configMap.data).to.have.property(path.basename(file));
        }
      });

      it("has a config the sidecar loads, for the chart's zone, with its folders on writable volumes", () => {
        const { loaded, audits } = load();
        expect(loaded.warnings).to.deep.equal([]);
        expect(audits.warnings).to.deep.equal([]);
        expect(audits.audits.length).to.be.greaterThan(0);
        const { config } = loaded;
        const chart = deployment.spec.template.spec.containers[0].env.find(
          (e: Obj) => e.name === 'KUMA_MULTIZONE_ZONE_NAME',
        );
        expect(config.zone).to.equal(zone).and.to.equal(chart.value);
        // The control plane reaches gRPC inside the pod, on loopback, as the admin is.
        expect(config.grpcAddress).to.equal('127.0.0.1:5690');
        expect(config.admin.address).to.match(/^127\.0\.0\.1:/);
        const folders = [config.dataDir, ...config.backends.map((b) => path.dirname(b.path))];
        const mounts = folders.map((f) => volumeOf(f));
        for (const { mount, volume } of mounts) {
          expect(mount.readOnly, mount.mountPath).to.not.equal(true);
          expect(volume, mount.mountPath).to.satisfy((v: Obj) => 'emptyDir' in v || 'persistentVolumeClaim' in v);
        }
        expect(new Set(mounts.map((m) => m.volume.name)).size, 'a volume each').to.equal(folders.length);
        volumeOf('/tmp');
        expect(pod.terminationGracePeriodSeconds * 1000).to.be.greaterThan(config.drainTimeoutMs);
      });

      it('sizes the audit volume for what its rotation keeps', () => {
        const { config } = load().loaded;
        for (const backend of config.backends) {
          const { volume } = volumeOf(path.dirname(backend.path));
          const mib = /^(\d+)(Mi|Gi)$/.exec(volume.emptyDir.sizeLimit)!;
          const limitBytes = Number(mib[1]) * (mib[2] === 'Gi' ? 1024 : 1) * 1024 * 1024;
          expect(limitBytes).to.be.at.least((backend.rotation.maxRetainedFiles + 1) * backend.rotation.maxSizeBytes);
        }
      });

      it('probes /ready and has Prometheus scrape /stats/prometheus on the probe listener', () => {
        const { loaded } = load();
        const probePort = portOf(loaded.config.admin.probeAddress!);
        for (const probe of [sidecar.startupProbe, sidecar.readinessProbe]) {
          expect(probe.httpGet.path).to.equal('/ready');
          expect(sidecar.ports.find((p: Obj) => p.name === probe.httpGet.port).containerPort).to.equal(probePort);
        }
        expect(deployment.spec.template.metadata.annotations).to.deep.equal({
          'prometheus.io/scrape': 'true',
          'prometheus.io/port': String(probePort),
          'prometheus.io/path': '/stats/prometheus',
        });
      });
    });
  }

  it('gives each zone its own config and rules', () => {
    const [one, two] = ZONES.map((z) => render(path.join(KUBERNETES, z)).find((o) => o.kind === 'ConfigMap')!.data);
    expect(one['meshaudit.yaml']).to.not.equal(two['meshaudit.yaml']);
    expect(one['access-audits.yaml']).to.not.equal(two['access-audits.yaml']);
  });
});

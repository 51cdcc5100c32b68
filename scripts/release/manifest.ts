/**
 * Renders plugin.yaml (the template) into the release's Krew manifest. The template is parsed as YAML
 * (its placeholders sit inside quoted strings), every string is rendered, platforms whose archive was
 * not built are dropped, and the result is checked before it is written: no placeholder left, each
 * platform's sha256 that of its archive.
 */
import fs from 'node:fs';
import { dump, load } from 'js-yaml';
import { DOWNLOAD_BASE } from './config.ts';

interface ManifestPlatform { selector?: { matchLabels?: Record<string, string> }; uri?: string; sha256?: string; bin?: string }
interface Manifest { spec?: { version?: string; platforms?: ManifestPlatform[] } }

const PLACEHOLDER = /\{\{\s*(version|uri|sha256)(?:\s+"([^"]+)")?\s*\}\}/g;

export interface RenderResult { yaml: string; dropped: string[] }

/** `archives` maps an archive's file name to its sha256. */
export function renderManifest(templateFile: string, version: string, archives: ReadonlyMap<string, string>): RenderResult {
  const manifest = load(fs.readFileSync(templateFile, 'utf8')) as Manifest;
  const missing = new Set<string>();
  const render = (text: string): string => text.replace(PLACEHOLDER, (_match, kind: string, archive: string | undefined) => {
    if (kind === 'version') return version;
    if (!archive) throw new Error(`${templateFile}: {{ ${kind} }} needs an archive name`);
    const sha256 = archives.get(archive);
    if (sha256 === undefined) { missing.add(archive); return ''; }
    return kind === 'uri' ? `${DOWNLOAD_BASE}/${version}/${archive}` : sha256;
  });
  const walk = (value: unknown): unknown => {
    if (typeof value === 'string') return render(value);
    if (Array.isArray(value)) return value.map(walk);
    if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, walk(v)]));
    return value;
  };
  const dropped: string[] = [];
  const platforms = (manifest.spec?.platforms ?? []).filter((platform) => {
    missing.clear();
    Object.assign(platform, walk(platform));
    const labels = platform.selector?.matchLabels ?? {};
    if (missing.size > 0) { dropped.push(`${labels.os}/${labels.arch}`); return false; }
    return true;
  });
  const rendered = walk({ ...manifest, spec: { ...manifest.spec, platforms: [] } }) as Manifest;
  rendered.spec!.platforms = platforms;
  if (platforms.length === 0) throw new Error('no platform left in the manifest');
  const yaml = dump(rendered, { lineWidth: -1, noRefs: true });
  if (/\{\{/.test(yaml)) throw new Error('the rendered manifest still has a {{ placeholder }}');
  for (const platform of platforms) {
    const archive = platform.uri?.slice(platform.uri.lastIndexOf('/') + 1) ?? '';
    if (archives.get(archive) !== platform.sha256) throw new Error(`${archive}: the manifest's sha256 is not the archive's`);
  }
  return { yaml: `# Rendered from plugin.yaml (the template) by scripts/release/release.ts.\n${yaml}`, dropped };
}

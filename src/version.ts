import packageJson from '../package.json' with { type: 'json' };

/** The plugin's own version, from package.json (inlined into the bundle by esbuild). */
export const pluginVersion: string = packageJson.version;

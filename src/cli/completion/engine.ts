/**
 * What to offer for the word under the cursor, given the words before it: command names, flags of
 * the command typed so far, and flag or argument values. Pure but for the sources it is handed (the
 * cluster, the kubeconfig, the catalog), each of which may fail or be slow without failing completion.
 */
import { parseDuration } from '../global-options.ts';
import type { CommandSpec, FlagSpec, PositionalSpec } from './spec.ts';

/** Cobra's shell completion directives (a bit set), as kubectl's plugin completion passes them on. */
export const Directive = {
  default: 0,
  error: 1,
  noSpace: 2,
  noFileComp: 4,
  filterFileExt: 8,
  filterDirs: 16,
  keepOrder: 32,
} as const;

export interface Candidate {
  value: string;
  description?: string | undefined;
}

export interface CompletionResult {
  candidates: Candidate[];
  directive: number;
}

/**
 * The global flags typed on the line (--kubeconfig, --context, -n and kubectl's other connection
 * flags), by their camelCase names as yargs hands them to commands: a string (the last one given),
 * a list for a repeatable flag, true or false for a boolean.
 */
export type ConnectionFlags = Record<string, string | string[] | boolean | undefined>;

/** What a kubeconfig names. */
export type KubeconfigEntry = 'context' | 'cluster' | 'user';

export interface CatalogQuery {
  /** The --catalog typed on the line, if any. */
  catalog: string | undefined;
  /** Only backups with this outcome. */
  status?: 'succeeded' | undefined;
  /** Only backups of claims in this namespace. */
  namespace?: string | undefined;
}

/** Where values come from. Each may throw or never answer; completion then offers nothing from it. */
export interface CompletionSources {
  namespaces(connection: ConnectionFlags): Promise<Candidate[]>;
  /** Claims in the namespace of -n, or the context's. */
  claims(connection: ConnectionFlags): Promise<Candidate[]>;
  storageClasses(connection: ConnectionFlags): Promise<Candidate[]>;
  /** The contexts, clusters or users of the kubeconfig that --kubeconfig (or the environment) names. */
  kubeconfig(connection: ConnectionFlags, entry: KubeconfigEntry): Promise<Candidate[]>;
  /** Backup IDs, newest first. */
  backups(query: CatalogQuery): Promise<Candidate[]>;
  /** Names of claims that have backups in the catalog. */
  catalogClaims(query: CatalogQuery): Promise<Candidate[]>;
}

/** What a value is, which decides where its candidates come from. */
export type ValueKind =
  | { kind: 'choices'; choices: string[] }
  | { kind: 'namespace' | 'claim' | 'storageClass' | 'catalogClaim' }
  | { kind: 'kubeconfig'; entry: KubeconfigEntry }
  | { kind: 'backup'; status?: 'succeeded' }
  | { kind: 'file' | 'directory' | 'free' };

/**
 * Values by the flag's or argument's name, wherever it is declared: a new command with a `pvc`
 * argument or a `--namespace` completes like the others.
 */
export function valueKind(command: CommandSpec, target: { flag: FlagSpec } | { positional: PositionalSpec }): ValueKind {
  const spec = 'flag' in target ? target.flag : target.positional;
  if (spec.choices && spec.choices.length > 0) return { kind: 'choices', choices: spec.choices };
  const name = spec.name;
  if ('positional' in target) {
    if (name === 'pvc') return { kind: 'claim' };
    if (name === 'id') {
      // A restore or a verify of one backup needs one that succeeded; `artifacts show` shows any.
      const needsSucceeded = command.name === 'restore' || command.name === 'verify';
      return needsSucceeded ? { kind: 'backup', status: 'succeeded' } : { kind: 'backup' };
    }
    return { kind: 'free' };
  }
  switch (name) {
    case 'namespace':
      return { kind: 'namespace' };
    case 'context':
    case 'cluster':
    case 'user':
      return { kind: 'kubeconfig', entry: name as KubeconfigEntry };
    case 'to':
      return { kind: 'claim' };
    case 'storage-class':
      return { kind: 'storageClass' };
    case 'pvc':
      return { kind: 'catalogClaim' };
    case 'kubeconfig':
    case 'catalog':
    case 'certificate-authority':
    case 'client-certificate':
    case 'client-key':
      return { kind: 'file' };
    case 'output-dir':
    case 'cache-dir':
      return { kind: 'directory' };
    default:
      return { kind: 'free' };
  }
}

/** The line as parsed up to the word under the cursor. */
export interface ParsedLine {
  command: CommandSpec;
  /** Flag name (canonical) -> values given, in order ('true' for a boolean). */
  given: Map<string, string[]>;
  /** Positional arguments given to `command`. */
  positionals: string[];
  /** A flag whose value is the word under the cursor. */
  pendingFlag: FlagSpec | undefined;
  /** After `--`: every word is an argument. */
  argumentsOnly: boolean;
}

/** Flags the command accepts: its own, and the global ones of the commands above it. */
export function visibleFlags(root: CommandSpec, command: CommandSpec): FlagSpec[] {
  const chain: CommandSpec[] = [root];
  let node = root;
  for (const name of command.path) {
    const next = node.subcommands.find((sub) => sub.name === name);
    if (!next) break;
    chain.push(next);
    node = next;
  }
  const flags = new Map<string, FlagSpec>();
  chain.forEach((level, index) => {
    for (const flag of level.flags) if (index === chain.length - 1 || flag.global) flags.set(flag.name, flag);
  });
  return [...flags.values()];
}

function findLong(flags: FlagSpec[], name: string): FlagSpec | undefined {
  return flags.find((flag) => flag.name === name || flag.aliases.includes(name)) ??
    // --no-color turns a boolean off
    (name.startsWith('no-') ? flags.find((flag) => !flag.takesValue && flag.name === name.slice(3)) : undefined);
}

function findShort(flags: FlagSpec[], letter: string): FlagSpec | undefined {
  return flags.find((flag) => flag.aliases.includes(letter) || flag.name === letter);
}

function findSubcommand(command: CommandSpec, word: string): CommandSpec | undefined {
  return command.subcommands.find((sub) => sub.name === word || sub.aliases.includes(word));
}

/** Walks the complete words (all but the one under the cursor) the way yargs would read them. */
export function parseLine(root: CommandSpec, words: readonly string[]): ParsedLine {
  const parsed: ParsedLine = { command: root, given: new Map(), positionals: [], pendingFlag: undefined, argumentsOnly: false };
  let flags = visibleFlags(root, root);
  const give = (flag: FlagSpec | undefined, value: string) => {
    if (!flag) return;
    parsed.given.set(flag.name, [...(parsed.given.get(flag.name) ?? []), value]);
  };
  for (const word of words) {
    if (parsed.pendingFlag) {
      give(parsed.pendingFlag, word);
      parsed.pendingFlag = undefined;
    } else if (parsed.argumentsOnly) {
      parsed.positionals.push(word);
    } else if (word === '--') {
      parsed.argumentsOnly = true;
    } else if (word.startsWith('--')) {
      const equals = word.indexOf('=');
      const name = word.slice(2, equals < 0 ? undefined : equals);
      const flag = findLong(flags, name);
      if (equals >= 0) give(flag, word.slice(equals + 1));
      else if (flag?.takesValue) parsed.pendingFlag = flag;
      else give(flag, name.startsWith('no-') && flag?.name !== name ? 'false' : 'true');
    } else if (word.startsWith('-') && word.length > 1) {
      // -n dev, -ndev, -n=dev, and groups of one-letter booleans (-Ah)
      for (let i = 1; i < word.length; i++) {
        const flag = findShort(flags, word[i]!);
        if (flag?.takesValue) {
          const rest = word.slice(i + 1).replace(/^=/, '');
          if (rest) give(flag, rest);
          else parsed.pendingFlag = flag;
          break;
        }
        give(flag, 'true');
      }
    } else {
      const sub = parsed.positionals.length === 0 ? findSubcommand(parsed.command, word) : undefined;
      if (sub) {
        parsed.command = sub;
        flags = visibleFlags(root, sub);
      } else {
        parsed.positionals.push(word);
      }
    }
  }
  return parsed;
}

/** What the word under the cursor is. */
export type Target =
  | { type: 'flagName'; flags: FlagSpec[] }
  | { type: 'value'; kind: ValueKind; /** the part of the word that is the value */ text: string; exclude: string[] }
  | { type: 'commandOrArgument'; subcommands: CommandSpec[]; argument: { kind: ValueKind; exclude: string[] } | undefined; requiredFlags: FlagSpec[] };

export function targetOf(root: CommandSpec, parsed: ParsedLine, current: string): Target {
  const flags = visibleFlags(root, parsed.command);
  if (parsed.pendingFlag) {
    return { type: 'value', kind: valueKind(parsed.command, { flag: parsed.pendingFlag }), text: current, exclude: [] };
  }
  if (!parsed.argumentsOnly && current.startsWith('-') && current.includes('=')) {
    const equals = current.indexOf('=');
    const flag = current.startsWith('--') ? findLong(flags, current.slice(2, equals)) : findShort(flags, current[equals - 1] ?? '');
    const kind: ValueKind = flag?.takesValue ? valueKind(parsed.command, { flag }) : { kind: 'free' };
    return { type: 'value', kind, text: current.slice(equals + 1), exclude: [] };
  }
  if (!parsed.argumentsOnly && current.startsWith('-')) {
    return { type: 'flagName', flags: flags.filter((flag) => flag.array || !parsed.given.has(flag.name)) };
  }
  const subcommands = parsed.positionals.length === 0 ? parsed.command.subcommands : [];
  const { positionals } = parsed.command;
  const last = positionals[positionals.length - 1];
  const positional = positionals[parsed.positionals.length] ?? (last?.variadic ? last : undefined);
  const argument = positional
    ? { kind: valueKind(parsed.command, { positional }), exclude: positional.variadic ? parsed.positionals.slice(positionals.length - 1) : [] }
    : undefined;
  // Like cobra: with nothing else to type, the required flags not given yet.
  const requiredFlags = subcommands.length === 0 && !argument ? flags.filter((flag) => flag.required && !parsed.given.has(flag.name)) : [];
  return { type: 'commandOrArgument', subcommands, argument, requiredFlags };
}

function flagNameCandidates(flags: FlagSpec[]): Candidate[] {
  const candidates: Candidate[] = [];
  for (const flag of flags) {
    const description = flag.description;
    candidates.push({ value: flag.negatable ? `--no-${flag.name}` : `--${flag.name}`, description });
    for (const alias of flag.aliases) candidates.push({ value: alias.length === 1 ? `-${alias}` : `--${alias}`, description });
  }
  return candidates;
}

export interface CompleteOptions {
  /** How long one source may take before completion gives up on it. */
  timeoutMs?: number;
  /** Told why a source gave nothing (for NKVM_COMPLETION_DEBUG); completion goes on regardless. */
  onError?: (error: unknown) => void;
}

/** Long enough for a busy API server, short enough that a dead one does not hang the shell. */
export const DEFAULT_SOURCE_TIMEOUT_MS = 5000;

/** --request-timeout on the line bounds each source, as it bounds kubectl's own requests; one it cannot read, or 0, leaves the default. */
function requestTimeoutOnLine(connection: ConnectionFlags): number | undefined {
  if (typeof connection.requestTimeout !== 'string') return undefined;
  try {
    return parseDuration(connection.requestTimeout, '--request-timeout') || undefined;
  } catch {
    return undefined;
  }
}

/** A source's candidates, or none if it fails or takes longer than the deadline. */
async function ask(source: () => Promise<Candidate[]>, options: Required<CompleteOptions>): Promise<Candidate[]> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<Candidate[]>((resolve) => {
    timer = setTimeout(() => {
      options.onError(new Error(`no answer within ${options.timeoutMs} ms`));
      resolve([]);
    }, options.timeoutMs);
  });
  const answer = (async () => source())().catch((error: unknown) => {
    options.onError(error);
    return [] as Candidate[];
  });
  try {
    return await Promise.race([answer, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

const camelCase = (name: string) => name.replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase());

/** The global flags given on the line, as a command would receive them. */
function connectionOf(root: CommandSpec, parsed: ParsedLine): ConnectionFlags {
  const flags: ConnectionFlags = {};
  for (const flag of root.flags) {
    const values = parsed.given.get(flag.name);
    if (!values || values.length === 0) continue;
    flags[camelCase(flag.name)] = !flag.takesValue ? values.at(-1) !== 'false' : flag.array ? values : values.at(-1) || undefined;
  }
  return flags;
}

async function valueCandidates(kind: ValueKind, root: CommandSpec, parsed: ParsedLine, sources: CompletionSources, options: Required<CompleteOptions>): Promise<CompletionResult> {
  const connection = connectionOf(root, parsed);
  const catalog = parsed.given.get('catalog')?.at(-1) || undefined;
  const fromSource = async (source: () => Promise<Candidate[]>, directive: number = Directive.noFileComp): Promise<CompletionResult> => ({
    candidates: await ask(source, options),
    directive,
  });
  switch (kind.kind) {
    case 'choices':
      return { candidates: kind.choices.map((value) => ({ value })), directive: Directive.noFileComp };
    case 'namespace':
      return fromSource(() => sources.namespaces(connection));
    case 'claim':
      return fromSource(() => sources.claims(connection));
    case 'storageClass':
      return fromSource(() => sources.storageClasses(connection));
    case 'kubeconfig':
      return fromSource(() => sources.kubeconfig(connection, kind.entry));
    case 'backup':
      // Newest first: the order is the point.
      return fromSource(() => sources.backups({ catalog, status: kind.status }), Directive.noFileComp | Directive.keepOrder);
    case 'catalogClaim':
      return fromSource(() => sources.catalogClaims({ catalog, namespace: typeof connection.namespace === 'string' ? connection.namespace : undefined }));
    case 'file':
      return { candidates: [], directive: Directive.default };
    case 'directory':
      return { candidates: [], directive: Directive.filterDirs };
    case 'free':
      return { candidates: [], directive: Directive.noFileComp };
  }
}

/** Keeps the candidates that start with `prefix`, each value once, and drops unusable characters. */
function finish(result: CompletionResult, prefix: string, exclude: readonly string[] = []): CompletionResult {
  const seen = new Set(exclude);
  const candidates: Candidate[] = [];
  for (const candidate of result.candidates) {
    const value = candidate.value.replace(/[\t\r\n]/g, ' ');
    if (!value.startsWith(prefix) || seen.has(value)) continue;
    seen.add(value);
    const description = candidate.description?.split(/\r?\n/)[0]?.replace(/\t/g, ' ').trim();
    candidates.push(description ? { value, description } : { value });
  }
  return { candidates, directive: result.directive };
}

/**
 * Completes the last of `words` (the words after `kubectl nkvm`; the last one is the word under the
 * cursor, '' for a new one). Never throws.
 */
export async function complete(root: CommandSpec, words: readonly string[], sources: CompletionSources, options: CompleteOptions = {}): Promise<CompletionResult> {
  const settings: Required<CompleteOptions> = { timeoutMs: options.timeoutMs ?? DEFAULT_SOURCE_TIMEOUT_MS, onError: options.onError ?? (() => {}) };
  try {
    const current = words.length > 0 ? words[words.length - 1]! : '';
    const parsed = parseLine(root, words.slice(0, -1));
    settings.timeoutMs = options.timeoutMs ?? requestTimeoutOnLine(connectionOf(root, parsed)) ?? DEFAULT_SOURCE_TIMEOUT_MS;
    const target = targetOf(root, parsed, current);
    switch (target.type) {
      case 'flagName':
        return finish({ candidates: flagNameCandidates(target.flags), directive: Directive.noFileComp }, current);
      case 'value':
        return finish(await valueCandidates(target.kind, root, parsed, sources, settings), target.text, target.exclude);
      case 'commandOrArgument': {
        const commands = target.subcommands.map((sub) => ({ value: sub.name, description: sub.description }));
        const argument = target.argument ? await valueCandidates(target.argument.kind, root, parsed, sources, settings) : undefined;
        const required = flagNameCandidates(target.requiredFlags).filter((candidate) => candidate.value.startsWith('--'));
        const directive = commands.length > 0 || !argument ? Directive.noFileComp : argument.directive;
        return finish({ candidates: [...commands, ...(argument?.candidates ?? []), ...required], directive }, current, target.argument?.exclude);
      }
    }
  } catch (error) {
    settings.onError(error);
    return { candidates: [], directive: Directive.noFileComp };
  }
}

/**
 * The command tree as completion sees it: commands, their flags and positionals, read from the same
 * yargs command modules the CLI runs, so a flag added to a command completes without touching this.
 *
 * A builder is run against a recorder, not against yargs: it notes option(), positional(), command()
 * (and alias()/choices()) and answers every other chained call with itself. Nothing is parsed and no
 * handler runs.
 */
import { withGlobalOptions } from '../global-options.ts';

export interface FlagSpec {
  name: string;
  /** Other names: one letter ones are used as -x, longer ones as --name. */
  aliases: string[];
  /** Whether the flag is followed by a value (false for booleans). */
  takesValue: boolean;
  /** Repeatable: offered again after it was given. */
  array: boolean;
  choices: string[] | undefined;
  description: string;
  /** A boolean that is on unless turned off: offered as --no-NAME. */
  negatable: boolean;
  required: boolean;
  /** Seen by subcommands too (yargs' global: true). */
  global: boolean;
}

export interface PositionalSpec {
  name: string;
  variadic: boolean;
  choices: string[] | undefined;
  description: string;
}

export interface CommandSpec {
  name: string;
  aliases: string[];
  /** Command names from the root down to this one; [] for the root. */
  path: string[];
  description: string;
  flags: FlagSpec[];
  positionals: PositionalSpec[];
  subcommands: CommandSpec[];
}

/** What completion reads of a yargs CommandModule (any of its type parameters). */
export interface CommandLike {
  command?: string | readonly string[] | undefined;
  describe?: unknown;
  builder?: unknown;
  aliases?: string | readonly string[] | undefined;
}
type AnyModule = CommandLike;

interface OptionLike {
  alias?: string | readonly string[];
  type?: string;
  array?: boolean;
  choices?: readonly unknown[];
  description?: string;
  describe?: string;
  desc?: string;
  default?: unknown;
  demandOption?: boolean | string;
  global?: boolean;
  boolean?: boolean;
  count?: boolean;
}

interface Recorded {
  options: Map<string, OptionLike>;
  positionals: Map<string, OptionLike>;
  commands: AnyModule[];
}

function asList(value: string | readonly string[] | undefined): string[] {
  return value === undefined ? [] : typeof value === 'string' ? [value] : [...value];
}

/** A stand-in for yargs' Argv that records what a builder declares. */
function recorder(recorded: Recorded): unknown {
  const merge = (map: Map<string, OptionLike>, key: string, option: OptionLike) => map.set(key, { ...map.get(key), ...option });
  let proxy: unknown;
  const methods: Record<string, (...args: unknown[]) => unknown> = {
    option: (key, option) => {
      if (typeof key === 'object' && key !== null) for (const [k, o] of Object.entries(key)) merge(recorded.options, k, (o ?? {}) as OptionLike);
      else merge(recorded.options, String(key), (option ?? {}) as OptionLike);
      return proxy;
    },
    positional: (key, option) => {
      merge(recorded.positionals, String(key), (option ?? {}) as OptionLike);
      return proxy;
    },
    alias: (key, alias) => {
      const target = recorded.options.get(String(key)) ?? {};
      merge(recorded.options, String(key), { alias: [...asList(target.alias), ...asList(alias as string | string[])] });
      return proxy;
    },
    choices: (key, values) => {
      merge(recorded.options.has(String(key)) ? recorded.options : recorded.positionals, String(key), { choices: [values].flat() as unknown[] });
      return proxy;
    },
    command: (cmd, description, builder) => {
      if (Array.isArray(cmd) && cmd.every((c) => typeof c === 'object')) recorded.commands.push(...(cmd as AnyModule[]));
      else if (typeof cmd === 'object' && cmd !== null && !Array.isArray(cmd)) recorded.commands.push(cmd as AnyModule);
      else recorded.commands.push({ command: cmd as string | string[], describe: typeof description === 'string' ? description : '', builder });
      return proxy;
    },
  };
  methods.options = methods.option!;
  proxy = new Proxy(
    {},
    {
      get: (_target, property) => (typeof property === 'string' && property in methods ? methods[property] : () => proxy),
    },
  );
  return proxy;
}

function record(build: ((argv: never) => unknown) | Record<string, OptionLike> | undefined): Recorded {
  const recorded: Recorded = { options: new Map(), positionals: new Map(), commands: [] };
  if (typeof build === 'function') build(recorder(recorded) as never);
  else if (build && typeof build === 'object') for (const [key, option] of Object.entries(build)) recorded.options.set(key, option);
  return recorded;
}

function describe(option: OptionLike): string {
  return option.description ?? option.describe ?? option.desc ?? '';
}

function flagSpec(name: string, option: OptionLike): FlagSpec {
  const boolean = option.type === 'boolean' || option.boolean === true || option.type === 'count' || option.count === true;
  return {
    name,
    aliases: asList(option.alias),
    takesValue: !boolean,
    array: option.array === true,
    choices: option.choices?.map(String),
    description: describe(option),
    negatable: boolean && option.default === true,
    required: Boolean(option.demandOption),
    global: option.global === true,
  };
}

/** 'backup [pvc..]' -> name backup, positionals [pvc (variadic)]; other forms of yargs' command string alike. */
function parseCommandString(command: string): { name: string; positionals: { name: string; variadic: boolean }[] } {
  const [name = '', ...rest] = command.trim().split(/\s+/);
  const positionals = rest
    .map((token) => /^[<[]([^\]>]+)[\]>]$/.exec(token)?.[1])
    .filter((inner): inner is string => Boolean(inner))
    .map((inner) => {
      const variadic = inner.endsWith('..');
      // 'id|alias' names one positional by two names; the first is the one declared with positional().
      return { name: (variadic ? inner.slice(0, -2) : inner).split('|')[0]!, variadic };
    });
  return { name, positionals };
}

const HELP_FLAG: FlagSpec = {
  name: 'help', aliases: ['h'], takesValue: false, array: false, choices: undefined,
  description: 'Show help', negatable: false, required: false, global: true,
};

function buildCommand(module: AnyModule, parentPath: string[]): CommandSpec | undefined {
  const [first, ...moreNames] = asList(module.command);
  if (!first) return undefined;
  const parsed = parseCommandString(first);
  // '$0' and '*' are default commands: nothing to type, so nothing to complete.
  if (!parsed.name || parsed.name === '$0' || parsed.name === '*') return undefined;
  const recorded = record(module.builder as Parameters<typeof record>[0]);
  const path = [...parentPath, parsed.name];
  return {
    name: parsed.name,
    aliases: [...moreNames.map((alias) => parseCommandString(alias).name), ...asList(module.aliases)],
    path,
    description: typeof module.describe === 'string' ? module.describe : '',
    flags: [...recorded.options].map(([key, option]) => flagSpec(key, option)),
    positionals: parsed.positionals.map(({ name, variadic }) => {
      const option = recorded.positionals.get(name) ?? {};
      return { name, variadic, choices: option.choices?.map(String), description: describe(option) };
    }),
    subcommands: recorded.commands.map((sub) => buildCommand(sub, path)).filter((sub): sub is CommandSpec => sub !== undefined),
  };
}

/** The root of the tree: the global flags (withGlobalOptions, as main.ts applies them) and the commands. */
export function commandTree(commands: readonly AnyModule[]): CommandSpec {
  const globals = record((argv: never) => withGlobalOptions(argv));
  return {
    name: '',
    aliases: [],
    path: [],
    description: '',
    flags: [...[...globals.options].map(([key, option]) => ({ ...flagSpec(key, option), global: true })), HELP_FLAG],
    positionals: [],
    subcommands: commands.map((module) => buildCommand(module, [])).filter((sub): sub is CommandSpec => sub !== undefined),
  };
}

interface YargsCommandHandler {
  original: string;
  description: unknown;
  builder: unknown;
}

/**
 * The command modules a yargs instance was given (`.command([...])` in main.ts), with their aliases,
 * from yargs' command registry.
 */
export function commandsOfYargs(cli: unknown): AnyModule[] {
  const instance = (cli as { getInternalMethods?: () => { getCommandInstance: () => unknown } }).getInternalMethods?.().getCommandInstance() as
    | { getCommandHandlers(): Record<string, YargsCommandHandler>; aliasMap?: Record<string, string> }
    | undefined;
  if (!instance) return [];
  const aliases = Object.entries(instance.aliasMap ?? {});
  return Object.entries(instance.getCommandHandlers()).map(([name, handler]) => ({
    command: handler.original,
    describe: typeof handler.description === 'string' ? handler.description : '',
    builder: handler.builder,
    aliases: aliases.filter(([, target]) => target === name).map(([alias]) => alias),
  }));
}

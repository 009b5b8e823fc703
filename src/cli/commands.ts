// pghactl's commands, each named and described here and loaded only when it runs. Loading every
// command module up front (etcd3, zod, pg, yaml, cli-table3 and pgha's own modules) took about
// 0.4 s of the 0.5 s that `pghactl --help` took; the top-level help needs only the names and
// descriptions below (test/unit/cli-commands.test.ts keeps them equal to the modules').
import type { CommandModule, Options } from 'yargs';
import { Parser } from 'yargs/helpers';
import type { GlobalOpts } from './context.ts';
import { FORMATS, type Format } from './formats.ts';

type Command = CommandModule<GlobalOpts, any>;

export interface LazyCommand {
  /** The command's yargs syntax, as in its module (the first word is its name). */
  command: string;
  describe: string;
  load: () => Promise<Command>;
}

export const COMMANDS: readonly LazyCommand[] = [
  { command: 'list', describe: 'members with role, state, timeline and lag', load: async () => (await import('./list.ts')).listCommand },
  { command: 'topology', describe: 'the replication tree as observed (each standby under the member it streams from)', load: async () => (await import('./list.ts')).topologyCommand },
  { command: 'switchover', describe: 'planned handover to a healthy standby; waits until the new leader answers', load: async () => (await import('./handover.ts')).switchoverCommand },
  { command: 'promote-cluster', describe: 'make a standby cluster a normal one: its standby leader promotes; waits until it takes writes', load: async () => (await import('./standby.ts')).promoteClusterCommand },
  { command: 'demote-cluster', describe: 'make this cluster a standby cluster of another (--host/--port: its HAProxy or primaries); waits for the standby leader', load: async () => (await import('./standby.ts')).demoteClusterCommand },
  { command: 'failover', describe: 'promote a named standby when there is no healthy leader; waits until it answers', load: async () => (await import('./handover.ts')).failoverCommand },
  { command: 'flush [target] [members..]', describe: 'cancel a scheduled switchover (flush --scheduled) or scheduled restarts (flush restart [members..])', load: async () => (await import('./handover.ts')).flushCommand },
  { command: 'pause', describe: 'maintenance mode: no automatic failover, demotion, restart or fencing', load: async () => (await import('./config.ts')).pauseCmd },
  { command: 'resume', describe: 'leave maintenance mode', load: async () => (await import('./config.ts')).resumeCmd },
  { command: 'show-config', describe: 'the cluster-wide dynamic configuration in etcd', load: async () => (await import('./config.ts')).showConfigCommand },
  { command: 'edit-config', describe: 'change the dynamic configuration (validated, compare-and-set); without --set/--pg/--apply in $EDITOR, with a diff and a question', load: async () => (await import('./config.ts')).editConfigCommand },
  { command: 'history', describe: 'timeline history: one entry per promotion', load: async () => (await import('./info.ts')).historyCommand },
  { command: 'dsn', describe: 'a libpq connection string (multi-host, target_session_attrs: needs no proxy)', load: async () => (await import('./info.ts')).dsnCommand },
  { command: 'restart [members..]', describe: 'restart PostgreSQL on members (all by default), one after another; waits until each is back', load: async () => (await import('./members.ts')).restartCommand },
  { command: 'reload [members..]', describe: 'reload PostgreSQL configuration on members (all by default); --agent: the agents re-read their YAML', load: async () => (await import('./members.ts')).reloadCommand },
  { command: 'reinit <member>', describe: 'wipe a standby and clone it afresh from the leader (refused on the leader); waits until it streams', load: async () => (await import('./members.ts')).reinitCommand },
  { command: 'availability', describe: 'expected availability and downtime of a pgha cluster, from a measured failover time', load: async () => (await import('./availability.ts')).availabilityCommand },
  { command: 'drill', describe: 'rehearse a failure through the agents and measure the outage and lost writes', load: async () => (await import('./drill.ts')).drillCommand },
  { command: 'query [sql]', describe: 'run SQL on the leader or a member (as the YAML\'s superuser)', load: async () => (await import('./query.ts')).queryCommand },
  { command: 'slots', describe: 'logical slots on every member: the consumer\'s confirmed position and lag (leader), the copies (standbys)', load: async () => (await import('./slots.ts')).slotsCommand },
  { command: 'remove <cluster>', describe: 'delete every key of the cluster in etcd (asks for its name first; stop the agents before)', load: async () => (await import('./remove.ts')).removeCommand },
  { command: 'backup [action]', describe: 'take a pgBackRest backup (on the leader, or --standby), or list / expire the backups', load: async () => (await import('./backup.ts')).backupCommand },
  { command: 'restore-point <name>', describe: 'create a named restore point on the leader (pg_create_restore_point) and archive it, for a restore to --type=name later', load: async () => (await import('./backup.ts')).restorePointCommand },
  { command: 'restore', describe: 'whole-cluster point-in-time restore from the pgBackRest repository (--time, --lsn, --name or --latest); --resume / --abort an interrupted one', load: async () => (await import('./restore.ts')).restoreCommand },
  { command: 'convert-config <file>', describe: 'convert a Patroni YAML (patroni.yml) to pgha\'s node configuration; lists every setting it could not carry over', load: async () => (await import('./convert.ts')).convertConfigCommand },
  { command: 'verify', describe: 'compare every table of the standbys (or a logical subscriber) with the leader; exit 3: different, 4: not all checked', load: async () => (await import('./verify.ts')).verifyCommand },
  { command: 'version', describe: 'the pgha version of pghactl, and of every agent that answers', load: async () => (await import('./version.ts')).versionCommand },
];

export const nameOf = (c: { command: string }): string => c.command.split(' ')[0]!;

/**
 * The yargs command for `c`: the real one when `load` is true, else only its name and description
 * (enough for the top-level help and for suggestions); running such a stand-in is a bug, never a
 * silent success.
 */
export async function commandFor(c: LazyCommand, load: boolean): Promise<Command> {
  if (load) return c.load();
  return { command: c.command, describe: c.describe, handler: () => { throw new Error(`internal: pghactl ${nameOf(c)} was not loaded`); } };
}

/** The options of every command (main.ts declares them to yargs). */
export const GLOBAL_OPTIONS = {
  config: { alias: 'c', type: 'string', describe: 'agent YAML (or PGHA_CONFIG; default /etc/pgha/pgha.yml when it exists and --etcd is not given)' },
  etcd: { type: 'string', describe: 'etcd [https://]host:port[,...]' },
  'etcd-cacert': { type: 'string', describe: 'CA of etcd\'s server certificate (PEM; implies https)' },
  'etcd-cert': { type: 'string', describe: 'client certificate for etcd (PEM; with --etcd-key)' },
  'etcd-key': { type: 'string', describe: 'key of --etcd-cert (PEM)' },
  scope: { type: 'string', describe: 'cluster name' },
  namespace: { type: 'string', default: '/service', describe: 'etcd key prefix of the cluster, with --etcd/--scope (the agent YAML\'s namespace otherwise)' },
  format: { alias: 'f', choices: FORMATS, default: 'table' as Format, describe: 'output: table (for people; rounded figures), tsv (tab-separated rows with a header line) or json/yaml (for scripts; full precision)' },
} satisfies Record<string, Options>;

/**
 * The command that `args` runs, as yargs will read it: the first positional word, with the global
 * options above and yargs' own --help/--version; and whether the shell's completion is asking
 * (yargs' get-yargs-completions option), which may name any command and its options.
 */
export function commandOf(args: readonly string[]): { name: string | undefined; completion: boolean } {
  const strings = Object.entries(GLOBAL_OPTIONS).filter(([k]) => k !== 'format').map(([k]) => k);
  const parsed = Parser([...args], { string: [...strings, 'format'], boolean: ['help', 'version'], alias: { config: ['c'], format: ['f'] } });
  const first = parsed._[0];
  const name = first === undefined ? undefined : String(first);
  return { name, completion: name === 'completion' || parsed['get-yargs-completions'] !== undefined };
}

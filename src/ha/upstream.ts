// Whom a standby streams from, and so which members keep a physical slot for whom (pure).
//
// Patroni's tags, decided from the cluster view alone:
//   - no tag: stream from the leader;
//   - `nostream`: stream from nobody; WAL comes from the archive (restore_command) only;
//   - `replicatefrom: X`: stream from X while X is a standby that streams itself and whose own
//     chain of published upstreams ends at the leader; otherwise from the leader (and back to X
//     once it streams again). X naming this member itself is ignored. Members whose tags form a
//     loop that includes this member (A replicatefrom B, B replicatefrom A) all stream from the
//     leader: the tags are static, so this never flaps, and nobody is left without WAL.
// Every member computes every other member's choice the same way, from the same etcd view: the
// member a standby streams from keeps a slot for it, and the leader keeps none for a member that
// cascades elsewhere (Patroni's _get_members_slots). nostream members get no slot anywhere.
import type { Tags } from '../config/schema.ts';
import type { ClusterView, MemberInfo } from './types.ts';

type View = Pick<ClusterView, 'leader' | 'members'>;

export interface UpstreamChoice {
  /** The member to stream from; null: none (nostream, or no leader). */
  upstream: string | null;
  /** Why it is not the tag's choice, or what the tag asks; null for a plain follower of the leader. */
  note: string | null;
}

const find = (view: View, name: string): MemberInfo | undefined => view.members.find((m) => m.name === name);

/** A member that can pass WAL on: a standby whose WAL receiver streams right now. */
const streams = (m: MemberInfo | undefined): boolean => m !== undefined && m.role === 'standby' && m.state === 'streaming';

/** Following replicatefrom tags from `target` comes back to `self` (a loop of tags through us). */
function tagLoop(self: string, target: string, leader: string, view: View): boolean {
  const seen = new Set<string>();
  let t: string | undefined = target;
  while (t !== undefined && t !== leader && !seen.has(t)) {
    if (t === self) return true;
    seen.add(t);
    t = find(view, t)?.tags.replicatefrom;
  }
  return false;
}

/**
 * The published upstreams from `m` reach the leader through streaming standbys only, never
 * through `self` (as observed now: a member's published upstream is its primary_conninfo).
 */
function chainReachesLeader(self: string, m: MemberInfo, leader: string, view: View): boolean {
  const seen = new Set([self, m.name]);
  let up = m.upstream;
  while (up !== leader) {
    if (up === null || seen.has(up)) return false;
    const next = find(view, up);
    if (next === undefined || !streams(next)) return false;
    seen.add(up);
    up = next.upstream;
  }
  return true;
}

/** Whom member `self` (not the leader) with these tags streams from, given the cluster view. */
export function chooseUpstream(self: string, tags: Tags, view: View | null): UpstreamChoice {
  const leader = view?.leader?.name ?? null;
  if (tags.nostream) return { upstream: null, note: 'nostream: WAL from the archive only' };
  if (view === null || leader === null || leader === self) return { upstream: leader === self ? null : leader, note: null };
  const target = tags.replicatefrom;
  if (target === undefined || target === leader) return { upstream: leader, note: null };
  if (target === self) return { upstream: leader, note: `tags.replicatefrom names this member itself: ignored, streaming from leader ${leader}` };
  if (tagLoop(self, target, leader, view)) return { upstream: leader, note: `replicatefrom ${target} loops back to this member: streaming from leader ${leader}` };
  const m = find(view, target);
  if (m === undefined) return { upstream: leader, note: `replicatefrom ${target}: not a member now, streaming from leader ${leader}` };
  if (!streams(m)) return { upstream: leader, note: `replicatefrom ${target}: not streaming (${m.role}, ${m.state}), streaming from leader ${leader}` };
  if (!chainReachesLeader(self, m, leader, view)) return { upstream: leader, note: `replicatefrom ${target}: its upstream chain does not reach leader ${leader}, streaming from the leader` };
  return { upstream: target, note: `replicatefrom ${target}` };
}

/**
 * The members `self` keeps a physical slot for: every other member that streams from it now (its
 * published upstream) or will (its choice by chooseUpstream), except nostream members. On the
 * leader: everyone but the members cascading from another standby. On a standby: its downstreams.
 */
export function slotMembers(self: string, view: View | null): string[] {
  if (view === null) return [];
  return view.members
    .filter((m) => m.name !== self && !m.tags.nostream && m.name !== view.leader?.name)
    .filter((m) => m.upstream === self || chooseUpstream(m.name, m.tags, view).upstream === self)
    .map((m) => m.name);
}

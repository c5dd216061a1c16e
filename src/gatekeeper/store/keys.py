"""Every Redis key and member name the store uses, built here and nowhere else.

Key layout. `{p}` is `redis.key_prefix` (default `gk:`), `{list}` is `block` or `allow`,
`{scope}` is `global` or `kind:id`, `{token}` is one replace import's random hex id.

key                                 type        members -> values
  meaning; lifetime
----------------------------------  ----------  -------------------------------------------
{p}list:{list}:{scope}              sorted set  entry as written (`+33612345678`, `+33*`),
                                                `#sms`/`#voice` appended when channel-
                                                limited -> score 0
  The list. Equal scores order the set by member, so listings page by value
  (ZRANGEBYLEX). Permanent.
{p}meta:{list}:{scope}              hash        member -> metadata JSON (`source`,
                                                `added_at`, `added_by`, `note`,
                                                `expires_at`) or `@{id}` (see batch)
  Who added each entry, when and why. A member has a field while it is in the list.
{p}exp:{list}:{scope}               sorted set  member -> expires_at (epoch seconds)
  Entries that expire. Lookups and listings ignore an entry from that instant (Redis's
  clock); the sweep then removes it from all three keys. Absent if none expires.
{p}loading:{list}:{scope}           set         tokens of replace imports under way (each
                                                its copy's list key)
  While it exists, entries added to the live list are also journaled. Expires
  LOAD_MARK_SECONDS after the latest import began (a killed import leaves nothing).
{p}journal:{list}:{scope}           set         members added to the live list while a
                                                replace import loads
  Carried into the copy at the swap unless removed meanwhile. Deleted when no load is
  left; expires after LOAD_MARK_SECONDS.
{p}tmp:{token}:list:{list}:{scope}  sorted set  as {p}list
{p}tmp:{token}:meta:{list}:{scope}  hash        as {p}meta
{p}tmp:{token}:exp:{list}:{scope}   sorted set  as {p}exp
  A copy being loaded by one replace import. RENAMEd over the live keys at the swap
  (and made permanent), else expires LOAD_MARK_SECONDS after its last write.
  `{p}tmp:{token}:loading:...` and `...:journal:...` are named but never written: a copy
  is never itself being replaced.
{p}packed:{list}:{scope}            hash        `base` -> the load's bucket key prefix,
                                                `count`, `rest`, `filter`, `source`, `loaded_at`,
                                                `loaded_by`, `note`, `file`, `as_of`
  The record of the list's packed load: the exact numbers of its latest replace import
  that carry no metadata of their own (store/packing.py). Replaced at each swap.
{base}{head}                        set         the last `rest` digits (the record's, 4 to
   base = {p}pk:{token}:{list}:{scope}:         7) of each number whose digits //
                                                10**rest are {head} (an intset)
  One bucket of a packed load. Never expires: a load's buckets go when another replaces
  it (via the trash), or when its import was abandoned (via the pending registry). Loads
  written before `rest` existed have 7 and buckets that expire until the swap.
{base}index                         sorted set  head -> score head
  The buckets of one packed load, in order (listings, export, deletion).
{base}filter                        hash        `0`, `1`... -> 1 MiB pieces of the load's
                                                filter (store/filter.py): 64-bit words,
                                                little-endian; the record's `filter` field
                                                names its format and size
  Numbers certainly not in the load; every process keeps a copy and skips the load's
  buckets for them. Written before the record names it; deleted with the buckets.
{base}probe                         set         {1}, for an instant
  Written by RESTORE and deleted in the same pipeline before a load's first bucket:
  whether the server takes buckets as RESTORE (store/dumps.py) or needs SADD.
{p}pktrash                          set         bases of packed loads to delete
  Loads replaced or abandoned whose buckets are deleted outside any script (a few at a
  time), by the importer right after, or by the expiry sweep if it died meanwhile.
{p}pkpending                        sorted set  base -> when its load counts as abandoned
  Loads being written, registered before their first bucket; the swap (or the drop of
  an abandoned import) removes them. The expiry sweep moves those past their instant
  (LOAD_MARK_SECONDS, as a killed import's copy) to the trash.
{p}tmp:{token}:packed:{list}:{scope} hash       as {p}packed
  The packed record of a copy being loaded; RENAMEd over the live one at the swap. Its
  buckets expire with the copy unless swapped in.
{p}source:{list}:{scope}            hash        `origin`, `as_of`, `max_age_days` (or
                                                ''), `loaded_at`
  Where the list's data came from and the date it is as of (freshness.py), written by
  each import that completes. Permanent.
{p}batch:{id}                       string      metadata JSON
  Metadata shared by every entry of one bulk load (their meta fields hold `@{id}`).
  Permanent.
{p}attempts                         stream      fields `ts`, `request_id`, `upstream`,
                                                `channel`, `direction`, `number`, `scopes`,
                                                `scope`, `list`, `entry`, `action`
  Blocked attempts, oldest first; capped with XADD MAXLEN ~ store.attempts_max_len.
{p}vel:{scope}:{channel}:{spec}:{subject}
                                    sorted set  a random member per counted send -> ms
  One velocity limit's sliding window (rules.py) for one subject: a number's digits, a
  number block's leading digits, or a region. `spec` names the limit (`number:10/3600`,
  `block8:100/3600:h3600`): a changed limit counts afresh. Members older than the
  window are dropped when counted; the key expires a window after the last send.
{p}policy                           hash        `version`, `doc` (the policy as JSON; ''
                                                when cleared), `updated_by`, `updated_at`
  The policy set through the admin API, over the config's; every process polls
  `version`. Permanent.
{p}velhold:{scope}:{channel}:{spec}:{subject}
                                    string      `1`
  A pumping guard's hold: while it lives, every send to the subject is refused. Expires
  after the limit's `block_for`.
{p}replicated                       string      a count
  Incremented after each acknowledged change when the master has replicas, on the
  connection that then runs WAIT 1 (WAIT covers that connection's writes, and a
  replica applies the stream in order: so the change too). Permanent, a few bytes. On
  a cluster one per hash slot changed: `{p}replicated:{{scope}}` (or the changed key
  itself as the tag, for a key that names no scope).

On Redis Cluster (`redis+cluster://`) every `{scope}` above is written in braces, so that
it is the key's hash tag: `gk:list:block:{tenant:acme}`. Every key of one scope, its
staging copies and packed buckets included, then lives in one hash slot, and each script
(which only ever touches one scope) runs on one node. The keys that name no scope take
one: `{p}pktrash:{{scope}}` and `{p}pkpending:{{scope}}` (per scope), and
`{p}batch:{{scope}}:{id}` (a bulk load's metadata beside the list it was loaded into).
`{p}attempts` is one key, on one node. The layout of a single Redis (or Sentinel) is
unchanged: nothing is migrated.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from gatekeeper.store.entries import ListItem
from gatekeeper.types import CHANNELS, LISTS, ListName

# A replace import's mark, and the journal of entries added meanwhile, vanish after this
# long if the import never finishes (its process was killed); so does its loaded copy.
LOAD_MARK_SECONDS = 24 * 3600


@dataclass(frozen=True, slots=True)
class ListKeys:
    """The keys of one list: members, metadata, expiry; and, for a live list, the mark of
    replace imports under way and the journal of entries added meanwhile."""

    list: str
    meta: str
    expiry: str
    loading: str
    journal: str
    packed: str
    base: str
    trash: str
    pending: str

    @property
    def all(self) -> tuple[str, str, str]:
        """The keys in script order (list, meta, expiry)."""
        return (self.list, self.meta, self.expiry)


@dataclass(frozen=True, slots=True)
class Keys:
    """Builds every Redis key and member name the store uses."""

    prefix: str
    cluster: bool = False
    """Hash-tag every key by its scope (Redis Cluster)."""
    # Velocity keys' heads by (scope, channel, limit spec): built once, not per number.
    _velocity_heads: dict[tuple[str, str, str], tuple[str, str]] = field(
        default_factory=dict, compare=False, repr=False)

    def tag(self, scope: str) -> str:
        """A scope as key names carry it: in braces on a cluster (its hash tag)."""
        return f"{{{scope}}}" if self.cluster else scope

    def untag(self, text: str) -> str | None:
        """The scope a key name ends with (`tag`'s inverse), None if malformed."""
        if not self.cluster:
            return text or None
        if len(text) < 3 or text[0] != "{" or text[-1] != "}":
            return None
        return text[1:-1]

    def list(self, name: ListName, scope: str) -> str:
        """The sorted set holding one list of one scope."""
        return f"{self.prefix}list:{name}:{self.tag(scope)}"

    def of(self, name: ListName, scope: str) -> ListKeys:
        """The keys of one list of one scope."""
        tagged = self.tag(scope)
        return ListKeys(self.list(name, scope), f"{self.prefix}meta:{name}:{tagged}",
                        f"{self.prefix}exp:{name}:{tagged}",
                        f"{self.prefix}loading:{name}:{tagged}",
                        f"{self.prefix}journal:{name}:{tagged}",
                        f"{self.prefix}packed:{name}:{tagged}",
                        f"{self.prefix}pk:live:{name}:{tagged}:",
                        self.packed_trash(scope), self.packed_pending(scope))

    def staging(self, name: ListName, scope: str) -> ListKeys:
        """Fresh keys to load a replacement of a list into before swapping it in."""
        token = uuid.uuid4().hex
        trash, pending = self.packed_trash(scope), self.packed_pending(scope)
        scope = self.tag(scope)
        # A copy being loaded is never itself being replaced: its mark is never set.
        return ListKeys(f"{self.prefix}tmp:{token}:list:{name}:{scope}",
                        f"{self.prefix}tmp:{token}:meta:{name}:{scope}",
                        f"{self.prefix}tmp:{token}:exp:{name}:{scope}",
                        f"{self.prefix}tmp:{token}:loading:{name}:{scope}",
                        f"{self.prefix}tmp:{token}:journal:{name}:{scope}",
                        f"{self.prefix}tmp:{token}:packed:{name}:{scope}",
                        f"{self.prefix}pk:{token}:{name}:{scope}:", trash, pending)

    @property
    def expiry_pattern(self) -> str:
        """SCAN pattern matching every expiry set."""
        return f"{self.prefix}exp:*"

    def from_expiry(self, key: str) -> ListKeys | None:
        """The list keys an expiry set belongs to."""
        named = self.list_of(key, "exp")
        return None if named is None else self.of(*named)

    def source(self, name: ListName, scope: str) -> str:
        """The record of where a list's data came from (its freshness)."""
        return f"{self.prefix}source:{name}:{self.tag(scope)}"

    def list_of(self, key: str, kind: str) -> tuple[ListName, str] | None:
        """(list, scope) of a `{p}{kind}:{list}:{scope}` key, else None."""
        rest = key.removeprefix(f"{self.prefix}{kind}:")
        name, _, tagged = rest.partition(":")
        scope = self.untag(tagged)
        if rest == key or name not in LISTS or not scope:
            return None
        return name, scope

    def packed_trash(self, scope: str) -> str:
        """The set of packed loads (their bases) whose buckets are to be deleted: one for
        the store, or on a cluster one per scope (beside the loads it holds)."""
        return f"{self.prefix}pktrash:{self.tag(scope)}" if self.cluster \
            else f"{self.prefix}pktrash"

    def packed_pending(self, scope: str) -> str:
        """The packed loads being written (bases, scored by when they are abandoned),
        beside the trash."""
        return self.packed_trash(scope).replace("pktrash", "pkpending", 1)

    @staticmethod
    def trash_of(pending: str) -> str:
        """The trash beside a registry of loads being written."""
        return pending.replace("pkpending", "pktrash", 1)

    @property
    def pending_pattern(self) -> str:
        """SCAN pattern matching every registry of loads being written."""
        return self.trash_pattern.replace("pktrash", "pkpending", 1)

    @property
    def trash_pattern(self) -> str:
        """SCAN pattern matching every trash (one key unless on a cluster)."""
        return f"{self.prefix}pktrash:*" if self.cluster else f"{self.prefix}pktrash"

    def batch_prefix(self, scope: str) -> str:
        """Prefix of the keys holding metadata shared by a bulk load into a scope."""
        return f"{self.prefix}batch:{self.tag(scope)}:" if self.cluster \
            else f"{self.prefix}batch:"

    @staticmethod
    def member(item: ListItem) -> str:
        """The set member for an entry: `+33*`, or `+33*#voice` when channel-limited."""
        return item.entry if item.channel is None else f"{item.entry}#{item.channel}"

    @staticmethod
    def item(member: str) -> ListItem:
        """The entry a set member stands for."""
        entry, _, channel = member.partition("#")
        return ListItem(entry, channel if channel in CHANNELS else None)

    @property
    def attempts(self) -> str:
        """The stream of blocked attempts."""
        return f"{self.prefix}attempts"

    def replicated_beside(self, key: str) -> str:
        """The count written before waiting for a replica to hold a change to `key`: on
        a cluster, in `key`'s hash slot (its hash tag, or the whole key)."""
        if not self.cluster:
            return f"{self.prefix}replicated"
        start = key.find("{")
        end = key.find("}", start + 1)
        tag = key[start + 1:end] if start >= 0 and end > start + 1 else key
        return f"{self.prefix}replicated:{{{tag}}}"

    def velocity(self, scope: str, channel: str, spec: str, subject: str
                 ) -> tuple[str, str]:
        """A velocity limit's counter and pumping-guard keys for one subject."""
        heads = self._velocity_heads.get((scope, channel, spec))
        if heads is None:
            heads = self._velocity_heads[scope, channel, spec] = (
                f"{self.prefix}vel:{self.tag(scope)}:{channel}:{spec}:",
                f"{self.prefix}velhold:{self.tag(scope)}:{channel}:{spec}:")
        return heads[0] + subject, heads[1] + subject

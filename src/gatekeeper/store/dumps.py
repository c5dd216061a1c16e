"""DUMP payloads of packed buckets, for RESTORE (pure: no Redis here).

A packed load's bucket is a set of small integers that Redis keeps as an intset. Sent as
SADD, every member travels as text that Redis parses and inserts one by one: writing a
10M-number load kept the server busy for seconds, and sends waiting on it slowed. As a
RESTORE, the bucket travels as the intset itself (2 or 4 bytes a member) and Redis copies
it in: a fraction of the bytes and of the server's time.

The payload is the one `DUMP` returns (Redis's `createDumpPayload`, rdb.c), documented
as opaque but stable across versions, since RESTORE must read payloads of older servers:

    type (1 byte: 11, RDB_TYPE_SET_INTSET)
    the intset as an RDB string: its length (RDB length encoding), then its bytes:
        encoding (uint32 LE: 2 or 4, bytes a member), length (uint32 LE),
        members (int16 or int32 LE, strictly increasing)
    RDB version (uint16 LE)
    CRC-64/REDIS (Jones polynomial, reflected) of all the above (uint64 LE)

`RDB_VERSION` 9 is Redis 5.0's: a server refuses only payloads newer than its own, so
every server Gatekeeper supports (Redis 6.2 and newer, Valkey) reads it. A server that
refuses RESTORE all the same (an ACL, a renamed command) gets SADD (store/packed.py
tries first). tests/test_dumps.py checks these bytes against a real server's DUMP.
"""

from __future__ import annotations

import struct
from typing import Any

import anycrc
import numpy as np
import numpy.typing as npt

RDB_TYPE_SET_INTSET = 11
RDB_VERSION = 9
# CRC-64/REDIS in the RevEng catalogue (check value of "123456789": 0xe9c6d914c4b8d9ca).
_CRC64 = anycrc.CRC(width=64, poly=0xAD93D23594C935A9, init=0, refin=True, refout=True,
                    xorout=0)
_INT16_MAX = 2 ** 15 - 1
_INT32_MAX = 2 ** 31 - 1
# Members restored per bucket: the rest go as SADD (appended: they are larger). Redis
# checks a payload's CRC in the call, about 1 ms a MB here: bounded, so that no call
# holds lookups up long whatever the bucket's size.
RESTORE_MAX = 65536


def crc64(data: bytes) -> int:
    """CRC-64/REDIS of `data`, as Redis checks a DUMP payload."""
    return int(_CRC64.calc(data))


def rdb_length(length: int) -> bytes:
    """A length in RDB's encoding (rdbSaveLen): 6, 14, 32 or 64 bits."""
    if length < 1 << 6:
        return bytes((length,))
    if length < 1 << 14:
        return bytes((0x40 | length >> 8, length & 0xFF))
    if length <= 0xFFFFFFFF:
        return b"\x80" + struct.pack(">I", length)
    return b"\x81" + struct.pack(">Q", length)


def intset_dump(members: npt.NDArray[np.integer[Any]]) -> bytes | None:
    """The DUMP payload of a set of `members` kept as an intset; None unless they are
    strictly increasing, non-negative and below 2**31 (what an intset of this encoding
    holds, in the order it holds them: Redis does not check the order of a payload)."""
    count = len(members)
    if not count or int(members[0]) < 0 or int(members[-1]) > _INT32_MAX:
        return None
    if count > 1 and not bool(np.all(members[1:] > members[:-1])):
        return None
    width = 2 if int(members[-1]) <= _INT16_MAX else 4
    blob = struct.pack("<II", width, count) + np.asarray(
        members, dtype="<i2" if width == 2 else "<i4").tobytes()
    body = (bytes((RDB_TYPE_SET_INTSET,)) + rdb_length(len(blob)) + blob
            + struct.pack("<H", RDB_VERSION))
    return body + struct.pack("<Q", crc64(body))


def restore_command(key: str, payload: bytes) -> bytes:
    """`RESTORE key 0 payload` in RESP (the key is ASCII, the payload binary)."""
    return (f"*4\r\n$7\r\nRESTORE\r\n${len(key)}\r\n{key}\r\n$1\r\n0\r\n"
            f"${len(payload)}\r\n").encode("ascii") + payload + b"\r\n"

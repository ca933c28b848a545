"""Counts behind the per-tenant quotas, exact under concurrent submissions.

A submission takes a transaction-scoped advisory lock on its tenant before counting, so two
submissions of one tenant count one after the other: the second one's count (a fresh snapshot
under READ COMMITTED) sees the first one's job once it has committed, and the lock is only
released at commit. The two-integer form of the lock keeps these keys apart from the one-bigint
keys of idempotency and migrations.
"""

from __future__ import annotations

from service.repositories.database import Connection

# The first half of every quota lock key: "jobs" in ASCII.
_ACTIVE_JOBS_LOCK = 0x6A6F6273


async def lock_and_count_active_jobs(conn: Connection) -> int:
    """Queued and running jobs of the transaction's tenant (row-level security shows only its
    rows), counted under the tenant's submission lock, which is held until commit."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext(current_setting('app.tenant')))",
        _ACTIVE_JOBS_LOCK,
    )
    count: int = await conn.fetchval(
        "SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')"
    )
    return count

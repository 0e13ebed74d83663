/*
 * test_locks.c - unit tests of the lock manager (server/locks.c): POSIX
 * range conflicts, splitting, merging, upgrade/downgrade, owner
 * isolation, flock semantics and parked waiters.  Ranges are inspected
 * through GETLK from another owner and orfa_locks_count.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/file.h>

#include "check_main.h"
#include "locks.h"

static struct orfa_locks *lt;
static const struct orfa_lk_owner A = { 1, 100 }, B = { 2, 100 },
				  A2 = { 1, 200 };

static void setup(void)
{
	ck_assert_int_eq(orfa_locks_create(&lt), 0);
}

static void teardown(void)
{
	orfa_locks_destroy(lt);
	lt = NULL;
}

static int setlk(const struct orfa_lk_owner *o, uint32_t type, uint64_t s,
		 uint64_t e)
{
	struct orfa_lock lk = { .start = s, .end = e, .type = type,
				.pid = (uint32_t)o->conn * 10 };

	return orfa_locks_setlk(lt, 7, o, &lk, NULL);
}

/* GETLK as owner o for type on [s,e]; returns the answer. */
static struct orfa_lock getlk(const struct orfa_lk_owner *o, uint32_t type,
			      uint64_t s, uint64_t e)
{
	struct orfa_lock lk = { .start = s, .end = e, .type = type };

	ck_assert_int_eq(orfa_locks_getlk(lt, 7, o, &lk), 0);
	return lk;
}

START_TEST(test_conflict_write_read)
{
	struct orfa_lock r;

	ck_assert_int_eq(setlk(&A, F_WRLCK, 0, 99), 0);
	ck_assert_int_eq(setlk(&B, F_RDLCK, 50, 50), -EAGAIN);
	ck_assert_int_eq(setlk(&B, F_WRLCK, 99, 200), -EAGAIN);
	ck_assert_int_eq(setlk(&B, F_WRLCK, 100, 200), 0);
	r = getlk(&B, F_RDLCK, 10, 10);
	ck_assert_uint_eq(r.type, F_WRLCK);
	ck_assert_uint_eq(r.start, 0);
	ck_assert_uint_eq(r.end, 99);
	ck_assert_uint_eq(r.pid, 10);
	r = getlk(&A, F_WRLCK, 0, 99);	/* own locks never conflict */
	ck_assert_uint_eq(r.type, F_UNLCK);
	ck_assert_uint_eq(r.start, 0);
	ck_assert_uint_eq(r.end, 99);
}
END_TEST

START_TEST(test_shared_reads)
{
	ck_assert_int_eq(setlk(&A, F_RDLCK, 0, UINT64_MAX), 0);
	ck_assert_int_eq(setlk(&B, F_RDLCK, 10, 20), 0);
	ck_assert_int_eq(setlk(&B, F_WRLCK, 30, 40), -EAGAIN);
	ck_assert_uint_eq(getlk(&B, F_RDLCK, 0, 5).type, F_UNLCK);
	ck_assert_uint_eq(getlk(&B, F_WRLCK, 0, 5).type, F_RDLCK);
}
END_TEST

START_TEST(test_split_on_unlock)
{
	struct orfa_lock r;

	ck_assert_int_eq(setlk(&A, F_WRLCK, 0, 99), 0);
	ck_assert_int_eq(setlk(&A, F_UNLCK, 40, 59), 0);
	ck_assert_uint_eq(orfa_locks_count(lt, 7), 2);
	ck_assert_uint_eq(getlk(&B, F_WRLCK, 40, 59).type, F_UNLCK);
	r = getlk(&B, F_WRLCK, 0, 39);
	ck_assert_uint_eq(r.start, 0);
	ck_assert_uint_eq(r.end, 39);
	r = getlk(&B, F_WRLCK, 60, 1000);
	ck_assert_uint_eq(r.start, 60);
	ck_assert_uint_eq(r.end, 99);
}
END_TEST

START_TEST(test_unlock_ranges)
{
	ck_assert_int_eq(setlk(&A, F_WRLCK, 10, 19), 0);
	ck_assert_int_eq(setlk(&A, F_WRLCK, 30, 39), 0);
	ck_assert_int_eq(setlk(&A, F_WRLCK, 50, 59), 0);
	ck_assert_uint_eq(orfa_locks_count(lt, 7), 3);
	/* Unlock covering the first two entirely and the third's head. */
	ck_assert_int_eq(setlk(&A, F_UNLCK, 0, 54), 0);
	ck_assert_uint_eq(orfa_locks_count(lt, 7), 1);
	ck_assert_uint_eq(getlk(&B, F_WRLCK, 0, 54).type, F_UNLCK);
	ck_assert_uint_eq(getlk(&B, F_WRLCK, 0, 100).start, 55);
	/* Unlocking what is not locked is fine. */
	ck_assert_int_eq(setlk(&A, F_UNLCK, 1000, 2000), 0);
	ck_assert_int_eq(setlk(&A, F_UNLCK, 0, UINT64_MAX), 0);
	ck_assert_uint_eq(orfa_locks_count(lt, 7), 0);
}
END_TEST

START_TEST(test_merge_adjacent_and_overlapping)
{
	struct orfa_lock r;

	ck_assert_int_eq(setlk(&A, F_RDLCK, 0, 9), 0);
	ck_assert_int_eq(setlk(&A, F_RDLCK, 20, 29), 0);
	ck_assert_uint_eq(orfa_locks_count(lt, 7), 2);
	ck_assert_int_eq(setlk(&A, F_RDLCK, 10, 19), 0);	/* fills gap */
	ck_assert_uint_eq(orfa_locks_count(lt, 7), 1);
	r = getlk(&B, F_WRLCK, 5, 5);
	ck_assert_uint_eq(r.start, 0);
	ck_assert_uint_eq(r.end, 29);
	ck_assert_int_eq(setlk(&A, F_RDLCK, 25, UINT64_MAX), 0);
	ck_assert_uint_eq(orfa_locks_count(lt, 7), 1);
	r = getlk(&B, F_WRLCK, 5, 5);
	ck_assert_uint_eq(r.end, UINT64_MAX);
}
END_TEST

START_TEST(test_no_merge_different_types)
{
	ck_assert_int_eq(setlk(&A, F_RDLCK, 0, 9), 0);
	ck_assert_int_eq(setlk(&A, F_WRLCK, 10, 19), 0);
	ck_assert_uint_eq(orfa_locks_count(lt, 7), 2);
	ck_assert_uint_eq(getlk(&B, F_RDLCK, 0, 9).type, F_UNLCK);
	ck_assert_uint_eq(getlk(&B, F_RDLCK, 0, 10).type, F_WRLCK);
}
END_TEST

START_TEST(test_upgrade_downgrade)
{
	struct orfa_lock r;

	ck_assert_int_eq(setlk(&A, F_RDLCK, 0, 99), 0);
	ck_assert_int_eq(setlk(&B, F_RDLCK, 0, 9), 0);
	/* Upgrade conflicts with B's read lock on [0,9] only. */
	ck_assert_int_eq(setlk(&A, F_WRLCK, 0, 99), -EAGAIN);
	ck_assert_int_eq(setlk(&A, F_WRLCK, 10, 99), 0);
	r = getlk(&B, F_RDLCK, 50, 50);
	ck_assert_uint_eq(r.type, F_WRLCK);
	ck_assert_uint_eq(r.start, 10);
	ck_assert_uint_eq(r.end, 99);
	/* Downgrade the middle: write/read/write pieces. */
	ck_assert_int_eq(setlk(&A, F_RDLCK, 40, 59), 0);
	ck_assert_uint_eq(getlk(&B, F_RDLCK, 40, 59).type, F_UNLCK);
	ck_assert_uint_eq(getlk(&B, F_RDLCK, 20, 39).type, F_WRLCK);
	ck_assert_uint_eq(getlk(&B, F_RDLCK, 60, 60).start, 60);
	/* A holds read [0,9] + write [10,39] + read [40,59] (merged with
	 * nothing: [0,9] read is separate from [40,59] read) + write [60,99] */
	ck_assert_uint_eq(orfa_locks_count(lt, 7), 5);
}
END_TEST

START_TEST(test_owner_isolation)
{
	/* Same connection, other lock_owner: conflicts like anyone else. */
	ck_assert_int_eq(setlk(&A, F_WRLCK, 0, 9), 0);
	ck_assert_int_eq(setlk(&A2, F_WRLCK, 0, 9), -EAGAIN);
	/* Another owner's unlock does not touch A's lock. */
	ck_assert_int_eq(setlk(&A2, F_UNLCK, 0, UINT64_MAX), 0);
	ck_assert_uint_eq(getlk(&B, F_RDLCK, 0, 9).type, F_WRLCK);
	orfa_locks_drop_posix(lt, 7, &A2);
	ck_assert_uint_eq(orfa_locks_count(lt, 7), 1);
	orfa_locks_drop_posix(lt, 7, &A);
	ck_assert_uint_eq(orfa_locks_count(lt, 7), 0);
	/* Other nodes are independent. */
	ck_assert_int_eq(setlk(&A, F_WRLCK, 0, 9), 0);
	{
		struct orfa_lock lk = { .start = 0, .end = 9,
					.type = F_WRLCK };
		ck_assert_int_eq(orfa_locks_setlk(lt, 8, &B, &lk, NULL), 0);
	}
}
END_TEST

START_TEST(test_bad_args)
{
	struct orfa_lock lk = { .start = 10, .end = 5, .type = F_RDLCK };

	ck_assert_int_eq(orfa_locks_setlk(lt, 7, &A, &lk, NULL), -EINVAL);
	ck_assert_int_eq(orfa_locks_getlk(lt, 7, &A, &lk), -EINVAL);
	lk.end = 20;
	lk.type = 9;
	ck_assert_int_eq(orfa_locks_setlk(lt, 7, &A, &lk, NULL), -EINVAL);
	ck_assert_int_eq(orfa_locks_flock(lt, 7, &A, 0, NULL), -EINVAL);
}
END_TEST

START_TEST(test_flock_semantics)
{
	ck_assert_int_eq(orfa_locks_flock(lt, 7, &A, LOCK_SH, NULL), 0);
	ck_assert_int_eq(orfa_locks_flock(lt, 7, &B, LOCK_SH, NULL), 0);
	ck_assert_int_eq(orfa_locks_flock(lt, 7, &B, LOCK_EX | LOCK_NB, NULL),
			 -EAGAIN);
	/* The failed conversion dropped B's shared lock, as on Linux. */
	ck_assert_uint_eq(orfa_locks_count(lt, 7), 1);
	/* Upgrade once alone. */
	ck_assert_int_eq(orfa_locks_flock(lt, 7, &A, LOCK_EX, NULL), 0);
	ck_assert_int_eq(orfa_locks_flock(lt, 7, &A, LOCK_EX, NULL), 0);
	ck_assert_int_eq(orfa_locks_flock(lt, 7, &B, LOCK_SH, NULL), -EAGAIN);
	/* Downgrade lets readers in. */
	ck_assert_int_eq(orfa_locks_flock(lt, 7, &A, LOCK_SH, NULL), 0);
	ck_assert_int_eq(orfa_locks_flock(lt, 7, &B, LOCK_SH, NULL), 0);
	ck_assert_int_eq(orfa_locks_flock(lt, 7, &A, LOCK_UN, NULL), 0);
	orfa_locks_drop_flock(lt, 7, &B);
	ck_assert_uint_eq(orfa_locks_count(lt, 7), 0);
	/* flock and POSIX locks do not interact. */
	ck_assert_int_eq(orfa_locks_flock(lt, 7, &A, LOCK_EX, NULL), 0);
	ck_assert_int_eq(setlk(&B, F_WRLCK, 0, UINT64_MAX), 0);
}
END_TEST

struct wake_rec {
	int calls;
	int status;
};

static void wake_cb(struct orfa_lk_waiter *w, int status)
{
	struct wake_rec *r = w->arg;

	r->calls++;
	r->status = status;
}

START_TEST(test_posix_waiter_granted)
{
	struct wake_rec rec = { 0, 99 }, rec2 = { 0, 99 };
	struct orfa_lk_waiter w = { .wake = wake_cb, .arg = &rec };
	struct orfa_lk_waiter w2 = { .wake = wake_cb, .arg = &rec2 };
	struct orfa_lock lk = { .start = 0, .end = 9, .type = F_WRLCK,
				.pid = 20 };
	struct orfa_lock lk2 = { .start = 5, .end = 5, .type = F_RDLCK };

	ck_assert_int_eq(setlk(&A, F_WRLCK, 0, 99), 0);
	ck_assert_int_eq(orfa_locks_setlk(lt, 7, &B, &lk, &w), -EINPROGRESS);
	ck_assert_int_eq(orfa_locks_setlk(lt, 7, &A2, &lk2, &w2),
			 -EINPROGRESS);
	ck_assert_int_eq(rec.calls, 0);
	/* Unlocking elsewhere grants nothing. */
	ck_assert_int_eq(setlk(&A, F_UNLCK, 50, 99), 0);
	ck_assert_int_eq(rec.calls, 0);
	/* Releasing the range wakes B (first in line); A2 still conflicts
	 * with B's new write lock. */
	ck_assert_int_eq(setlk(&A, F_UNLCK, 0, 49), 0);
	ck_assert_int_eq(rec.calls, 1);
	ck_assert_int_eq(rec.status, 0);
	ck_assert_int_eq(rec2.calls, 0);
	ck_assert_uint_eq(getlk(&A, F_RDLCK, 0, 0).pid, 20);
	ck_assert_int_eq(setlk(&B, F_UNLCK, 0, UINT64_MAX), 0);
	ck_assert_int_eq(rec2.calls, 1);
	ck_assert_int_eq(rec2.status, 0);
	orfa_locks_drop_conn(lt, 1);
	ck_assert_uint_eq(orfa_locks_count(lt, 7), 0);
}
END_TEST

START_TEST(test_flock_waiter_and_drop_conn)
{
	struct wake_rec rec = { 0, 99 }, rec2 = { 0, 99 };
	struct orfa_lk_waiter w = { .wake = wake_cb, .arg = &rec };
	struct orfa_lk_waiter w2 = { .wake = wake_cb, .arg = &rec2 };
	struct orfa_lk_owner C = { 3, 1 };

	ck_assert_int_eq(orfa_locks_flock(lt, 7, &A, LOCK_EX, NULL), 0);
	ck_assert_int_eq(setlk(&A, F_WRLCK, 0, 0), 0);
	ck_assert_int_eq(orfa_locks_flock(lt, 7, &B, LOCK_SH, &w),
			 -EINPROGRESS);
	ck_assert_int_eq(orfa_locks_flock(lt, 7, &C, LOCK_EX, &w2),
			 -EINPROGRESS);
	/* Connection 3 goes away: its waiter is cancelled. */
	orfa_locks_drop_conn(lt, 3);
	ck_assert_int_eq(rec2.calls, 1);
	ck_assert_int_eq(rec2.status, -ECANCELED);
	ck_assert_int_eq(rec.calls, 0);
	/* Connection 1 goes away: its locks go, B is granted. */
	orfa_locks_drop_conn(lt, 1);
	ck_assert_int_eq(rec.calls, 1);
	ck_assert_int_eq(rec.status, 0);
	ck_assert_uint_eq(orfa_locks_count(lt, 7), 1);
	ck_assert_int_eq(orfa_locks_flock(lt, 7, &A, LOCK_SH | LOCK_NB, NULL),
			 0);
	ck_assert_int_eq(orfa_locks_flock(lt, 7, &A, LOCK_EX | LOCK_NB, NULL),
			 -EAGAIN);
}
END_TEST

static Suite *locks_suite(void)
{
	Suite *s = suite_create("locks");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_conflict_write_read);
	tcase_add_test(tc, test_shared_reads);
	tcase_add_test(tc, test_split_on_unlock);
	tcase_add_test(tc, test_unlock_ranges);
	tcase_add_test(tc, test_merge_adjacent_and_overlapping);
	tcase_add_test(tc, test_no_merge_different_types);
	tcase_add_test(tc, test_upgrade_downgrade);
	tcase_add_test(tc, test_owner_isolation);
	tcase_add_test(tc, test_bad_args);
	tcase_add_test(tc, test_flock_semantics);
	tcase_add_test(tc, test_posix_waiter_granted);
	tcase_add_test(tc, test_flock_waiter_and_drop_conn);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return orfa_check_run(locks_suite());
}

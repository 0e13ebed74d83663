/*
 * check_main.h - the end of every Check program here: run one suite (output
 * as the CK_* environment variables ask) and turn its failures into the
 * exit status.  Only for test programs; include after <check.h>.
 */
#ifndef ORFA_CHECK_MAIN_H
#define ORFA_CHECK_MAIN_H

#include <stdlib.h>

/* Runs s and frees it; EXIT_SUCCESS when no test failed. */
static inline int orfa_check_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif /* ORFA_CHECK_MAIN_H */

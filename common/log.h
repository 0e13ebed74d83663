/*
 * log.h - leveled logging for orfad, orfa and the tests.
 *
 * Messages go to a swappable sink (stderr by default, syslog once a daemon
 * has detached, a capture buffer in tests).  Levels follow syslog.  The
 * level filter is global and cheap to test, so callers need not guard
 * debug calls.
 */
#ifndef ORFA_LOG_H
#define ORFA_LOG_H

#include <stdarg.h>

enum orfa_log_level {
	ORFA_LOG_ERR = 3,
	ORFA_LOG_WARNING = 4,
	ORFA_LOG_NOTICE = 5,
	ORFA_LOG_INFO = 6,
	ORFA_LOG_DEBUG = 7,
};

typedef void (*orfa_log_sink)(enum orfa_log_level level, const char *msg,
			      void *arg);

/* Messages above this level are dropped (default ORFA_LOG_NOTICE). */
void orfa_log_set_level(enum orfa_log_level level);
enum orfa_log_level orfa_log_get_level(void);
/* Parse "err", "warning", "notice", "info", "debug"; -1 if unknown. */
int orfa_log_parse_level(const char *s);
/* NULL restores the stderr sink. */
void orfa_log_set_sink(orfa_log_sink sink, void *arg);
/* Prefix for the stderr sink, e.g. "orfad". */
void orfa_log_set_ident(const char *ident);
/* Switch the default sink to syslog (daemons after detaching). */
void orfa_log_use_syslog(void);

void orfa_log(enum orfa_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void orfa_vlog(enum orfa_log_level level, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

#define log_err(...)	orfa_log(ORFA_LOG_ERR, __VA_ARGS__)
#define log_warn(...)	orfa_log(ORFA_LOG_WARNING, __VA_ARGS__)
#define log_notice(...)	orfa_log(ORFA_LOG_NOTICE, __VA_ARGS__)
#define log_info(...)	orfa_log(ORFA_LOG_INFO, __VA_ARGS__)
#define log_debug(...)	orfa_log(ORFA_LOG_DEBUG, __VA_ARGS__)

#endif /* ORFA_LOG_H */

/*
 * log.c - the logging module (see log.h).  Thread-safe: one message is
 * formatted into a local buffer and handed to the sink in one call.
 */
#include "log.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>

static enum orfa_log_level max_level = ORFA_LOG_NOTICE;
static orfa_log_sink sink_fn;
static void *sink_arg;
static const char *ident = "orfa";
static int use_syslog;

static const char *const level_names[] = {
	[ORFA_LOG_ERR] = "err",		[ORFA_LOG_WARNING] = "warning",
	[ORFA_LOG_NOTICE] = "notice",	[ORFA_LOG_INFO] = "info",
	[ORFA_LOG_DEBUG] = "debug",
};

void orfa_log_set_level(enum orfa_log_level level) { max_level = level; }
enum orfa_log_level orfa_log_get_level(void) { return max_level; }

int orfa_log_parse_level(const char *s)
{
	for (int l = ORFA_LOG_ERR; l <= ORFA_LOG_DEBUG; l++)
		if (strcasecmp(s, level_names[l]) == 0)
			return l;
	if (strcasecmp(s, "warn") == 0)
		return ORFA_LOG_WARNING;
	return -1;
}

void orfa_log_set_sink(orfa_log_sink sink, void *arg)
{
	sink_fn = sink;
	sink_arg = arg;
}

void orfa_log_set_ident(const char *id) { ident = id; }

void orfa_log_use_syslog(void)
{
	openlog(ident, LOG_PID, LOG_DAEMON);
	use_syslog = 1;
}

void orfa_vlog(enum orfa_log_level level, const char *fmt, va_list ap)
{
	char buf[1024];

	if (level > max_level)
		return;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	if (sink_fn) {
		sink_fn(level, buf, sink_arg);
	} else if (use_syslog) {
		syslog((int)level, "%s", buf);
	} else {
		size_t n = strlen(buf);
		const char *nl = (n && buf[n - 1] == '\n') ? "" : "\n";
		fprintf(stderr, "%s: %s: %s%s", ident, level_names[level], buf, nl);
	}
}

void orfa_log(enum orfa_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	orfa_vlog(level, fmt, ap);
	va_end(ap);
}

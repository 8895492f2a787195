/*
 * log: JSON lines on a stream (stderr in the programs), one object per line:
 *   {"time":"2026-01-02T03:04:05.678Z","level":"info","component":"sgprobe-agent",
 *    "msg":"report sent","seq":12,"collector":"https://..."}
 * Every line is built with cJSON, so messages and values are escaped, and is
 * written with one fwrite() and flushed: lines from several writers to one
 * unbuffered or line-buffered stream do not interleave.
 *
 * Nothing secret is ever logged: callers must never pass a key's secret, a
 * token, a signature or a credential as a message or a field. There is on
 * purpose no field type for bytes or for a key: only strings, integers,
 * doubles and booleans. Log the key's id, never the key.
 *
 * Use:
 *   log_t lg;
 *   log_init(&lg, stderr, LOG_LEVEL_INFO, "sgprobe-agent");
 *   log_info(&lg, "report sent", LOG_UINT("seq", seq), LOG_STR("collector", url));
 *   log_warn(&lg, "collector unreachable");
 */
#ifndef SGPROBE_LOG_H
#define SGPROBE_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define LOG_VALUE_MAX 2048 /* bytes of one string (message or value); longer ones are cut */

/** The levels, in increasing severity. */
typedef enum {
	LOG_LEVEL_DEBUG = 0, /* detail for a developer: every probe, every request */
	LOG_LEVEL_INFO,      /* the normal life of the process: start, plan loaded, stop */
	LOG_LEVEL_WARN,      /* something went wrong and was handled: a retry, a drop */
	LOG_LEVEL_ERROR,     /* something went wrong and was not: the operation failed */
} log_level_t;

/** A logger, embedded by value. It owns nothing. */
typedef struct {
	FILE *out;             /* borrowed; where the lines go */
	log_level_t min_level; /* lines below this level are not written */
	const char *component; /* borrowed, e.g. "sgprobe-agent"; must outlive the logger */
} log_t;

/** The type of a field's value. */
typedef enum {
	LOG_FIELD_END = 0, /* ends the list (LOG_END) */
	LOG_FIELD_STR,     /* a string; NULL is written as null */
	LOG_FIELD_INT,     /* a signed integer, int64_t, written exactly */
	LOG_FIELD_UINT,    /* an unsigned integer, uint64_t, written exactly */
	LOG_FIELD_DOUBLE,  /* a number; NaN and infinities are written as null */
	LOG_FIELD_BOOL,    /* true or false */
} log_field_type_t;

/** One key/value field. Build it with the LOG_* macros below, never by hand. */
typedef struct {
	const char *key; /* borrowed; NULL only in LOG_END */
	log_field_type_t type;
	union {
		const char *s;
		int64_t i;
		uint64_t u;
		double d;
		bool b;
	} v;
} log_field_t;

/* The fields. Each value is converted to its member's type, so a wrong type is a compile error
 * (a number for LOG_STR, a pointer for LOG_INT). */
#define LOG_STR(k, val)    ((log_field_t){.key = (k), .type = LOG_FIELD_STR, .v.s = (val)})
#define LOG_INT(k, val)    ((log_field_t){.key = (k), .type = LOG_FIELD_INT, .v.i = (val)})
#define LOG_UINT(k, val)   ((log_field_t){.key = (k), .type = LOG_FIELD_UINT, .v.u = (val)})
#define LOG_DOUBLE(k, val) ((log_field_t){.key = (k), .type = LOG_FIELD_DOUBLE, .v.d = (val)})
#define LOG_BOOL(k, val)   ((log_field_t){.key = (k), .type = LOG_FIELD_BOOL, .v.b = (val)})
#define LOG_END            ((log_field_t){.key = NULL, .type = LOG_FIELD_END})

/**
 * Sets up a logger writing to `out` (borrowed; NULL means stderr) lines of at
 * least `min_level`, tagged with `component` (borrowed; NULL means "sgprobe").
 */
void log_init(log_t *lg, FILE *out, log_level_t min_level, const char *component);

/** True when a line of `level` would be written: skip building costly fields otherwise. */
bool log_enabled(const log_t *lg, log_level_t level);

/**
 * Writes one line: time (UTC, milliseconds), level, component, msg, then the
 * fields in order. The variable arguments are log_field_t values made with the
 * LOG_* macros and MUST end with LOG_END (the log_debug() ... log_error() macros
 * add it). A field whose key is empty or one of time, level, component, msg is
 * written with a "_" before its key, so that it cannot hide those.
 * Strings that are not valid UTF-8 have the bad bytes replaced with U+FFFD, and
 * strings longer than LOG_VALUE_MAX bytes are cut and end with "...". `msg` NULL
 * is written as "". Returns 0 (also when the level is filtered out), -ENOMEM,
 * or -EIO when the stream refused the line.
 */
int log_write(const log_t *lg, log_level_t level, const char *msg, ...);

/* log_write() at one level, with the LOG_END terminator added: log_info(&lg, "msg", fields...) */
#define log_debug(lg, ...) log_write((lg), LOG_LEVEL_DEBUG, __VA_ARGS__, LOG_END)
#define log_info(lg, ...)  log_write((lg), LOG_LEVEL_INFO, __VA_ARGS__, LOG_END)
#define log_warn(lg, ...)  log_write((lg), LOG_LEVEL_WARN, __VA_ARGS__, LOG_END)
#define log_error(lg, ...) log_write((lg), LOG_LEVEL_ERROR, __VA_ARGS__, LOG_END)

/**
 * Parses a --log-level value: debug, info, warn (or warning), error, in any case.
 * Returns 0 with the level in *out, or -EINVAL (*out unchanged).
 */
int log_level_parse(const char *s, log_level_t *out);

/** The level's name as written in the lines ("debug", "info", "warn", "error"); "?" if unknown. */
const char *log_level_name(log_level_t level);

#endif

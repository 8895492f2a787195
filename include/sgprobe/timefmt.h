/*
 * timefmt: the RFC 3339 / ISO 8601 UTC timestamps sgprobe reads, in one place:
 * the reports' `at` and `sent_at` (strict) and the AWS credential endpoints'
 * `Expiration` (lenient); and the wall clock they are compared with.
 */
#ifndef SGPROBE_TIMEFMT_H
#define SGPROBE_TIMEFMT_H

#include <stdint.h>

/**
 * Also accept what AWS's endpoints may write: a lowercase `t` or `z`, an
 * offset `+HH:MM` / `-HH:MM` instead of `Z`, and any number of fractional
 * digits. Without it only `YYYY-MM-DDTHH:MM:SS[.f]Z` with 1 to 9 fractional
 * digits is taken.
 */
#define TIMEFMT_LENIENT 1u

/**
 * Parses `s` (NUL-terminated) as YYYY-MM-DDTHH:MM:SS[.fraction](Z|offset), a
 * real date and time (month 01-12, the month's days, hours 00-23, minutes
 * 00-59, seconds 00-60), the whole string and nothing more. Sets `*ms` to the
 * milliseconds since the Unix epoch (negative before 1970; the fraction
 * truncated to milliseconds) when `ms` is not NULL. Returns 0, or -EINVAL
 * (`*ms` unchanged).
 */
int timefmt_parse(const char *s, unsigned flags, int64_t *ms);

/**
 * The wall clock, in ms since the Unix epoch: for timestamps that leave the
 * process and for credentials' expiry, never for durations (uv_now()).
 */
uint64_t timefmt_now_ms(void);

#endif

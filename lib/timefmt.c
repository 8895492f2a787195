/*
 * timefmt: RFC 3339 / ISO 8601 UTC timestamps (include/sgprobe/timefmt.h).
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "sgprobe/timefmt.h"

/* Reads exactly `n` decimal digits at `s` into *out; false when one is not a digit. */
static bool digits(const char *s, int n, int *out)
{
	int v = 0;
	int i;

	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

static int days_in_month(int year, int month)
{
	static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

	return month == 2 && leap ? 29 : days[month - 1];
}

/* Days from 1970-01-01 to y-m-d, proleptic Gregorian (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

int timefmt_parse(const char *s, unsigned flags, int64_t *ms)
{
	bool lenient = flags & TIMEFMT_LENIENT;
	int y, mo, d, h, mi, sec, oh = 0, om = 0, frac = 0, n = 0, sign = 0;
	const char *p = s;
	int64_t t;

	/* && stops at the first mismatch, so nothing is read past the NUL. */
	if (!s || !digits(p, 4, &y) || p[4] != '-' || !digits(p + 5, 2, &mo) || p[7] != '-' ||
	    !digits(p + 8, 2, &d) || (p[10] != 'T' && !(lenient && p[10] == 't')) ||
	    !digits(p + 11, 2, &h) || p[13] != ':' || !digits(p + 14, 2, &mi) || p[16] != ':' ||
	    !digits(p + 17, 2, &sec))
		return -EINVAL;
	p += 19;
	if (*p == '.') {
		for (p++; *p >= '0' && *p <= '9'; p++, n++) {
			if (n < 3)
				frac = frac * 10 + (*p - '0');
		}
		if (n == 0 || (!lenient && n > 9))
			return -EINVAL;
		for (; n < 3; n++)
			frac *= 10;
	}
	if (*p == 'Z' || (lenient && *p == 'z')) {
		p++;
	} else if (lenient && (*p == '+' || *p == '-')) {
		sign = *p == '+' ? 1 : -1;
		if (!digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om) || oh > 23 ||
		    om > 59)
			return -EINVAL;
		p += 6;
	} else {
		return -EINVAL;
	}
	if (*p || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 ||
	    sec > 60)
		return -EINVAL;
	t = ((days_from_civil(y, (unsigned)mo, (unsigned)d) * 24 + h) * 60 + mi) * 60 + sec;
	t -= (int64_t)sign * (oh * 3600 + om * 60);
	if (ms)
		*ms = t * 1000 + frac;
	return 0;
}

uint64_t timefmt_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
